"""End to end: a real Snakemake run in a temporary directory, the real MLflow store read back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers_results import seed_calibration
from tests.paths import ROOT


def snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cfg_args = []
    if config is not None:
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cfg_args = ["--configfile", str(path)]
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(ROOT / "profiles/default"),
        *cfg_args,
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def small_config():
    return yaml.safe_load((ROOT / "config/test.yaml").read_text())


def mlflow_runs(workdir: Path, experiment: str, view="active"):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'results/mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    vt = ViewType.ACTIVE_ONLY if view == "active" else ViewType.ALL
    return client, client.search_runs([exp.experiment_id], run_view_type=vt, max_results=1000)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The small config at --cores 8: 8 training jobs at once against one SQLite store."""
    work = tmp_path_factory.mktemp("pipeline")
    cfg = small_config() | {"timing_processes": 2}  # the job and one timing replica
    snakemake(work, "--cores", "8", config=cfg)
    return work, cfg


@pytest.mark.slow
def test_every_run_result_is_complete(pipeline):
    work, cfg = pipeline
    for exp in cfg["experiments"]:
        for backend in cfg["backends"]:
            files = sorted((work / f"results/runs/{exp}/{backend}-cpu").glob("seed*.json"))
            assert [p.name for p in files] == [f"seed{s}.json" for s in cfg["seeds"]]  # one run result per seed
            for path in files:
                r = json.loads(path.read_text())
                assert r["status"] == "ok", r["message"]
                assert r["seed"] == int(path.stem.removeprefix("seed")) and r["mlflow"]["run_id"]
                assert r["reported"][0]["measured"] is not None and 0 <= r["metrics"]["test"]["accuracy"] <= 1
                # the first seed is timed, the others are trained for quality only
                assert r["timings"]["timed"] == (r["seed"] == cfg["seeds"][0])
                if backend != "numpy":
                    assert r["parity"]["max_rel_loss_deviation"] < 1e-3
            r = json.loads(files[0].read_text())
            # the first seed (the test config's epochs are scaled down: later seeds may stop short of it)
            assert r["metrics"]["test"]["accuracy"] > 0.75
            for key in ("accuracy", "precision", "recall", "f1", "confusion_matrix"):
                assert key in r["metrics"]["train"]
            t = r["timings"]
            # pooled over the job's own process and its timing replicas (fresh processes)
            n = cfg["repeats"] * cfg["timing_processes"]
            assert t["train_samples_per_s"]["median"] > 0 and len(t["train_samples_per_s"]["raw"]) == n
            assert len(t["train_samples_per_s"]["processes"]) == cfg["timing_processes"]
            # every process of the job started as untimed work (SCHED_IDLE, from the Snakefile's onstart), so
            # nothing it started before lowering its own priority competed with a timed section
            assert all(s["process_started_idle"] for s in [t["section"], *t.get("process_sections", [])]), t["section"]
            # each process's figure beside the machine's speed as that process timed it (the speed probe)
            assert all(p["probe_gflops"] > 0 for p in t["train_samples_per_s"]["processes"])
            assert t["inference_samples_per_s"]["median"] > 0
            assert r["environment"]["fingerprint"] and r["mlflow"]["run_id"]
            if backend != "numpy":
                assert r["parity"]["max_rel_loss_deviation"] < 1e-3
            assert r["reported"][0]["measured"] is not None


def parent_and_children(runs: list) -> tuple:
    """The invocation's parent run (workflow/lib/parent.py) and the training runs."""
    parents = [r for r in runs if "fwbench.parent_key" in r.data.tags]
    assert len(parents) == 1, f"{len(parents)} parent runs"
    return parents[0], [r for r in runs if r is not parents[0]]


