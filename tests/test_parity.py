"""Parity on mnist10k-mlp (ReLU, where float32 runs may cross kinks): every installed backend of the
registry passes at 5 seeds, a scratch copy of the reference with its learning rate 1.01x fails."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
import datasets
from backends.spec import init_params, make_schedule
from tests.helpers_results import write_dataset
from workflow.lib import catalogue
from workflow.lib import parity as P
from workflow.lib.runner import evaluate, prepare

SEEDS = (0, 1, 2, 3, 4)
EPOCHS_SCALE = 0.08  # 1 of 13 epochs (80 steps): the same math; kink crossings in it at 3 seeds of 5
KEYS = ("accuracy", "f1")


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    exp = catalogue.load()["mnist10k-mlp"]
    prep = prepare(datasets.load(write_dataset(tmp_path_factory.mktemp("parity"), exp.dataset, 0)), exp)
    spec = exp.spec(n_inputs=prep.X_train.shape[1], n_outputs=prep.n_outputs, epochs_scale=EPOCHS_SCALE)
    ref = backends.get_backend(backends.REFERENCE, threads=1)
    references = {seed: _run(ref, spec, prep, seed) for seed in SEEDS}
    for seed, r in references.items():
        p0, sched = init_params(spec, seed), make_schedule(spec, len(prep.X_train), seed + 1)
        Y = prep.Y_train.astype(spec.dtype)
        r["float32_error"] = P.float32_error(ref, spec, prep.X_train, Y, p0, sched, np.asarray(r["loss_history"]))
    return spec, prep, references, P.seed_spread(references, KEYS)


def _run(backend, spec, prep, seed) -> dict:
    """What the runner records for parity: loss curve and final metrics of one seed's training."""
    Y = prep.Y_train.astype(spec.dtype)
    sched = make_schedule(spec, len(prep.X_train), seed + 1)
    run = backend.train(spec, prep.X_train, Y, init_params(spec, seed), sched)
    test = evaluate(prep, backend.predict(spec, run.params, prep.X_test), "test")
    train = evaluate(prep, backend.predict(spec, run.params, prep.X_train), "train")
    return {
        "backend": backend.name,
        "status": "ok",
        "task": prep.ds.task,
        "spec": spec.to_dict(),
        "flags": [],
        "loss_history": run.loss_history.tolist(),
        "metrics": {"train": train, "test": test},
    }


def _parities(backend, problem) -> list[dict]:
    spec, prep, references, spread = problem
    return [P.parity(_run(backend, spec, prep, s), references[s], spread) for s in SEEDS]


BACKENDS = [
    n
    for n in backends.names()
    if n != backends.REFERENCE and backends.REGISTRY[n].module != "backends.keras_adapter"  # one per process
]


@pytest.mark.slow  # the 5 reference seeds' three trainings each, then one training per backend and seed
@pytest.mark.parametrize("name", BACKENDS)
def test_every_correct_backend_passes_at_every_seed(problem, name):
    if not backends.is_available(name):
        pytest.skip(f"backend {name!r} unavailable: its framework is not installed")
    parities = _parities(backends.get_backend(name, threads=1), problem)
    assert [p["within_bound"] for p in parities] == [True] * len(SEEDS), [p["worst_epoch"] for p in parities]


@pytest.mark.slow
def test_a_wrong_learning_rate_fails_at_every_seed(problem, tmp_path):
    """A scratch copy of the reference whose optimizer steps with 1.01x the learning rate."""
    source = Path(sys.modules["backends.numpy_reference"].__file__).read_text()
    changed = source.replace("lr = dt.type(o.learning_rate)", "lr = dt.type(o.learning_rate * 1.01)")
    assert changed != source, "the reference's learning-rate line moved: update this test's replacement"
    (tmp_path / "wrong_reference.py").write_text(changed)
    loader = importlib.util.spec_from_file_location("wrong_reference", tmp_path / "wrong_reference.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    parities = _parities(module.NumpyBackend(name="numpy-wrong-lr", mode="eager", threads=1), problem)
    assert [p["within_bound"] for p in parities] == [False] * len(SEEDS), [p["worst_epoch"] for p in parities]


def test_epoch_bounds_follow_the_first_kink_crossing():
    f32 = {"max_rel_deviation": 1e-7, "steps": 100, "kink_crossing_epoch": 3, "kink_loss_deviation": [0, 0, 1e-4, 5e-5]}
    rounding = P.parity_bound(f32, "float32")
    assert rounding == pytest.approx(P.PARITY_FACTOR * 10 * float(np.finfo(np.float32).eps))
    bounds = P.epoch_bounds(f32, "float32", 4)
    assert bounds == [rounding, rounding, P.PARITY_FACTOR * 1e-4, P.PARITY_FACTOR * 1e-4]
    assert P.epoch_bounds({**f32, "kink_crossing_epoch": None}, "float32", 4) == [rounding] * 4
    assert P.epoch_bounds(f32, "float64", 4) == [P.parity_bound(f32, "float64")] * 4


def test_final_metrics_beyond_the_seed_spread_fail():
    f32 = {"max_rel_deviation": 1e-7, "steps": 100, "kink_crossing_epoch": 1, "kink_loss_deviation": [1e-3]}
    ref = {"backend": "numpy", "status": "ok", "loss_history": [1.0], "float32_error": f32}
    ref["metrics"] = {"train": {}, "test": {"accuracy": 0.94}}
    run = {"status": "ok", "task": "multiclass", "spec": {"dtype": "float32"}, "flags": [], "loss_history": [1.0]}
    near = P.parity({**run, "metrics": {"train": {}, "test": {"accuracy": 0.938}}}, ref, {"test_accuracy": 0.005})
    far = P.parity(
        {**run, "flags": [], "metrics": {"train": {}, "test": {"accuracy": 0.93}}}, ref, {"test_accuracy": 0.005}
    )
    assert (near["within_bound"], far["within_bound"]) == (True, False)
    assert far["within_seed_spread"] is False
