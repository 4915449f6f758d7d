"""The same suite for every registered backend: a new backend is checked with no test edits."""

import time

import numpy as np
import pytest

import backends
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
from datasets import build
from datasets.preprocess import targets

REF = backends.get_backend(backends.REFERENCE)
BACKENDS = [n for n in backends.names() if n != backends.REFERENCE]
# extra["variant"] of a CPU training when nothing fell back; a backend not listed must still name one.
EXPECTED_VARIANT = {
    "numpy": "numpy",
    "torch": "torch.compile-scan",
    "torch-eager": "eager-loop",
    "torch-idiomatic": "torch-idiomatic-compile",
    "tensorflow": "tf.function-xla-epoch",
    "tensorflow-eager": "eager-loop",
    "jax": "jax.jit-scan-epoch",
    "jax-eager": "jax.jit-step",
}


def _backend(name):
    if not backends.is_available(name):
        pytest.skip(f"backend {name!r} unavailable: its framework is not installed")
    if backends.REGISTRY[name].module == "backends.keras_adapter":
        pytest.skip("Keras hosts one backend per process: tests/test_keras.py tests it in subprocesses")
    return backends.get_backend(name, threads=1)


def _small_problem(kind: str, dtype: str, optimizer: OptimizerSpec, batch_size=8):
    """A small dataset per spec kind, with a last partial batch (n=50, batch 8)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    if kind == "linear":
        Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(50, 1))
        head, n_out, hidden, act = "linear", 1, (), "linear"
    elif kind == "logistic":
        Y = (X[:, :1] + X[:, 1:2] > 0).astype(float)
        head, n_out, hidden, act = "sigmoid", 1, (), "linear"
    elif kind == "softmax":
        Y = np.eye(3)[rng.integers(0, 3, 50)]
        head, n_out, hidden, act = "softmax", 3, (), "linear"
    else:
        raise ValueError(kind)
    return X, Y, dict(head=head, n_outputs=n_out, hidden=hidden, activation=act)


PARITY_CASES = [
    ("linear", {}, OptimizerSpec("sgd", learning_rate=0.05)),
    ("logistic", {}, OptimizerSpec("adam", learning_rate=0.01)),
    ("softmax", {}, OptimizerSpec("sgd", learning_rate=0.1, momentum=0.9)),
    (
        "mlp-tanh-bce",
        dict(kind="logistic", hidden=(8, 4), activation="tanh"),
        OptimizerSpec("adam", learning_rate=0.01),
    ),
    ("mlp-relu-cce", dict(kind="softmax", hidden=(5,), activation="relu"), OptimizerSpec("adam", learning_rate=0.01)),
    (
        "mlp-sigmoid-mse",
        dict(kind="linear", hidden=(4,), activation="sigmoid"),
        OptimizerSpec("sgd", learning_rate=0.05, momentum=0.5),
    ),
    (
        "mlp-linear-mse-fullbatch",
        dict(kind="linear", hidden=(3,), activation="linear", batch_size=None),
        OptimizerSpec("sgd", learning_rate=0.08),
    ),
]


def _case(case, dtype="float64", epochs=5):
    label, over, opt = case
    kind = over.get("kind", label)
    X, Y, shape = _small_problem(kind, dtype, opt)
    if "hidden" in over:
        shape.update(hidden=over["hidden"], activation=over["activation"])
    spec = Spec(
        kind="mlp" if shape["hidden"] else kind,
        n_inputs=X.shape[1],
        epochs=epochs,
        batch_size=over.get("batch_size", 8),
        optimizer=opt,
        dtype=dtype,
        **shape,
    )
    return spec, X, Y


@pytest.mark.parametrize("case", PARITY_CASES, ids=[c[0] for c in PARITY_CASES])
@pytest.mark.parametrize("name", BACKENDS)
def test_float64_parity_with_reference(name, case):
    """Per-epoch loss equals the NumPy reference's to 1e-9 relative over 5 epochs."""
    be = _backend(name)
    spec, X, Y = _case(case)
    p0 = init_params(spec, seed=1)
    sched = make_schedule(spec, len(X), seed=2)
    ref = REF.train(backends.base.parity_spec(be, spec), X, Y, p0, sched)
    got = be.train(spec, X, Y, p0, sched)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < 1e-9, f"{name} deviates from the reference by {rel.max():.3g}"
    for a, b in zip(got.params, ref.params):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(be.predict(spec, got.params, X), REF.predict(spec, ref.params, X), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS + [backends.REFERENCE])