@pytest.mark.slow
def test_mlflow_has_every_run_complete(pipeline):
    work, cfg = pipeline
    client, runs = mlflow_runs(work, cfg["mlflow"]["experiment"])
    parent, runs = parent_and_children(runs)
    assert parent.info.status == "FINISHED"
    assert {"config.json", "index.html", "summary.csv"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    keys = sorted(r.data.tags["run_key"] for r in runs)
    seeds = cfg["seeds"]
    assert keys == sorted(f"{e}/{b}/cpu/seed{s}" for e in cfg["experiments"] for b in cfg["backends"] for s in seeds)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"experiment", "dataset", "backend", "mode", "device", "fingerprint"} <= set(run.data.tags)
        assert "spec.optimizer.learning_rate" in run.data.params and "train_accuracy" in run.data.metrics
        timed = run.data.tags["seed"] == str(seeds[0])  # throughput on the first seed only
        assert ("train_samples_per_s_median" in run.data.metrics) == timed
        if timed:  # the spread inside each process and between the fresh processes, and each process's median
            m = run.data.metrics
            assert m["train_samples_per_s_within_process_spread"] >= 0
            assert m["train_samples_per_s_between_process_spread"] >= 0
            medians = client.get_metric_history(run.info.run_id, "train_samples_per_s_process_median")
            assert sorted(x.step for x in medians) == list(range(cfg["timing_processes"]))
            probes = client.get_metric_history(run.info.run_id, "process_probe_gflops")
            assert sorted(x.step for x in probes) == list(range(cfg["timing_processes"]))
            assert m["train_samples_per_s_interval_low"] <= m["train_samples_per_s_median"]
            assert m["train_samples_per_s_median"] <= m["train_samples_per_s_interval_high"]
            assert "% interval order statistics of" in run.data.tags["timing_interval"], run.data.tags
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == list(range(len(history))) and len(history) > 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "result.json" in artifacts and any(p.endswith(".png") for p in artifacts) == timed  # figures: timed


@pytest.mark.slow
def test_report_and_summary_written(pipeline):
    work, cfg = pipeline
    import pandas as pd

    summary = pd.read_csv(work / "results/summary.csv")
    assert len(summary) == len(cfg["experiments"]) * len(cfg["backends"]) * len(cfg["seeds"])
    html = (work / "results/report/index.html").read_text()
    for backend in cfg["backends"]:
        assert backend in html
    assert "moons-mlp" in html and "moons-logistic" in html


@pytest.mark.slow
def test_snakemake_report_bundles_the_key_plots(pipeline):
    work, cfg = pipeline
    snakemake(work, "--report", str(work / "snakemake-report.zip"), config=cfg)
    import zipfile

    names = zipfile.ZipFile(work / "snakemake-report.zip").namelist()
    assert any(n.endswith("summary.csv") for n in names)
    assert any(n.endswith(".png") for n in names)


def planned_trainings(proc: subprocess.CompletedProcess) -> set[str]:
    """The backend of every train job (one per backend and device) a dry run would run."""
    out = set()
    for line in proc.stdout.splitlines():
        if line.strip().startswith("wildcards:") and "backend=" in line and "sweep=" not in line:
            kv = dict(part.strip().split("=", 1) for part in line.split(":", 1)[1].split(","))
            out.add(kv["backend"])
    return out


@pytest.mark.slow
def test_editing_one_experiment_reruns_the_trainings_not_the_data(pipeline, tmp_path):
    """A training job serves every experiment of its backend (one framework import per backend), so
    an edited entry reruns every backend's job and the report, and nothing upstream of them."""
    work, cfg = pipeline
    nothing = snakemake(work, "-n", "--cores", "1", config=cfg)
    assert planned_trainings(nothing) == set() and "Nothing to be done" in nothing.stdout + nothing.stderr
    catalogue = yaml.safe_load((ROOT / "config/experiments.yaml").read_text())
    edited = cfg["experiments"][0]
    catalogue["experiments"][edited]["epochs"] += 1
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    proc = snakemake(work, "-n", "--cores", "1", config={**cfg, "catalogue": str(tmp_path / "catalogue.yaml")})
    assert planned_trainings(proc) == set(cfg["backends"]), proc.stdout[-3000:]
    assert "rule report:" in proc.stdout and "rule summary:" in proc.stdout
    assert "rule dataset:" not in proc.stdout and "rule calibrate:" not in proc.stdout


