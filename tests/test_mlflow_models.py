"""What a child run holds for its users, read back from the real store after real training jobs
(workflow/scripts/train.py in its own process, as the pipeline runs it): MLflow's resolved tags, the
train/test inputs, per-epoch points at their epochs' times, and weights.npz, from which the NumPy
reference reproduces the run's recorded metrics; for the peers, the framework's own logged model,
loaded with mlflow.<flavor>.load_model, predicts what the stored weights predict."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from itertools import accumulate
from pathlib import Path

import numpy as np
import pytest

import backends
import datasets
from backends.spec import Spec
from workflow.lib import catalogue
from workflow.lib.artifacts import WEIGHTS, read_weights
from workflow.lib.runner import evaluate, prepare
from workflow.lib.tracking import default_uri, init_store

EXPERIMENT = "moons-mlp"  # a hidden layer, a sigmoid head; trains in well under a second
REPO = Path(__file__).resolve().parents[1]
EPS32 = float(np.finfo(np.float32).eps)
# A logged model loaded by MLflow's flavor (argv[2]) in its own process, run on the rows of argv[3] and
# saved beside them: the test process imports no framework.
LOAD = """
import sys
import mlflow
import numpy as np
uri, flavor, rows = sys.argv[1:]
X = np.load(rows)
if flavor == "pytorch":
    import torch
    got = mlflow.pytorch.load_model(uri)(torch.from_numpy(X)).detach().numpy()
else:
    got = mlflow.keras.load_model(uri).predict(X, verbose=0)
