"""Parent and child runs against the real store: one parent per invocation (commit, config), one child
per training and seed, reruns replacing children within their own parent only, and what the REST API
of a real `mlflow server` shows of them."""

import copy
import json
import os
import time

import pytest

from tests.helpers_results import moons_logistic_result
from tests.scaleout import free_port, mlflow_server, rest
from workflow.lib.parent import end_parent, parent_key, start_parent
from workflow.lib.run_record import plain_commit
from workflow.lib.store import MARKER
from workflow.lib.tracking import PARENT, default_uri, log_run

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SECRET = "s3cret-pw"
CONFIG = {
    "experiments": ["moons-logistic"],
    "backends": ["numpy"],
    "devices": ["cpu"],
    "threads": 1,
    "seeds": [0, 1],
    "mlflow": {"tracking_uri": f"postgresql://fwbench:{SECRET}@db.example.org/mlflow", "experiment": "runs"},
}
KEY = parent_key(COMMIT, CONFIG)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run result: moons-logistic trained by the NumPy reference for a few epochs."""
    return moons_logistic_result(tmp_path_factory.mktemp("ds"))


def seeded(result: dict, seed: int) -> dict:
    """The same result as the job's run of another seed (what a multi-seed job logs)."""
    r = copy.deepcopy(result)
    r["seed"] = seed
    return r


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def children(client, experiment_id: str, parent_id: str) -> dict[str, str]:
    """run_key -> run id of the parent's active children."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {r.data.tags["run_key"]: r.info.run_id for r in runs}


def test_one_child_per_seed_under_the_invocations_parent(result, tmp_path):
    results = tmp_path / "results"
    uri = default_uri(results)
    parent = start_parent(uri, "runs", results, KEY, CONFIG, COMMIT)  # a first run: no store yet
    assert json.loads((results / PARENT).read_text()) == parent
    assert parent["tracking_uri"] == "sqlite:///results/mlflow.db" and parent["key"] == KEY
    assert not (results / MARKER).exists(), "the marker is the mlflow_store job's output, never onstart's"
    records = {s: log_run(seeded(result, s), [], uri, "runs", results) for s in (0, 1)}
    client = _client(uri)
    pid = parent["run_id"]
    assert children(client, parent["experiment_id"], pid) == {
        f"moons-logistic/numpy/cpu/seed{s}": rec["run_id"] for s, rec in records.items()
    }
    commit = plain_commit(result["environment"]["git_commit"])
    assert commit and len(commit) == 40
    for s, rec in records.items():
        assert rec["parent_run_id"] == pid
        run = client.get_run(rec["run_id"])
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == pid and tags["seed"] == str(s) and run.data.params["seed"] == str(s)
        assert tags["mlflow.source.git.commit"] == commit
        note = tags["mlflow.note.content"]
        assert note.startswith(f"moons-logistic: numpy on cpu, seed {s}, ok; test accuracy") and "\n" not in note
        inputs = {inp.dataset.name: inp for inp in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["moons-test", "moons-train"]
        for split, context in (("train", "training"), ("test", "testing")):
            inp = inputs[f"moons-{split}"]
            assert inp.dataset.digest == result["dataset_checksum"][:36]
            assert json.loads(inp.dataset.profile) == {
                "sha256": result["dataset_checksum"],
                "task": "binary",
                "split": split,
            }
            assert json.loads(inp.dataset.source) == {"uri": "results/datasets/moons.npz", "split": split}
            assert {(t.key, t.value) for t in inp.tags} == {("mlflow.data.context", context)}

    run = client.get_run(pid)
    assert run.info.status == "RUNNING", "a child's orphan sweep must leave the running parent alone"
    assert run.data.tags["fwbench.parent_key"] == KEY and run.data.tags["mlflow.source.git.commit"] == COMMIT
    assert run.data.tags["fingerprint"] and COMMIT in run.data.tags["mlflow.note.content"]
    assert run.data.params["experiments"] == '["moons-logistic"]' and run.data.params["threads"] == "1"
    assert SECRET not in json.dumps(run.data.params) and "fwbench:***@" in run.data.params["mlflow.tracking_uri"]
    listed = {f.path for f in client.list_artifacts(pid)}
    assert {"config.json", "environment.json"} <= listed
    logged = json.loads((tmp_path / client.download_artifacts(pid, "config.json", str(tmp_path))).read_text())
    assert logged["seeds"] == [0, 1] and SECRET not in json.dumps(logged)

    stale, report = tmp_path / "summary.csv", tmp_path / "index.html"
    stale.write_text("an earlier invocation's\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    report.write_text("<html></html>\n")
    assert end_parent(uri, results, "FINISHED", [report, stale, tmp_path / "absent.csv"])
    assert client.get_run(pid).info.status == "FINISHED"
    assert {f.path for f in client.list_artifacts(pid)} == listed | {"index.html"}


def test_rerun_replaces_only_its_own_child(result, tmp_path):
    results = tmp_path / "results"
    uri = default_uri(results)
    parent = start_parent(uri, "runs", results, KEY, CONFIG, COMMIT)
    first = log_run(seeded(result, 0), [], uri, "runs", results)["run_id"]
    other_seed = log_run(seeded(result, 1), [], uri, "runs", results)["run_id"]
    second = log_run(seeded(result, 0), [], uri, "runs", results)["run_id"]
    client = _client(uri)
    assert children(client, parent["experiment_id"], parent["run_id"]) == {
        "moons-logistic/numpy/cpu/seed0": second,
        "moons-logistic/numpy/cpu/seed1": other_seed,
    }
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    assert end_parent(uri, results, "FAILED")  # onerror
    assert client.get_run(parent["run_id"]).info.status == "FAILED"


def test_same_commit_and_config_find_the_parent_new_ones_keep_the_old_children(result, tmp_path):
    results = tmp_path / "results"
    uri = default_uri(results)
    client = _client(uri)
    a = start_parent(uri, "runs", results, KEY, CONFIG, COMMIT)
    a0 = log_run(seeded(result, 0), [], uri, "runs", results)["run_id"]
    assert end_parent(uri, results, "FINISHED")
    again = start_parent(uri, "runs", results, parent_key(COMMIT, dict(reversed(CONFIG.items()))), CONFIG, COMMIT)
    assert again["run_id"] == a["run_id"]
    run = client.get_run(a["run_id"])
    assert run.info.status == "RUNNING" and run.data.tags["fwbench.invocations"] == "2"

    new_commit = "f" * 40
    b = start_parent(uri, "runs", results, parent_key(new_commit, CONFIG), CONFIG, new_commit)
    assert b["run_id"] != a["run_id"]
    b0 = log_run(seeded(result, 0), [], uri, "runs", results)["run_id"]
    assert children(client, a["experiment_id"], a["run_id"]) == {"moons-logistic/numpy/cpu/seed0": a0}
    assert children(client, b["experiment_id"], b["run_id"]) == {"moons-logistic/numpy/cpu/seed0": b0}
    # another config at the same commit: a third parent; b, still RUNNING, was left by a killed invocation
    config = {**CONFIG, "seeds": [0, 1, 2]}
    c = start_parent(uri, "runs", results, parent_key(new_commit, config), config, new_commit)
    assert c["run_id"] not in (a["run_id"], b["run_id"])
    assert client.get_run(b["run_id"]).info.status == "KILLED"
    assert client.get_run(a["run_id"]).info.status == "KILLED"  # `again` was never ended either
    assert client.get_run(a0).info.lifecycle_stage == "active" and client.get_run(b0).info.lifecycle_stage == "active"


def test_unreachable_server_warns_and_jobs_log_top_level_runs(result, tmp_path, capsys):
    results = tmp_path / "results"
    (results / PARENT).parent.mkdir(parents=True)
    (results / PARENT).write_text(json.dumps({"run_id": "stale", "experiment_id": "1", "tracking_uri": "x"}))
    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert start_parent(uri, "runs", results, KEY, CONFIG, COMMIT) is None
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "warning: no MLflow parent run" in err and "is not reachable" in err
    assert not (results / PARENT).exists()
    assert end_parent(uri, results, "FAILED") is False
    record = log_run(seeded(result, 0), [], default_uri(results), "runs", results)
    assert "parent_run_id" not in record
    assert "mlflow.parentRunId" not in _client(default_uri(results)).get_run(record["run_id"]).data.tags


@pytest.mark.slow
def test_parent_and_children_served_over_rest(result, tmp_path):
    """Through a real `mlflow server`: the parent, its children with their seeds, commit and dataset."""
    results = tmp_path / "results"
    summary = tmp_path / "summary.csv"
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", workers=1) as base:
        parent = start_parent(base, "served", results, KEY, CONFIG, COMMIT)
        assert parent["tracking_uri"] == base
        ids = {log_run(seeded(result, s), [], base, "served", results)["run_id"]: s for s in (0, 1)}
        summary.write_text("experiment,backend\n")
        assert end_parent(base, results, "FINISHED", [summary])

        pid, exp_id = parent["run_id"], parent["experiment_id"]
        query = {"experiment_ids": [exp_id], "filter": f"tags.`mlflow.parentRunId` = '{pid}'"}
        runs = rest(base, "/api/2.0/mlflow/runs/search", query)["runs"]
        assert {r["info"]["run_id"] for r in runs} == set(ids)
        commit = plain_commit(result["environment"]["git_commit"])
        for run_id, seed in ids.items():
            got = rest(base, f"/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
            tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
            assert tags["mlflow.parentRunId"] == pid and tags["seed"] == str(seed)
            assert tags["mlflow.source.git.commit"] == commit and tags["run_key"].endswith(f"/seed{seed}")
            inputs = {i["dataset"]["name"]: i for i in got["inputs"]["dataset_inputs"]}
            assert sorted(inputs) == ["moons-test", "moons-train"]
            assert {i["dataset"]["digest"] for i in inputs.values()} == {result["dataset_checksum"][:36]}
            assert inputs["moons-train"]["tags"] == [{"key": "mlflow.data.context", "value": "training"}]
            assert inputs["moons-test"]["tags"] == [{"key": "mlflow.data.context", "value": "testing"}]
        got = rest(base, f"/api/2.0/mlflow/runs/get?run_id={pid}")["run"]
        tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
        assert got["info"]["status"] == "FINISHED" and tags["fwbench.parent_key"] == KEY
        assert tags["mlflow.source.git.commit"] == COMMIT and "mlflow.parentRunId" not in tags
        listed = {f["path"] for f in rest(base, f"/api/2.0/mlflow/artifacts/list?run_id={pid}")["files"]}
        assert {"config.json", "environment.json", "summary.csv"} <= listed
