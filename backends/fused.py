"""The speed-of-light reference: a whole epoch in one numba-compiled function, no framework in the loop.

Forward, loss gradient, backward and optimizer are loops over the batch, register-blocked vector
products (backends/fused_gemm.py, where a layer's operands fit in L2, shared out over the threads when there are
several) or BLAS calls (larger products) on flat buffers allocated once per training: the parameters,
gradients and optimizer state are each one vector ([W0, b0, W1, b1, ...] end to end). The math is the
NumPy reference's step for step; numba compiles one kernel per dtype, cached on disk. The kernels live
in backends/fused_kernels.py (and fused_math.py, fused_gemm.py), imported at first use with numba, as
every adapter imports its framework.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.spec import Schedule, Spec, TrainResult

ACT_CODES = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3}
HEAD_CODES = {"linear": 0, "sigmoid": 1, "softmax": 2}  # the loss is the head's: mse, bce, cce
OPT_CODES = {"sgd": 0, "adam": 1}
PREDICT_CHUNK = 4096  # rows per forward pass in predict(), so its buffers stay small on large inputs


def _kernels(threads: int | None):
    """Import numba and the compiled kernels, and set numba's and BLAS's thread counts."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls SciPy's BLAS: loaded before it is limited
    import threadpoolctl

    from backends import fused_kernels

    if threads:
        # BLAS read OPENBLAS_NUM_THREADS when it was loaded, maybe before set_thread_env (scikit-learn imports
        # SciPy): set it now, process-wide, as the other adapters set their framework's threads
        threadpoolctl.threadpool_limits(limits=int(threads), user_api="blas")
        try:
            numba.set_num_threads(int(threads))
        except ValueError as err:
            raise BackendError(
                f"numba cannot use {threads} threads ({err}); numba was imported with at most "
                f"{numba.config.NUMBA_NUM_THREADS}: set NUMBA_NUM_THREADS or lower `threads`"
            ) from None
    return numba, fused_kernels


class _Layout:
    """Offsets of every parameter and activation in the flat buffers of one spec and batch size."""

    def __init__(self, spec: Spec, rows: int) -> None:
        sizes = spec.layer_sizes
        self.sizes = np.asarray(sizes, dtype=np.int64)
        shapes = spec.param_shapes
        offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in shapes])]).astype(np.int64)
        self.shapes, self.offsets = shapes, offsets
        self.woff, self.boff = offsets[0:-1:2].copy(), offsets[1:-1:2].copy()
        self.zoff = (rows * np.concatenate([[0], np.cumsum(sizes[1:-1])])).astype(np.int64)
        self.n_acts = rows * int(sum(sizes[1:]))

    def flatten(self, params: list[np.ndarray], dt: np.dtype) -> np.ndarray:
        return np.concatenate([np.asarray(q, dtype=dt).ravel() for q in params])

    def unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[a:b].reshape(s).copy() for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]