np.save(rows.replace(".npy", ".out.npy"), got)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A results folder with the moons dataset, the resolved experiment and an initialized store."""
    results = (tmp_path_factory.mktemp("models") / "results").resolve()
    (results / "datasets").mkdir(parents=True)
    datasets.build("moons", seed=0).save(results / "datasets/moons.npz", results / "datasets/moons.json")
    exp = catalogue.load()[EXPERIMENT]
    (results / "experiments.json").write_text(json.dumps({EXPERIMENT: json.loads(exp.to_json())}))
    init_store(default_uri(results), "models", results)
    return results


def train(results: Path, backend: str) -> dict:
    """The pipeline's training job for one backend (seed 0, 10% of the epochs), as its rule runs it;
    returns its run result."""
    args = ["--backend", backend, "--device", "cpu", "--experiments", EXPERIMENT, "--seeds", "0"]
    args += ["--resolved", str(results / "experiments.json"), "--threads", "1", "--repeats", "1"]
    args += ["--min-repeat-seconds", "0.01", "--inference-batch", "256", "--epochs-scale", "0.1"]
    args += ["--results", str(results), "--mlflow-experiment", "models", "--no-mlflow-figures"]
    done = _run(["-m", "workflow.scripts.train", *args])
    assert "log_model failed" not in done.stderr, done.stderr[-3000:]
    return json.loads((results / f"runs/{EXPERIMENT}/{backend}-cpu/seed0.json").read_text())


def _run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def client(results: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=default_uri(results))


def reproduce(results: Path, run_id: str, tmp: Path) -> tuple[Spec, list[np.ndarray], np.ndarray]:
    """From the store alone (result.json, weights.npz, the input's dataset file): the NumPy reference's
    predictions of the run's weights, checked against every metric the run recorded. Returns the spec,
    the weights and the prepared test inputs."""
    c = client(results)
    run = c.get_run(run_id)
    stored = json.loads(Path(c.download_artifacts(run_id, "result.json", str(tmp))).read_text())
    spec = Spec.from_dict(stored["spec"])
    weights = read_weights(c, run_id, tmp)
    assert [w.shape for w in weights] == spec.param_shapes and {w.dtype for w in weights} == {np.dtype("float32")}
    source = json.loads(next(i.dataset.source for i in run.inputs.dataset_inputs))["uri"]
    prep = prepare(datasets.load(results.parent / source), catalogue.load()[run.data.tags["experiment"]])
    reference = backends.get_backend(backends.REFERENCE, threads=1)
    checked = 0
    for split, X in (("train", prep.X_train), ("test", prep.X_test)):
        for key, value in evaluate(prep, reference.predict(spec, weights, X), split).items():
            recorded = run.data.metrics.get(f"{split}_{key}")
            if not isinstance(value, float) or recorded is None:
                continue  # the confusion matrix and counts are in result.json, not metrics
            checked += 1
            if key == "loss":  # a mean of float32 log-probabilities: to float32 rounding
                assert value == pytest.approx(recorded, rel=10 * EPS32), (split, key)
            else:  # ratios of counts: any prediction on the other side of the threshold would show
                assert value == recorded, (split, key)
    assert checked >= 8, f"only {checked} metrics compared: {sorted(run.data.metrics)}"
    return spec, weights, prep.X_test


def test_reference_run_holds_context_tags_inputs_epoch_times_and_weights(store, tmp_path):
    result = train(store, "numpy")
    run_id = result["mlflow"]["run_id"]
    c = client(store)
    run = c.get_run(run_id)
    tags = run.data.tags
    assert tags["mlflow.user"] == getpass.getuser() and tags["mlflow.source.type"] == "LOCAL"
    assert Path(tags["mlflow.source.name"]).resolve() == REPO / "workflow" / "scripts" / "train.py"
    contexts = {i.dataset.name: {(t.key, t.value) for t in i.tags} for i in run.inputs.dataset_inputs}
    assert contexts == {
        "moons-train": {("mlflow.data.context", "training")},
        "moons-test": {("mlflow.data.context", "testing")},
    }

    span = result["timings"]["training_wall"]
    history = sorted(c.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(len(span["epoch_seconds"])))
    expected = [int(min(span["start"] + t, span["end"]) * 1000) for t in accumulate(span["epoch_seconds"])]
    assert [m.timestamp for m in history] == expected
    assert run.info.start_time <= history[0].timestamp and history[-1].timestamp <= run.info.end_time
    assert len({m.timestamp for m in history}) > len(history) // 2, "the epochs' points share their timestamps"
    # the per-epoch accuracy curve too (its step 0 also holds the final figure, at the run's end)
    accuracy = {m.step: m.timestamp for m in c.get_metric_history(run_id, "train_accuracy") if m.step > 0}
    assert accuracy == {e: expected[e] for e in range(1, len(expected))}

    assert WEIGHTS in {f.path for f in c.list_artifacts(run_id)}
    reproduce(store, run_id, tmp_path)
    assert "model_uri" not in result["mlflow"] and not run.outputs.model_outputs  # NumPy has no model flavor


@pytest.mark.slow
@pytest.mark.parametrize("backend, flavor", [("torch-idiomatic", "pytorch"), ("keras-torch", "keras")])
def test_peer_logs_its_framework_model_and_weights_that_reproduce_its_metrics(store, tmp_path, backend, flavor):
    """The job logs the model through mlflow.<flavor>.log_model (pinned requirements, a signature); loaded
    back with mlflow.<flavor>.load_model it predicts what the NumPy reference predicts from weights.npz."""
    rows = tmp_path / "rows.npy"
    prep = prepare(datasets.load(store / "datasets/moons.npz"), catalogue.load()[EXPERIMENT])
    np.save(rows, prep.X_test)
    result = train(store, backend)
    run_id, model_uri = result["mlflow"]["run_id"], result["mlflow"]["model_uri"]
    spec, weights, X_test = reproduce(store, run_id, tmp_path)

    c = client(store)
    model = c.get_logged_model(model_uri.removeprefix("models:/"))
    assert model.source_run_id == run_id
    assert [o.model_id for o in c.get_run(run_id).outputs.model_outputs] == [model.model_id]
    mlmodel = Path(_download(model.artifact_location, "MLmodel", tmp_path)).read_text()
    assert f"\n  {flavor}:" in mlmodel and "signature:" in mlmodel
    pinned = Path(_download(model.artifact_location, "requirements.txt", tmp_path)).read_text().split()
    assert any(p.startswith("torch==") for p in pinned) and all("==" in p for p in pinned), pinned

    expected = backends.get_backend(backends.REFERENCE, threads=1).predict(spec, weights, X_test)
    env = {**os.environ, "MLFLOW_TRACKING_URI": default_uri(store), "KERAS_BACKEND": backend.removeprefix("keras-")}
    _run(["-c", LOAD, model_uri, flavor, str(rows)], env)
    got = np.load(tmp_path / "rows.out.npy")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=10 * EPS32, atol=10 * EPS32)


def _download(artifact_location: str, path: str, dst: Path) -> str:
    from mlflow.artifacts import download_artifacts

    return download_artifacts(artifact_uri=f"{artifact_location}/{path}", dst_path=str(dst))
