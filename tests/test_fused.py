"""The fused numba backend beyond the registry-wide suite: float32, deep nets, the BLAS path, drop_last,
chunked predict, its result extras and its errors. The parity tests run both epochs, the feature-major
one of small nets (backends/fused_small.py) and the row-major one, on the same nets."""

import numpy as np
import pytest

import backends
from backends.spec import OptimizerSpec, Schedule, Spec, init_params, make_schedule

pytestmark = pytest.mark.skipif(not backends.is_available("fused"), reason="numba is not installed")

REF = backends.get_backend(backends.REFERENCE)


@pytest.fixture(scope="module")
def fused():
    return backends.get_backend("fused", threads=1)


@pytest.fixture(params=["feature-major", "row-major"])
def layout(request, monkeypatch):
    """Each epoch on every net of the test: fused_small.SMALL_MAX_WIDTH decides, read at each training."""
    from backends import fused_small

    monkeypatch.setattr(fused_small, "SMALL_MAX_WIDTH", 10**6 if request.param == "feature-major" else 0)
    return request.param


def _problem(head: str, n: int, n_in: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if head == "linear":
        Y = X[:, :1] - 0.5 * X[:, 1:2] + 0.1 * rng.normal(size=(n, 1))
    elif head == "sigmoid":
        Y = (X[:, :1] * X[:, 1:2] > 0).astype(float)
    else:
        Y = np.eye(4)[rng.integers(0, 4, n)]
    return X, Y


def _spec(head, hidden, activation, opt, n_in=3, **over):
    n_out = 4 if head == "softmax" else 1
    kind = "mlp" if hidden else {"linear": "linear", "sigmoid": "logistic", "softmax": "softmax"}[head]
    return Spec(
        kind=kind,
        n_inputs=n_in,
        n_outputs=n_out,
        hidden=hidden,
        activation=activation if hidden else "linear",
        head=head,
        optimizer=opt,
        **{"epochs": 4, "batch_size": 16, "dtype": "float64", **over},
    )


def _compare(be, spec, X, Y, loss_rtol, param_rtol, param_atol, seed=3):
    p0 = init_params(spec, seed=seed)
    sched = make_schedule(spec, len(X), seed=seed + 1)
    ref = REF.train(spec, X, Y, p0, sched)
    got = be.train(spec, X, Y, p0, sched)
    assert got.loss_history.shape == (spec.epochs,)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < loss_rtol, f"loss deviates from the reference by {rel.max():.3g}"
    for a, b in zip(got.params, ref.params):
        assert a.dtype == np.dtype(spec.dtype)
        np.testing.assert_allclose(a, b, rtol=param_rtol, atol=param_atol)
    return got, ref


DEEP = [
    ("sigmoid", (6, 5, 4), "relu", OptimizerSpec("adam", learning_rate=0.01)),
    ("softmax", (7, 3), "sigmoid", OptimizerSpec("sgd", learning_rate=0.2, momentum=0.9)),
    ("linear", (5, 5, 5, 2), "tanh", OptimizerSpec("adam", learning_rate=0.005, eps=1e-8)),
    ("softmax", (4,), "linear", OptimizerSpec("sgd", learning_rate=0.1)),
]


@pytest.mark.parametrize("case", DEEP, ids=[f"{c[0]}-{len(c[1])}x{c[2]}-{c[3].name}" for c in DEEP])
def test_deep_nets_match_the_reference_in_float64(fused, case, layout):
    head, hidden, act, opt = case
    spec = _spec(head, hidden, act, opt)
    X, Y = _problem(head, 45, 3)  # 45 = 2 x 16 + a last partial batch of 13
    got, _ = _compare(fused, spec, X, Y, 1e-10, 1e-9, 1e-12)
    assert got.extra["layout"] == layout


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_blas_sized_products_match_the_reference(fused, dtype, rtol):
    """A first layer large enough for the BLAS branch (its 256 x 260 input, 260 x 512 weight and 256 x 512
    output above GEMM_MAX_BYTES), a partial batch."""
    from backends.fused_kernels import GEMM_MAX_BYTES

    spec = _spec("softmax", (512, 32), "relu", OptimizerSpec("adam", learning_rate=0.003), n_in=260)
    spec = Spec.from_dict({**spec.to_dict(), "batch_size": 256, "dtype": dtype})
    assert (256 * 260 + 260 * 512 + 256 * 512) * np.dtype(dtype).itemsize > GEMM_MAX_BYTES
    X, Y = _problem("softmax", 300, 260)
    _compare(fused, spec, X.astype(dtype), Y.astype(dtype), rtol, 1e-8 if dtype == "float64" else 2e-3, 1e-5)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_register_blocked_products_match_the_reference(fused, dtype, rtol):
    """Layers of whole and partial 64-byte column blocks (fused_gemm), batch rows not a multiple of the
    block's rows, a last partial batch."""
    spec = _spec("sigmoid", (67, 24, 16), "tanh", OptimizerSpec("adam", learning_rate=0.003), n_in=5)
    spec = Spec.from_dict({**spec.to_dict(), "batch_size": 33, "dtype": dtype})
    X, Y = _problem("sigmoid", 80, 5)
    _compare(fused, spec, X.astype(dtype), Y.astype(dtype), rtol, 1e-8 if dtype == "float64" else 2e-3, 1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("trans, beta", [(False, 0), (False, 1), (True, 0), (True, 1)])
def test_matmul_blocks_and_edges_match_numpy(dtype, trans, beta):
    from backends.fused_gemm import matmul

    rng = np.random.default_rng(7)
    for rows, depth, cols in [(1, 1, 16), (5, 3, 8), (13, 7, 40), (6, 1, 33), (32, 64, 64)]:
        a = rng.normal(size=(depth, rows) if trans else (rows, depth)).astype(dtype)
        b = rng.normal(size=(depth, cols)).astype(dtype)
        c = rng.normal(size=(rows, cols)).astype(dtype)
        if not beta:
            c[0, -1] = np.nan  # scratch's old contents are overwritten, whatever they hold
        want = (a.T if trans else a).astype(np.float64) @ b + (c if beta else 0)
        matmul(a, trans, b, c, beta)
        np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


@pytest.mark.parametrize("head, hidden", [("sigmoid", (8, 4)), ("linear", ()), ("softmax", (5,))])
def test_float32_trains_in_float32_close_to_the_reference(fused, head, hidden, layout):
    spec = _spec(head, hidden, "tanh", OptimizerSpec("adam", learning_rate=0.01), dtype="float32")
    X, Y = _problem(head, 50, 3)
    got, _ = _compare(fused, spec, X.astype("float32"), Y.astype("float32"), 1e-4, 1e-3, 1e-5)
    assert got.extra["layout"] == layout
    assert fused.predict(spec, got.params, X).dtype == np.float32


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("batch_size", [16, 7, 50, None, 500])
def test_batches_and_last_partial_batch_follow_the_schedule(fused, drop_last, batch_size, layout):
    """n=50: batches 16 and 7 leave a remainder (dropped or trained); 50, full batch and 500 (clamped) do not."""
    spec = _spec("sigmoid", (4,), "tanh", OptimizerSpec("sgd", learning_rate=0.1, momentum=0.5))
    spec = Spec.from_dict({**spec.to_dict(), "batch_size": batch_size, "drop_last": drop_last})
    X, Y = _problem("sigmoid", 50, 3)
    _compare(fused, spec, X, Y, 1e-10, 1e-9, 1e-12)


def test_dropping_the_last_batch_changes_the_training(fused):
    """The drop_last flag reaches the kernel: dropping the 2 leftover samples gives other losses and weights."""
    base = _spec("sigmoid", (4,), "tanh", OptimizerSpec("adam", learning_rate=0.01))
    X, Y = _problem("sigmoid", 50, 3)
    runs = {}
    for drop in (False, True):
        spec = Spec.from_dict({**base.to_dict(), "drop_last": drop})
        runs[drop] = fused.train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 50, 1))
    assert not np.allclose(runs[True].loss_history, runs[False].loss_history, rtol=1e-6)
    assert not np.allclose(runs[True].params[0], runs[False].params[0], rtol=1e-6)


