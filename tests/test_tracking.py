"""MLflow logging against the real store: many writers at once, orphan sweep, reruns, the REST API."""

import json
import multiprocessing as mp
import os
import stat
import time
from pathlib import Path

import pytest

from tests.helpers_results import moons_logistic_result
from tests.scaleout import free_port, mlflow_server, rest
from workflow.lib import catalogue
from workflow.lib.run_record import curve_steps
from workflow.lib.store import MARKER, StoreError, resolve_uri
from workflow.lib.tracking import (
    MAX_BATCH,
    MAX_METRICS,
    MAX_PARAMS,
    MAX_TAGS,
    batches,
    default_uri,
    init_store,
    log_run,
)

N_WRITERS = 8


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run result: moons-logistic trained by the NumPy reference for a few epochs."""
    return moons_logistic_result(tmp_path_factory.mktemp("ds"))


def _client(results: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=default_uri(results))


def _log(args):
    result, i, results = args
    r = json.loads(json.dumps(result))
    r["experiment"] = f"exp{i}"
    return log_run(r, [], default_uri(results), "parallel", results)["run_id"]


def test_many_parallel_writers_lose_no_run(result, tmp_path):
    results = tmp_path / "results"
    init_store(default_uri(results), "parallel", results)
    with mp.get_context("spawn").Pool(N_WRITERS) as pool:
        ids = pool.map(_log, [(result, i, results) for i in range(N_WRITERS)])
    client = _client(results)
    exp = client.get_experiment_by_name("parallel")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.info.run_id for r in runs) == sorted(ids)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.metrics["train_accuracy"] == pytest.approx(result["metrics"]["train"]["accuracy"])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == curve_steps(len(result["loss_history"]))


def test_mlflow_run_spans_the_training_wall_time(result, tmp_path):
    """The UI's Duration is the training's: the run starts and ends at the quality training's own times."""
    results = tmp_path / "results"
    run_id = log_run(json.loads(json.dumps(result)), [], default_uri(results), "span", results)["run_id"]
    info = _client(results).get_run(run_id).info
    span = result["timings"]["training_wall"]
    assert abs(info.start_time / 1000 - span["start"]) < 0.002 and abs(info.end_time / 1000 - span["end"]) < 0.002
    assert abs((info.end_time - info.start_time) / 1000 - (span["end"] - span["start"])) < 1.0


def test_rerun_replaces_the_run_and_orphans_are_killed(result, tmp_path):
    results = tmp_path / "results"
    uri = default_uri(results)
    exp_id = init_store(uri, "rerun", results)
    client = _client(results)
    orphan = client.create_run(exp_id)  # what a job killed while logging leaves behind
    first = log_run(dict(result), [], uri, "rerun", results)["run_id"]
    second = log_run(dict(result), [], uri, "rerun", results)["run_id"]
    active = client.search_runs([exp_id], filter_string="tags.run_key = 'moons-logistic/numpy/cpu/seed0'")
    assert [r.info.run_id for r in active] == [second]
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"


def test_jobs_use_the_experiment_id_of_the_store_marker(result, tmp_path):
    """init_store records the id; jobs start runs there, never racing to create the experiment."""
    results = tmp_path / "results"
    uri = default_uri(results)
    exp_id = init_store(uri, "marked", results)
    assert json.loads((results / MARKER).read_text())["experiment_id"] == exp_id
    client = _client(results)
    client.rename_experiment(exp_id, "renamed")  # a lookup by name would now create a new one
    record = log_run(dict(result), [], uri, "marked", results)
    assert record["experiment_id"] == exp_id and client.get_experiment_by_name("marked") is None


def test_run_result_names_no_absolute_path(result, tmp_path):
    results = tmp_path / "results"
    r = dict(result)
    log_run(r, [], default_uri(results), "portable", results)
    assert r["mlflow"]["tracking_uri"] == "sqlite:///results/mlflow.db"
    assert str(tmp_path) not in json.dumps(r)


