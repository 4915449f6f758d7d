"""A team's store: `mlflow server` on a real PostgreSQL, the pipeline at --cores 8 against it, every
run read back over the REST API; and parallel writers straight to a fresh postgresql:// database."""

import json
import multiprocessing as mp
import stat
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers_results import moons_logistic_result, seed_calibration
from tests.scaleout import mlflow_server, postgres_server, rest, run_bounded, skip_reason
from workflow.lib.store import MARKER, resolve_uri
from workflow.lib.tracking import ORPHAN_AFTER_S, init_store, log_run

ROOT = Path(__file__).resolve().parents[1]
# Two training jobs through `mlflow server` into PostgreSQL: the reference and one framework.
EXPERIMENTS = ["moons-mlp"]
BACKENDS = ["numpy", "jax"]
PASSWORD = "s3cret-pw"
N_WRITERS = 8

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def pg():
    reason = skip_reason("postgres")
    if reason:
        pytest.skip(reason)
    with postgres_server() as server:
        server.sql(f"CREATE ROLE fwbench LOGIN PASSWORD '{PASSWORD}'")
        yield server


@pytest.fixture(scope="module")
def server(pg):
    pg.sql("CREATE DATABASE mlflow OWNER fwbench")
    artifacts = pg.dir / "artifacts"
    with mlflow_server(pg.uri("mlflow", "fwbench", PASSWORD), artifacts, workers=2) as url:
        yield url, artifacts


@pytest.fixture(scope="module")
def pipeline(server, tmp_path_factory, calibrated):
    """The small config, 8 jobs at once, every run logged to the server; files written under umask 002.
    The targets are the run results (the summary and report read files only: test_pipeline.py)."""
    url, _ = server
    work = tmp_path_factory.mktemp("team")
    cfg = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    cfg |= {"experiments": EXPERIMENTS, "backends": BACKENDS, "repeats": 1, "epochs_scale": 0.2, "seeds": [0]}
    cfg["mlflow"] = {"tracking_uri": url, "experiment": "fwbench-team"}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    seed_calibration(work, calibrated)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "8", "--directory", str(work)]
    cmd += ["--workflow-profile", str(ROOT / "profiles/default"), "--configfile", str(work / "config.yaml")]
    cmd += ["--"] + [str(path.relative_to(work)) for path in run_files(work).values()]  # after --configfile's list
    proc = run_bounded(cmd, {"PYTHONPATH": str(ROOT)}, timeout=1200, umask=0o002)
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stdout[-8000:]}"
    return work, cfg


def run_files(work: Path) -> dict[str, Path]:
    return {f"{e}/{b}/cpu": work / f"results/runs/{e}/{b}-cpu/seed0.json" for e in EXPERIMENTS for b in BACKENDS}


def run_results(work: Path) -> dict[str, dict]:
    return {key: json.loads(path.read_text()) for key, path in run_files(work).items()}


