# Configuration: validated, resolved into the jobs to run. Bad input stops here, before any
# job, with a message that names the key and the fix.
import json
import os
import re
import shlex

from snakemake.settings.types import DeploymentMethod

import backends
from workflow.lib.plan import plan_from_config, PlanError, run_file

try:
    PLAN = plan_from_config(config, REPO)
except PlanError as e:
    raise WorkflowError(str(e)) from None

# Every job runs `python -m ...` with the interpreter of the environment Snakemake gives it: the
# rule's conda env or container (--sdm conda / apptainer), else the Python running Snakemake, put
# first on PATH. The repository is importable through a path relative to the working directory, so
# no job names an absolute path of the machine that planned it.
PY = f"PYTHONPATH={shlex.quote(os.path.relpath(REPO))}${{PYTHONPATH:+:$PYTHONPATH}} python"
if not {DeploymentMethod.CONDA, DeploymentMethod.APPTAINER} & set(workflow.deployment_settings.deployment_method):
    shell.prefix(f'set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; ')
STORE = "results/mlflow/.store-ready"
# The sweep tables when sweeps are on (workflow/rules/sweep.smk), else nothing.
SWEEP_OUTPUTS = ["results/sweeps/summary.csv", "results/sweeps/overheads.csv"] if PLAN.sweep_jobs else []
SWEEP_MLFLOW = ["results/sweeps/mlflow.json"] if PLAN.sweep_jobs else []  # their MLflow runs (sweep.smk)
# The rules' conda environments (--sdm conda), generated from the locks by
# `python -m workflow.scripts.locks`: frameworks for CPU or GPU jobs (by the job's device), and the
# report's (datasets and reports, no framework). Paths are relative to workflow/rules/.
CONDA_TRAIN = "../envs/train-{device}.yml"
CONDA_TRAIN_CPU = "../envs/train-cpu.yml"
CONDA_REPORT = "../envs/report.yml"
for note in PLAN.notes:
    print(f"fwbench: {note}", file=sys.stderr)
# One GPU job at a time unless the user says otherwise (--resources gpu=N).
workflow.global_resources.setdefault("gpu", 1)


wildcard_constraints:
    experiment="|".join(map(re.escape, PLAN.experiments)) or "NONE",
    backend="|".join(map(re.escape, PLAN.backends)) or "NONE",
    device="cpu|gpu",
    dataset="[a-z0-9-]+",


# Job order on few cores. First what every training needs (datasets, records, store, ceiling: a
# job's priority does not pass to the jobs it waits for); then, longest first, the per-batch eager
# loops (the NumPy reference, which gates every other training, and tensorflow-eager, the longest
# job: 8.7 min of 16.5 in the all-seeds run); the sweeps, whose work is nearly all timed, next,
# beside the eager loops' untimed quality trainings rather than beside other jobs' timed sections
# (one timing slot on two CPUs: the job that waits for it idles); then every other training.
PRIORITY = {"setup": 4, "eager": 3, "sweep": 2, "other": 1}


def train_priority(wildcards):
    return PRIORITY["eager" if backends.REGISTRY[wildcards.backend].mode == "eager" else "other"]


def train_inputs(wildcards):
    """The datasets, the resolved experiments, the MLflow store, the machine ceiling, and (for parity)
    the reference backend's results on the same experiments and seeds."""
    exps = PLAN.experiments_for(wildcards.backend)
    inputs = {
        "datasets": sorted({f"results/datasets/{PLAN.experiments[e].dataset}.npz" for e in exps}),
        "resolved": "results/experiments.json",
        "store": STORE,
        "machine": "results/machine.json",
    }
    if wildcards.backend != backends.REFERENCE and backends.REFERENCE in PLAN.backends:
        seeds = PLAN.seeds_for(backends.REFERENCE)  # all of them: parity judges final metrics on their spread
        inputs["reference"] = [run_file(e, backends.REFERENCE, "cpu", s) for e in exps for s in seeds]
    return inputs