def test_batches_keep_every_entry_within_mlflows_limits():
    metrics, params, tags = list(range(2500)), [f"p{i}" for i in range(250)], [f"t{i}" for i in range(130)]
    got = list(batches(metrics, params, tags))
    assert [x for b in got for x in b["metrics"]] == metrics
    assert [x for b in got for x in b["params"]] == params and [x for b in got for x in b["tags"]] == tags
    for b in got:
        assert len(b["metrics"]) <= MAX_METRICS and len(b["params"]) <= MAX_PARAMS and len(b["tags"]) <= MAX_TAGS
        assert len(b["metrics"]) + len(b["params"]) + len(b["tags"]) <= MAX_BATCH
    assert len(got) == 3  # 2880 entries: three calls of at most 1000
    assert list(batches([], [], [])) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o007, 0o660), (0o077, 0o600)])
def test_run_result_file_honours_the_umask(tmp_path, umask, mode):
    from workflow.scripts.train import write_json

    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("mysql://u@h/db", "unsupported store 'mysql'"),
        ("127.0.0.1:5000", "unsupported store"),
        ("http://", "names no host"),
        ("http://127.0.0.1:99999", "bad port"),
        ("postgresql://u:secret@127.0.0.1:5432", "names no database"),
    ],
)
def test_bad_tracking_uri_names_the_fix(tmp_path, uri, expected):
    with pytest.raises(StoreError, match=expected) as e:
        resolve_uri(uri, tmp_path)
    assert "mlflow.tracking_uri" in str(e.value) and "mlflow server" in str(e.value)
    assert "secret" not in str(e.value)


def test_unreachable_server_fails_fast_and_the_run_result_is_kept(result, tmp_path):
    from workflow.scripts import train

    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="is not reachable.*mlflow server"):
        init_store(resolve_uri(uri, tmp_path), "x", tmp_path / "results")
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "results" / MARKER).exists()
    import datasets

    results = tmp_path / "results"
    (results / "datasets").mkdir(parents=True)
    datasets.build("moons", seed=0).save(results / "datasets/moons.npz", results / "datasets/moons.json")
    resolved = results / "experiments.json"
    resolved.write_text(json.dumps({"moons-logistic": json.loads(catalogue.load()["moons-logistic"].to_json())}))
    args = ["--experiments", "moons-logistic", "--backend", "numpy", "--device", "cpu", "--resolved", str(resolved)]
    args += ["--threads", "1", "--repeats", "1", "--min-repeat-seconds", "0.01", "--seeds", "0"]
    args += ["--inference-batch", "256", "--epochs-scale", "0.05", "--results", str(results), "--uri", uri]
    assert train.main([*args, "--mlflow-experiment", "x"]) == 0
    out = results / "runs/moons-logistic/numpy-cpu/seed0.json"
    kept = json.loads(out.read_text())
    assert kept["status"] == "ok" and "not reachable" in kept["mlflow"]["error"]


def test_unreachable_postgresql_names_the_fix(tmp_path):
    uri = f"postgresql://fwbench:secret@127.0.0.1:{free_port()}/mlflow"
    with pytest.raises(StoreError, match="is not usable.*createdb") as e:
        init_store(resolve_uri(uri, tmp_path), "x", tmp_path / "results")
    assert "secret" not in str(e.value) and "fwbench:***@" in str(e.value)


@pytest.mark.slow
def test_mlflow_server_serves_the_runs_over_rest(result, tmp_path):
    results = tmp_path / "results"
    uri = default_uri(results)
    run_id = log_run(dict(result), [], uri, "served", results)["run_id"]
    # its own process group, stopped as a group with bounded waits (tests/scaleout.py)
    with mlflow_server(uri, tmp_path / "artifacts", workers=1) as base:
        exp_id = rest(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=served")["experiment"][
            "experiment_id"
        ]
        runs = rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]
        tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
        assert tags["backend"] == "numpy" and tags["experiment"] == "moons-logistic"
        metrics = {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]}
        assert metrics["train_accuracy"] == pytest.approx(result["metrics"]["train"]["accuracy"])