def test_predict_in_chunks_matches_the_reference(fused):
    from backends.fused import PREDICT_CHUNK

    spec = _spec("softmax", (6,), "relu", OptimizerSpec("sgd", learning_rate=0.1))
    X, _ = _problem("softmax", 2 * PREDICT_CHUNK + 37, 3)
    params = init_params(spec, 5)
    got = fused.predict(spec, params, X)
    assert got.shape == (len(X), 4)
    np.testing.assert_allclose(got, REF.predict(spec, params, X), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_result_extras_timings_and_threads(fused):
    spec = _spec("sigmoid", (4, 2), "tanh", OptimizerSpec("adam", learning_rate=0.01), epochs=3)
    X, Y = _problem("sigmoid", 40, 3)
    res = fused.train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 40, 1), record_params=True)
    assert res.extra == {"variant": "numba-fused-epoch", "fallback": None, "layout": "feature-major"}
    assert 0 <= res.compile_seconds <= res.epoch_seconds[0]  # compilation is inside epoch 0's time
    assert np.all(res.epoch_seconds > 0)
    assert len(res.param_history) == 3 and res.param_history[0][0] is not res.param_history[1][0]
    assert not np.array_equal(res.param_history[0][0], res.param_history[-1][0])
    np.testing.assert_array_equal(res.param_history[-1][2], res.params[2])
    assert fused.devices() == ["cpu"]
    assert fused.thread_settings()["numba_threads"] == 1
    from threadpoolctl import threadpool_info  # numba's np.dot runs on SciPy's BLAS: limited to threads too

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas), blas


def test_bad_input_is_a_clear_backend_error(fused):
    spec = _spec("sigmoid", (4,), "tanh", OptimizerSpec("sgd", learning_rate=0.1))
    X, Y = _problem("sigmoid", 20, 3)
    p0, sched = init_params(spec, 0), make_schedule(spec, 20, 1)
    bad = Schedule(orders=sched.orders + 5, batch_size=sched.batch_size, drop_last=False)
    with pytest.raises(backends.BackendError, match=r"indices outside \[0, 20\).*make_schedule"):
        fused.train(spec, X, Y, p0, bad)
    with pytest.raises(backends.BackendError, match="no step per epoch"):
        fused.train(spec, X, Y, p0, Schedule(orders=sched.orders, batch_size=32, drop_last=True))
    with pytest.raises(backends.BackendError, match="sees no 'gpu' device"):
        fused.train(spec, X, Y, p0, sched, device="gpu")
    with pytest.raises(backends.BackendError, match="parameter shapes"):
        fused.predict(spec, p0[:2], X)
    with pytest.raises(backends.BackendError, match="X has shape"):
        fused.predict(spec, p0, X[:0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transpose_tiles_and_edges_match_numpy(dtype):
    from backends.fused_gemm import transpose

    rng = np.random.default_rng(8)
    for rows, cols in [(64, 64), (8, 8), (3, 64), (64, 3), (17, 29), (1, 1)]:
        w = rng.normal(size=(rows, cols)).astype(dtype)
        wt = np.zeros((cols, rows), dtype)
        transpose(w, wt)
        np.testing.assert_array_equal(wt, w.T)