def test_result_contract(name):
    be = _backend(name)
    spec, X, Y = _case(PARITY_CASES[3], dtype="float32", epochs=3)
    p0 = init_params(spec, seed=1)
    res = be.train(
        spec, X.astype("float32"), Y.astype("float32"), p0, make_schedule(spec, len(X), 2), record_params=True
    )
    assert [p.shape for p in res.params] == [p.shape for p in p0]
    assert all(isinstance(p, np.ndarray) and p.dtype == np.float32 for p in res.params)
    assert res.loss_history.shape == (3,) and res.epoch_seconds.shape == (3,)
    assert np.all(res.epoch_seconds > 0)
    assert len(res.param_history) == 3
    np.testing.assert_array_equal(res.param_history[-1][0], res.params[0])
    assert "cpu" in be.devices()
    # compile_seconds is an explicitly measured part of epoch 0, never work done outside the epochs
    assert 0.0 <= res.compile_seconds <= res.epoch_seconds[0]
    assert be.device_info("cpu") == {"device": "cpu"}


@pytest.mark.parametrize("name", backends.names())
def test_result_names_the_variant_that_ran(name):
    be = _backend(name)
    spec, X, Y = _case(PARITY_CASES[3], dtype="float32", epochs=2)
    res = be.train(spec, X.astype("float32"), Y.astype("float32"), init_params(spec, 1), make_schedule(spec, 50, 2))
    variant, fallback = res.extra.get("variant"), res.extra.get("fallback", "missing")
    assert isinstance(variant, str) and variant, f"{name} does not name its variant in TrainResult.extra"
    assert fallback is None or (isinstance(fallback, str) and fallback), f"{name}: extra['fallback'] is {fallback!r}"
    expected = EXPECTED_VARIANT.get(name)
    if expected is not None and fallback is None:
        assert variant == expected
    if fallback is not None:
        assert variant != expected, f"{name} reports a fallback but ran its intended variant {variant!r}"


def test_torch_compile_failure_falls_back_and_says_why(monkeypatch):
    """A failing torch.compile trains the fused eager loop, says why, and its time stays inside epoch 0."""
    be = _backend("torch")
    import torch

    from backends.torch import compiled_epoch

    def broken_compile(*args, **kwargs):
        time.sleep(0.2)
        raise RuntimeError("no C++ compiler here (test)")

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(compiled_epoch, "_COMPILED", {})  # nothing compiled by an earlier test is reused
    spec, X, Y = _case(PARITY_CASES[3])
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler here"):
        got = be.train(spec, X, Y, p0, sched)
    assert got.extra["variant"] == "fused-eager-loop"
    assert "torch.compile-scan failed" in got.extra["fallback"]
    assert "RuntimeError: no C++ compiler here (test)" in got.extra["fallback"]
    assert got.epoch_seconds.shape == (spec.epochs,) and got.epoch_seconds[0] >= 0.2
    ref = REF.train(spec, X, Y, p0, sched)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < 1e-9, f"the fallback deviates from the reference by {rel.max():.3g}"


def _parity(got, spec, X, Y, p0, sched, what):
    ref = REF.train(spec, X, Y, p0, sched)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < 1e-9, f"{what} deviates from the reference by {rel.max():.3g}"


def test_torch_idiomatic_many_trainings_stay_compiled():
    """12 trainings of 2 specs (SGD with momentum, Adam) in one process: each still runs the compiled step
    (no recompile limit hit, so none silently ran eager), or names why not; every one equals the reference
    (the optimizer state reset in place between them is a fresh optimizer's)."""
    be = _backend("torch-idiomatic")
    import torch

    from backends.torch import idiomatic

    for i in range(12):
        spec, X, Y = _case(PARITY_CASES[2 + i % 2])
        p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
        hits = idiomatic.limit_hits(torch)
        got = be.train(spec, X, Y, p0, sched)
        assert idiomatic.limit_hits(torch) == hits, f"training {i} hit torch._dynamo's recompile limit"
        fallback = got.extra["fallback"]
        assert got.extra["variant"] == ("torch-idiomatic-compile" if fallback is None else "torch-idiomatic-eager")
        assert fallback is None or "torch.compile of the train step failed" in fallback, fallback
        _parity(got, spec, X, Y, p0, sched, f"training {i}")