def test_every_run_metric_history_and_artifact_served_over_rest(server, pipeline):
    url, artifacts = server
    work, cfg = pipeline
    exp_id = rest(url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=fwbench-team")["experiment"][
        "experiment_id"
    ]
    runs = rest(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
    (parent,) = [r for r, t in zip(runs, tags) if "fwbench.parent_key" in t]
    assert parent["info"]["status"] == "FINISHED"
    by_key = {f"{t['experiment']}/{t['backend']}/{t['device']}": r for r, t in zip(runs, tags) if "run_key" in t}
    results = run_results(work)
    assert sorted(by_key) == sorted(results)
    # the set_experiment race would put runs in the Default experiment: none there
    assert not rest(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"]}).get("runs")
    for key, result in results.items():
        run = by_key[key]
        run_id = run["info"]["run_id"]
        assert result["status"] == "ok" and result["mlflow"]["run_id"] == run_id
        parent_id = parent["info"]["run_id"]
        assert result["mlflow"] == {
            "run_id": run_id,
            "experiment_id": exp_id,
            "tracking_uri": url,
            "parent_run_id": parent_id,
        }
        assert run["info"]["status"] == "FINISHED"
        q = urllib.parse.urlencode({"run_id": run_id, "metric_key": "loss", "max_results": 10000})
        history = rest(url, f"/api/2.0/mlflow/metrics/get-history?{q}")["metrics"]
        assert [m["step"] for m in history] == list(range(len(result["loss_history"])))
        assert [m["value"] for m in history] == pytest.approx(result["loss_history"], rel=1e-6)
        listed = {f["path"] for f in rest(url, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")["files"]}
        assert "result.json" in listed and any(p.endswith(".png") for p in listed)
        q = urllib.parse.urlencode({"run_uuid": run_id, "path": "result.json"})
        with urllib.request.urlopen(f"{url}/get-artifact?{q}", timeout=60) as r:
            served = json.load(r)
        assert served["mlflow"]["run_id"] == run_id and served["experiment"] == result["experiment"]
        # artifacts went where the server says (its --artifacts-destination), not to results/
        assert (artifacts / exp_id / run_id / "artifacts" / "result.json").is_file()
    assert not (work / "results/mlartifacts").exists() and not (work / "results/mlflow.db").exists()


def test_run_results_are_shareable(server, pipeline):
    work, _ = pipeline
    for path in run_files(work).values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, f"{path}: not written with the umask (002)"
        text = path.read_text()
        assert str(work) not in text and str(ROOT) not in text and PASSWORD not in text
    marker = json.loads((work / "results" / MARKER).read_text())
    assert marker["tracking_uri"] == server[0] and PASSWORD not in json.dumps(marker)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run result: moons-logistic trained by the NumPy reference for a few epochs."""
    return moons_logistic_result(tmp_path_factory.mktemp("ds"), repeats=1)


def _log(args):
    result, i, uri, results = args
    r = json.loads(json.dumps(result))
    r["experiment"] = f"exp{i}"
    return log_run(r, [], uri, "direct", results)["run_id"]


def test_parallel_writers_straight_to_a_fresh_database(pg, result, tmp_path, monkeypatch):
    """init_store creates the schema and the experiment once; 8 writers then lose no run."""
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root of a SQL store is ./mlruns
    pg.sql("CREATE DATABASE direct OWNER fwbench")
    uri = resolve_uri(pg.uri("direct", "fwbench", PASSWORD), tmp_path)
    results = tmp_path / "results"
    exp_id = init_store(uri, "direct", results)
    with mp.get_context("spawn").Pool(N_WRITERS) as pool:
        ids = pool.map(_log, [(result, i, uri, results) for i in range(N_WRITERS)], chunksize=1)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([exp_id], max_results=100)
    assert sorted(r.info.run_id for r in runs) == sorted(ids)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert not client.search_runs(["0"], max_results=10)
    assert not (results / "mlflow.db").exists() and not (results / "mlflow.db.lock").exists()
    location = client.get_experiment(exp_id).artifact_location  # MLflow's default for the store
    assert Path(location.removeprefix("file://")) == tmp_path / "mlruns" / exp_id


def test_shared_store_sweeps_only_dead_jobs_runs_and_replaces_reruns(pg, result, tmp_path, monkeypatch):
    """Others log at the same moment on a shared store: a RUNNING run of another job is left alone."""
    monkeypatch.chdir(tmp_path)
    pg.sql("CREATE DATABASE sweep OWNER fwbench")
    uri = resolve_uri(pg.uri("sweep", "fwbench", PASSWORD), tmp_path)
    results = tmp_path / "results"
    exp_id = init_store(uri, "sweep", results)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    key = "moons-logistic/numpy/cpu/seed0"
    first = log_run(dict(result), [], uri, "sweep", results)["run_id"]
    killed_attempt = client.create_run(exp_id, tags={"run_key": key}).info.run_id
    live_other_job = client.create_run(exp_id, tags={"run_key": "other/jax/cpu"}).info.run_id
    old = int((time.time() - 2 * ORPHAN_AFTER_S) * 1000)
    long_dead = client.create_run(exp_id, start_time=old, tags={"run_key": "old/torch/cpu"}).info.run_id
    long_pipeline = client.create_run(exp_id, start_time=old, tags={"fwbench.parent_key": "c/h"}).info.run_id
    second = log_run(dict(result), [], uri, "sweep", results)["run_id"]
    assert client.get_run(killed_attempt).info.status == "KILLED"
    assert client.get_run(long_dead).info.status == "KILLED"
    assert client.get_run(long_pipeline).info.status == "RUNNING", "a parent ends with its pipeline, not in a sweep"
    assert client.get_run(live_other_job).info.status == "RUNNING"
    active = client.search_runs([exp_id], filter_string=f"tags.run_key = '{key}'")
    assert [r.info.run_id for r in active] == [second]
    assert client.get_run(first).info.lifecycle_stage == "deleted"


def test_parent_on_a_fresh_database_before_the_store_job(pg, result, tmp_path, monkeypatch):
    """onstart runs before the mlflow_store job on a first run: start_parent creates the schema itself."""
    from workflow.lib.parent import end_parent, parent_key, start_parent

    monkeypatch.chdir(tmp_path)
    pg.sql("CREATE DATABASE parent OWNER fwbench")
    uri = resolve_uri(pg.uri("parent", "fwbench", PASSWORD), tmp_path)
    results = tmp_path / "results"
    config = {"experiments": ["moons-logistic"], "mlflow": {"tracking_uri": uri, "experiment": "parent"}}
    parent = start_parent(uri, "parent", results, parent_key("c" * 40, config), config, "c" * 40)
    assert parent is not None and PASSWORD not in json.dumps(parent)
    record = log_run(dict(result), [], uri, "parent", results)
    assert record["parent_run_id"] == parent["run_id"]
    assert end_parent(uri, results, "FINISHED")
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(parent["run_id"])
    assert run.info.status == "FINISHED" and PASSWORD not in json.dumps(run.data.params)