@pytest.mark.slow
def test_rerun_leaves_no_duplicate_runs_and_sweeps_orphans(pipeline):
    work, cfg = pipeline
    client, before = mlflow_runs(work, cfg["mlflow"]["experiment"])
    # A job killed while logging leaves a run RUNNING: make one through the real store.
    orphan = client.create_run(before[0].info.experiment_id, tags={"run_key": "killed/job/cpu"})
    target = f"results/runs/{cfg['experiments'][0]}/jax-cpu/seed0.json"  # the jax job: every experiment
    snakemake(work, "--cores", "2", target, "--forcerun", "train", "--allowed-rules", "train", config=cfg)
    client, after = mlflow_runs(work, cfg["mlflow"]["experiment"])
    parent, children = parent_and_children(after)  # the same commit and config: the same parent
    keys = [r.data.tags["run_key"] for r in children]
    assert len(keys) == len(set(keys)), "a rerun left two active runs for one job"
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert not [r for r in after if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_diverging_run_is_recorded_and_pipeline_goes_on(tmp_path, calibrated):
    cat = yaml.safe_load((ROOT / "config/experiments.yaml").read_text())
    base = cat["experiments"]["hotels-linear-linear"]
    boom = dict(base, optimizer={"name": "sgd", "learning_rate": 1.0e30})
    cat["experiments"] = {"hotels-boom": boom, "hotels-linear-linear": base}
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    cfg = small_config() | {
        "experiments": ["hotels-boom", "hotels-linear-linear"],
        "backends": ["numpy", "jax"],
        "catalogue": str(tmp_path / "catalogue.yaml"),
        "repeats": 1,
        "seeds": [0],
    }
    seed_calibration(tmp_path, calibrated)
    snakemake(tmp_path, "--cores", "2", config=cfg)
    r = json.loads((tmp_path / "results/runs/hotels-boom/jax-cpu/seed0.json").read_text())
    assert r["status"] == "diverged" and "NaN" in r["message"] and r["loss_history"]
    ok = json.loads((tmp_path / "results/runs/hotels-linear-linear/jax-cpu/seed0.json").read_text())
    assert ok["status"] == "ok"
    assert "diverged" in (tmp_path / "results/report/index.html").read_text()


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"bogus_key": 1}, "bogus_key"),
        ({"threads": 0}, "threads"),
        ({"backends": ["numpy", "caffe"]}, "unknown backend"),
        ({"experiments": ["moons-nope"]}, "unknown experiment"),
        ({"devices": ["tpu"]}, "tpu"),
        ({"mlflow": {"tracking_uri": "mysql://u@h/db", "experiment": "e"}}, "unsupported store 'mysql'"),
    ],
)
def test_bad_config_stops_with_a_clear_message(tmp_path, override, expected):
    proc = snakemake(tmp_path, "-n", config=small_config() | override, check=False)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
    assert not (tmp_path / "results/runs").exists()


def test_auto_schedules_no_gpu_job_without_a_gpu(tmp_path):
    """devices: [auto] probes this machine: where no backend sees CUDA, cpu jobs only, never a failure."""
    import backends

    if "gpu" in backends.get_backend("torch").devices():
        pytest.skip("this machine has a GPU; the skip path is exercised only without one")
    cfg = small_config() | {"devices": ["auto"], "backends": ["numpy", "torch"]}
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert "no gpu job" in proc.stderr
    assert "-gpu/seed" not in proc.stdout


@pytest.mark.slow
def test_gpu_jobs_are_planned_without_probing_and_check_their_device_where_they_run(tmp_path, calibrated):
    """devices: [cpu, gpu] plans a gpu job for every backend with a CUDA path without probing the
    planning host (a cluster's submit host has none); the job checks its device where it runs."""
    import backends

    cfg = small_config() | {"devices": ["cpu", "gpu"], "backends": ["numpy", "torch"], "repeats": 1, "seeds": [0]}
    cfg["experiments"] = cfg["experiments"][:1]  # the gpu job's failure path needs one experiment
    plan = snakemake(tmp_path, "-n", config=cfg)
    assert "backend=torch, device=gpu" in plan.stdout and "backend=numpy, device=gpu" not in plan.stdout
    if "gpu" in backends.get_backend("torch").devices():
        pytest.skip("this machine has a GPU: the job would train there; the failure path needs a machine without one")
    job = f"results/runs/{cfg['experiments'][0]}/torch-gpu/seed0.json"
    seed_calibration(tmp_path, calibrated)
    snakemake(tmp_path, "--cores", "2", job, config=cfg)
    result = json.loads((tmp_path / job).read_text())
    assert result["status"] == "failed" and "sees no 'gpu' device" in result["message"]


@pytest.mark.parametrize("tool", ["snakemake-lint", "ruff"])
def test_workflow_and_code_are_lint_clean(tmp_path, tool):
    if tool == "ruff":
        proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
        return
    proc = snakemake(tmp_path, "--lint", check=False)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout
