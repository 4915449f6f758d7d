# fwbench: every dataset and experiment of the tutorial documents, trained through the
# PyTorch, TensorFlow and JAX adapters, logged to MLflow, compared in one report.
#   snakemake --cores all   (from the repository root: profiles/default is found by itself)
# Layout and contracts: README.md and docs/design.md.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO))


# The default config, found from any working directory (--directory); --configfile replaces it.
configfile: str(REPO / "config" / "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/report.smk"


# After common.smk's validation: a bad mlflow.tracking_uri stops here, before any job, with the fix.
from workflow.lib.store import StoreError, resolve_uri

try:
    MLFLOW_URI = resolve_uri(config["mlflow"]["tracking_uri"], "results")
except StoreError as e:
    raise WorkflowError(str(e)) from None


# Seconds of work each: on a cluster (profiles/slurm) they run on the submit host, not as jobs.
localrules:
    config_record,
    experiments_record,
    mlflow_store,


rule all:
    input:
        "results/report/index.html",
        "results/summary.csv",
        "results/summary_over_seeds.csv",
        SWEEP_OUTPUTS,
        SWEEP_MLFLOW,
    default_target: True


# One MLflow parent run per invocation, keyed by (git commit, config hash); every training logs
# its runs as children (workflow/lib/parent.py). Snakemake calls these hooks in its main process
# only, and only when it executes jobs: not on dry runs, not in cluster jobs (--no-hooks).
from workflow.lib.environment import git_head
from workflow.lib.parent import end_parent, parent_key, start_parent
from workflow.lib.timing import set_policy


# Every job starts as untimed work (SCHED_IDLE, inherited from this process): a timed section, which
# raises its own priority (workflow/lib/timing.py), is then never preempted by Snakemake itself, a
# job's interpreter start-up before it lowers its own priority, or the jobs that never time anything
# (datasets, MLflow logging, the report); they only take what the timed section leaves idle.
onstart:
    set_policy(os.SCHED_IDLE)
    if not workflow.touch:
        commit = git_head(REPO)
        key = parent_key(commit, config)
        start_parent(MLFLOW_URI, config["mlflow"]["experiment"], "results", key, config, commit)


onsuccess:
    if not workflow.touch:
        end_parent(MLFLOW_URI, "results", "FINISHED", ["results/report/index.html", "results/summary.csv"])


onerror:
    if not workflow.touch:
        end_parent(MLFLOW_URI, "results", "FAILED")