class FusedBackend(Backend):
    framework = "numba"
    modes = ("compiled",)
    gpu_capable = False

    def __init__(self, name: str, mode: str = "compiled", threads: int | None = None) -> None:
        super().__init__(name, mode, threads)
        if threads and "numba" not in sys.modules:  # numba sizes its thread pool at import
            os.environ["NUMBA_NUM_THREADS"] = str(int(threads))
        if threads and int(threads) > 1:
            # numba's OpenMP workers spin briefly between parallel products, then sleep: spinning for
            # libgomp's default 300k turns, they took the CPUs OpenBLAS's threads needed for the BLAS-sized
            # products of the same step (the mnist10k sweep at threads 2, batch 512: 51k samples/s; 232k
            # with 10k turns); never spinning (OMP_WAIT_POLICY=PASSIVE) slowed every parallel product's
            # wake-up (mnist10k-mlp at threads 2: 187k against 276k). Read when libgomp loads, at
            # numba's first parallel product; GOMP_SPINCOUNT counts only where OMP_WAIT_POLICY is unset.
            os.environ.setdefault("GOMP_SPINCOUNT", "10000")

    def devices(self) -> list[str]:
        return ["cpu"]

    def thread_settings(self) -> dict:
        numba, kern = _kernels(self.threads)
        n = numba.get_num_threads()
        # parallel: products of PARALLEL_MIN_FMAS and more share their column blocks out over the threads
        return {
            "threads": self.threads,
            "numba_threads": n,
            "parallel": n > 1,
            "parallel_min_fmas": kern.PARALLEL_MIN_FMAS,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        }

    def train(
        self,
        spec: Spec,
        X: np.ndarray,
        Y: np.ndarray,
        init_params: list[np.ndarray],
        schedule: Schedule,
        device: str = "cpu",
        record_params: bool = False,
    ) -> TrainResult:
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        self.check_device(device)
        orders = np.ascontiguousarray(schedule.orders[:, : schedule.samples_per_epoch], dtype=np.int64)
        if orders.size and (orders.min() < 0 or orders.max() >= len(X)):
            raise BackendError(
                f"the schedule holds sample indices outside [0, {len(X)}): "
                "make it with backends.spec.make_schedule(spec, len(X), seed)"
            )
        numba, kern = _kernels(self.threads)
        dt = np.dtype(spec.dtype)
        X, Y = np.ascontiguousarray(X, dtype=dt), np.ascontiguousarray(Y, dtype=dt)
        rows = schedule.batch_size
        lay = _Layout(spec, rows)
        o = spec.optimizer
        # every buffer of the training, allocated once
        p = lay.flatten(init_params, dt)
        g, m1, m2 = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        hyper = np.array([o.learning_rate, o.beta1, o.beta2, o.eps, o.momentum, 1.0, 0.0], dtype=dt)
        state = np.zeros(1, dtype=np.int64)
        widest, n_out = rows * int(lay.sizes[1:].max()), rows * spec.n_outputs
        bufs = tuple(np.zeros(size, dt) for size in (rows * spec.n_inputs, n_out, lay.n_acts, lay.n_acts))
        bufs += tuple(np.zeros(size, dt) for size in (widest, widest, n_out, n_out))  # d1 d2, loss scratch
        bufs += (np.zeros(max(int(np.prod(s)) for s in lay.shapes[0::2]), dt),)  # a weight transposed
        ib = np.zeros(widest, np.int32)
        codes = np.array([ACT_CODES[spec.activation], HEAD_CODES[spec.head], OPT_CODES[o.name]], dtype=np.int64)
        rest = (rows, lay.sizes, lay.woff, lay.boff, lay.zoff, p, g, m1, m2, hyper, state, bufs, ib)
        # Small nets feature-major (fused_small.py: their loops run over the rows), on one thread either way.
        from backends import fused_small

        small = int(lay.sizes.max()) <= fused_small.SMALL_MAX_WIDTH
        run_epoch = kern.epoch_threaded if numba.get_num_threads() > 1 else kern.epoch
        if small:
            run_epoch = fused_small.epoch_small

        losses, seconds, history, compile_seconds = [], [], [], 0.0
        for epoch in range(schedule.epochs):
            args = (X, Y, orders[epoch], *rest, codes)
            t0 = time.perf_counter()
            if epoch == 0:  # compilation (or loading it from numba's cache) inside the first epoch's time
                run_epoch.compile(tuple(numba.typeof(a) for a in args))
                compile_seconds = time.perf_counter() - t0
            total = run_epoch(*args)
            seconds.append(time.perf_counter() - t0)
            losses.append(total / schedule.samples_per_epoch)
            if record_params:
                history.append(lay.unflatten(p))
        return TrainResult(
            params=lay.unflatten(p),
            loss_history=np.asarray(losses, dtype=np.float64),
            epoch_seconds=np.asarray(seconds, dtype=np.float64),
            compile_seconds=float(compile_seconds),
            param_history=history if record_params else None,
            extra={
                "variant": "numba-fused-epoch",
                "fallback": None,
                "layout": "feature-major" if small else "row-major",
            },
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        X = check_x(spec, X)
        check_params(spec, params)
        self.check_device(device)
        numba, kern = _kernels(self.threads)
        dt = np.dtype(spec.dtype)
        X = np.ascontiguousarray(X, dtype=dt)
        rows = min(PREDICT_CHUNK, len(X))
        lay = _Layout(spec, rows)
        out = np.empty((len(X), spec.n_outputs), dtype=dt)
        zbuf, abuf, xb = np.empty(lay.n_acts, dt), np.empty(lay.n_acts, dt), np.empty(rows * spec.n_inputs, dt)
        act, head = ACT_CODES[spec.activation], HEAD_CODES[spec.head]
        p = lay.flatten(params, dt)
        wt = np.empty(max(int(np.prod(s)) for s in lay.shapes[0::2]), dt)  # a weight transposed
        run = kern.predict_threaded if numba.get_num_threads() > 1 else kern.predict
        run(X, lay.sizes, lay.woff, lay.boff, lay.zoff, p, zbuf, abuf, xb, wt, out, act, head, rows)
        return out
