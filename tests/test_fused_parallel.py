"""The fused backend's parallel products (threads > 1) and its float32 log row: the same math as the
reference, checked in a fresh process with two numba threads (numba sizes its pool at import)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import backends
from tests.paths import ROOT

pytestmark = pytest.mark.skipif(not backends.is_available("fused"), reason="numba is not installed")

TWO_THREADS = """
import json, numpy as np
import backends
from backends.fused_kernels import PARALLEL_MIN_FMAS
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
out = {}
for dtype in ("float64", "float32"):
    # 96 x 300 x 80 multiply-adds and up a layer, above PARALLEL_MIN_FMAS; 80 columns: a partial column block
    spec = Spec(kind="mlp", n_inputs=300, n_outputs=4, hidden=(80, 96), activation="relu", head="softmax",
                epochs=3, batch_size=96, optimizer=OptimizerSpec("adam", learning_rate=0.003), dtype=dtype)
    assert 96 * 300 * 80 >= PARALLEL_MIN_FMAS
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 300)).astype(dtype); Y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 200)]
    p0, sched = init_params(spec, 3), make_schedule(spec, 200, 4)
    fused = backends.get_backend("fused", threads=2)
    got = fused.train(spec, X, Y, p0, sched)
    ref = backends.get_backend("numpy").train(spec, X.astype("float64"), Y.astype("float64"), p0, sched)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    worst = max(float(np.max(np.abs(a - b) / (np.abs(b) + 1e-3))) for a, b in zip(got.params, ref.params))
    out[dtype] = {"rel": float(rel.max()), "settings": fused.thread_settings(), "params": worst}
print(json.dumps(out))
"""


def test_two_threads_share_the_large_products_and_match_the_reference():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | {"NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", TWO_THREADS], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    settings = out["float64"]["settings"]
    assert settings["numba_threads"] == 2 and settings["parallel"] and settings["gomp_spincount"] == "10000"
    assert out["float64"]["rel"] < 1e-9 and out["float64"]["params"] < 1e-8, out["float64"]
    assert out["float32"]["rel"] < 1e-4 and out["float32"]["params"] < 2e-3, out["float32"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("trans, beta", [(False, 0), (True, 1)])
def test_matmul_parallel_matches_numpy(dtype, trans, beta):
    """Same blocks as matmul; on this process's thread count (the split itself: the test above)."""
    from backends.fused_gemm import matmul_parallel

    rng = np.random.default_rng(9)
    for rows, depth, cols in [(5, 3, 8), (13, 7, 40), (100, 78, 128), (31, 9, 70)]:
        a = rng.normal(size=(depth, rows) if trans else (rows, depth)).astype(dtype)
        b = rng.normal(size=(depth, cols)).astype(dtype)
        c = rng.normal(size=(rows, cols)).astype(dtype)
        want = (a.T if trans else a).astype(np.float64) @ b + (c if beta else 0)
        matmul_parallel(a, trans, b, c, beta)
        np.testing.assert_allclose(c, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-4)


def test_float32_log_row_is_within_a_few_ulps():
    """log of the softmax's sums (1 <= x <= classes) and of any positive normal float32."""
    import numba

    from backends.fused_math import log_row

    @numba.njit
    def run(src, dst, ib):
        log_row(src, dst, src.shape[0], ib)

    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(1, 10, 100_001), 10.0 ** rng.uniform(-37, 38, 100_000), [1.0, 2.0, 0.5]])
    x = x.astype(np.float32)
    got, ib = np.empty_like(x), np.empty(len(x), np.int32)
    run(x, got, ib)
    want = np.log(x.astype(np.float64))
    ulps = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1e-3).astype(np.float32))
    assert np.max(ulps) <= 4, (np.max(ulps), x[np.argmax(ulps)])
    assert got[-3] == 0 and abs(got[-2] - np.log(2)) < 1e-7


CACHED = """
import json, sys, warnings
warnings.simplefilter("always")
import numpy as np
import backends
from backends import fused_kernels, fused_small
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
threads, width = int(sys.argv[1]), int(sys.argv[2])
spec = Spec(kind="mlp", n_inputs=3, n_outputs=1, hidden=(width,), epochs=2, batch_size=8, dtype="float32",
            optimizer=OptimizerSpec("sgd", learning_rate=0.1))
X = np.ones((20, 3), np.float32); Y = np.ones((20, 1), np.float32)
with warnings.catch_warnings(record=True) as seen:
    backends.get_backend("fused", threads=threads).train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 20, 1))
if width <= fused_small.SMALL_MAX_WIDTH:
    run = fused_small.epoch_small
else:
    run = fused_kernels.epoch_threaded if threads > 1 else fused_kernels.epoch
uncached = [str(w.message) for w in seen if "cache" in str(w.message)]
print(json.dumps({"hits": sum(run.stats.cache_hits.values()), "uncached": uncached}))
"""


@pytest.mark.parametrize("threads, width", [(1, 4), (1, 40), (2, 40)])
def test_the_epoch_kernel_loads_from_numbas_cache_in_a_new_process(threads, width):
    """Parallel code in a kernel makes numba refuse to cache it ("uses dynamic globals"): every process
    then compiled the epoch again, about 15 s. Each entry point (the small nets' feature-major epoch, the
    row-major one and its threaded twin) must load from the cache the second time."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", CACHED, str(threads), str(width)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[1]["hits"] >= 1 and not runs[1]["uncached"] and not runs[0]["uncached"], runs