def test_torch_idiomatic_reports_a_recompile_limit_hit(monkeypatch):
    """When dynamo runs frames uncompiled for its recompile limit, the result says so instead of staying silent."""
    be = _backend("torch-idiomatic")
    import torch

    from backends.torch import idiomatic

    monkeypatch.setattr(idiomatic, "_STEPS", {})  # a fresh compiled step
    spec, X, Y = _case(PARITY_CASES[1])
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    assert sched.remainder, "the case must have a last partial batch"
    # limit 1: the last partial batch's shape needs a second entry
    with torch._dynamo.config.patch(recompile_limit=1), pytest.warns(RuntimeWarning, match="recompile limit"):
        got = be.train(spec, X, Y, p0, sched)
    assert got.extra["variant"] == "torch-idiomatic-eager"
    assert "torch._dynamo hit a recompile limit (torch._dynamo.config.recompile_limit=1)" in got.extra["fallback"]
    _parity(got, spec, X, Y, p0, sched, "the partly uncompiled training")


def test_torch_idiomatic_compile_failure_falls_back_and_says_why(monkeypatch):
    """A failing torch.compile runs the same loop eagerly, says why, and its time stays inside epoch 0."""
    be = _backend("torch-idiomatic")
    import torch

    from backends.torch import idiomatic

    def broken_compile(*args, **kwargs):
        time.sleep(0.2)
        raise RuntimeError("no C++ compiler here (test)")

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(idiomatic, "_STEPS", {})
    spec, X, Y = _case(PARITY_CASES[2])
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler here"):
        got = be.train(spec, X, Y, p0, sched)
    assert got.extra["variant"] == "torch-idiomatic-eager"
    assert got.extra["fallback"] == (
        "torch.compile of the train step failed (RuntimeError: no C++ compiler here (test)); ran the step eagerly"
    )
    assert got.epoch_seconds.shape == (spec.epochs,) and got.epoch_seconds[0] >= 0.2
    _parity(got, spec, X, Y, p0, sched, "the eager fallback")


@pytest.mark.parametrize("spec_kind", ["logistic", "mlp"])
@pytest.mark.parametrize("name", BACKENDS + [backends.REFERENCE])
def test_trains_moons_beyond_chance(name, spec_kind):
    be = _backend(name)
    ds = build("moons", seed=0)
    hidden = (4, 2) if spec_kind == "mlp" else ()
    spec = Spec(
        kind=spec_kind,
        n_inputs=2,
        n_outputs=1,
        hidden=hidden,
        activation="tanh",
        head="sigmoid",
        epochs=20,
        batch_size=32,
        optimizer=OptimizerSpec("adam", learning_rate=0.01),
    )
    res = be.train(
        spec,
        ds.X_train,
        targets(ds.y_train, "binary", 1).astype("float32"),
        init_params(spec, 0),
        make_schedule(spec, len(ds.X_train), 0),
    )
    acc = np.mean((be.predict(spec, res.params, ds.X_test)[:, 0] > 0.5) == ds.y_test)
    assert acc > 0.75, f"{name}/{spec_kind} test accuracy {acc:.3f} is no better than chance"
    assert res.loss_history[-1] < res.loss_history[0]


@pytest.mark.parametrize("name", backends.names())
def test_bad_input_is_a_clear_backend_error(name):
    be = _backend(name)
    spec, X, Y = _case(PARITY_CASES[3], dtype="float32", epochs=1)
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    with pytest.raises(backends.BackendError, match="Y has shape"):
        be.train(spec, X, Y[:, :0], p0, sched)
    with pytest.raises(backends.BackendError, match="parameter shapes"):
        be.train(spec, X, Y, p0[:-1], sched)
    with pytest.raises(backends.BackendError, match="schedule orders"):
        be.train(spec, X[:10], Y[:10], p0, sched)
    with pytest.raises(backends.BackendError, match="X has shape"):
        be.predict(spec, p0, X[:, :1])
