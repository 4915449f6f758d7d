"""The pipeline on a real Slurm cluster (one node on 127.0.0.1) through profiles/slurm."""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.scaleout import run_bounded, skip_reason, slurm_cluster

ROOT = Path(__file__).resolve().parents[1]
# The rules up to the run results on Slurm, two training jobs (one per backend, each training every
# experiment): the reference and one framework. Each job costs a sbatch round trip, a Snakemake start
# inside the job and a framework import on the 2-core machine, so the summary and report (the same
# kind of job, tested in test_pipeline.py) are left out: the targets are the run results.
EXPERIMENTS = ["moons-logistic", "moons-mlp"]
BACKENDS = ["numpy", "jax"]
TARGETS = [f"results/runs/{e}/{b}-cpu/seed0.json" for e in EXPERIMENTS for b in BACKENDS]
SNAKEMAKE_TIMEOUT_S = 1500

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SNAKEMAKE_TIMEOUT_S + 300)]


@pytest.fixture(scope="module")
def cluster():
    reason = skip_reason("slurm")
    if reason:
        pytest.skip(reason)
    with slurm_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("slurm")
    cfg = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    cfg |= {"experiments": EXPERIMENTS, "backends": BACKENDS, "repeats": 1, "epochs_scale": 0.2, "seeds": [0]}
    cfg["mlflow"] = {"tracking_uri": None, "experiment": "fwbench-slurm"}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--executor", "slurm"]
    cmd += ["--workflow-profile", str(ROOT / "profiles/slurm"), "--directory", str(work)]
    cmd += ["--configfile", str(work / "config.yaml")]
    # A one-node test cluster answers at once: poll every second instead of the profile's 10 s (the
    # Slurm plugin waits about one polling interval per DAG level). Everything else is the profile's.
    cmd += ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    cmd += TARGETS
    proc = run_bounded(cmd, {**cluster.env, "PYTHONPATH": str(ROOT)}, SNAKEMAKE_TIMEOUT_S)
    assert proc.returncode == 0, f"snakemake --executor slurm failed ({proc.returncode}):\n{proc.stdout[-8000:]}"
    return work, cfg, proc.stdout, cluster


def test_every_job_ran_as_a_slurm_job_with_the_profiles_resources(slurm_run):
    work, cfg, log, cluster = slurm_run
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log))
    rules = sorted(submitted.values())
    n_train = len(BACKENDS)  # one job per backend and device
    # config_record and mlflow_store are local rules: they run on the submit host
    assert rules == sorted(["calibrate", "dataset"] + ["train"] * n_train), log[-4000:]
    done = {
        m.group(1): line for line in cluster.jobcomp.read_text().splitlines() if (m := re.match(r"JobId=(\d+) ", line))
    }
    # what Snakemake resolved per rule (the rule's own resources, profiles/slurm's set-resources for train)
    resolved = {
        m.group(1): (re.search(r"mem_mb=(\d+)", m.group(2)).group(1), re.search(r"runtime=(\d+)", m.group(2)).group(1))
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", log, re.M | re.S)
    }
    assert resolved["train"] == ("6000", "240"), resolved  # profiles/slurm's set-resources
    for job_id, rule in submitted.items():
        line = done[job_id]
        assert "JobState=COMPLETED" in line, line
        mem, limit = resolved[rule]  # ... and they reached sbatch: --mem and --time
        assert f"mem={mem}M" in line and f"TimeLimit={limit} " in line, line


def test_every_run_result_is_ok_and_in_mlflow(slurm_run):
    work, cfg, _, _ = slurm_run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results/mlflow.db'}")
    exp = client.get_experiment_by_name(cfg["mlflow"]["experiment"])
    found = client.search_runs([exp.experiment_id], max_results=100)
    (parent,) = [r for r in found if "fwbench.parent_key" in r.data.tags]  # the hooks ran on the submit host
    assert parent.info.status == "FINISHED"
    runs = {f"{t['experiment']}/{t['backend']}/{t['device']}": r for r in found if "run_key" in (t := r.data.tags)}
    for e in EXPERIMENTS:
        for b in BACKENDS:
            r = json.loads((work / f"results/runs/{e}/{b}-cpu/seed0.json").read_text())
            assert r["status"] == "ok", r["message"]
            assert r["mlflow"]["experiment_id"] == exp.experiment_id
            assert r["mlflow"]["tracking_uri"] == "sqlite:///results/mlflow.db"
            run = runs.pop(f"{e}/{b}/cpu")
            assert run.info.run_id == r["mlflow"]["run_id"] and run.info.status == "FINISHED"
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id == r["mlflow"]["parent_run_id"]
            assert run.data.metrics["train_accuracy"] == pytest.approx(r["metrics"]["train"]["accuracy"])
    assert not runs, f"unexpected runs: {sorted(runs)}"
