"""The speed-of-light reference: a whole epoch in one numba-compiled function, no framework in the loop.

Forward, loss gradient, backward and optimizer are loops over the batch (small products) or BLAS calls
(products of at least BLAS_MIN_FMAS multiply-adds) on flat buffers allocated once per training: the
parameters, gradients and optimizer state are each one vector ([W0, b0, W1, b1, ...] end to end). The
math is the NumPy reference's step for step; numba compiles one kernel per dtype, cached on disk.
numba is imported at first use (as every adapter imports its framework): the kernels are plain
functions until _kernels() rebinds their module names to numba dispatchers.
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
BLAS_MIN_FMAS = 1 << 15  # a product this large goes to BLAS (np.dot); smaller ones are plain loops
PREDICT_CHUNK = 4096  # rows per forward pass in predict(), so its buffers stay small on large inputs


def _sigmoid(z):
    e = np.exp(-abs(z))  # exp of a non-positive number only, as the reference
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


def _view(buf, off, rows, cols):
    return buf[off : off + rows * cols].reshape((rows, cols))


def _affine(a, w, b, z):
    """z = a @ w + b."""
    (n, k), m = a.shape, w.shape[1]
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(a, w, z)
    else:
        for i in range(n):
            for j in range(m):
                z[i, j] = 0
            for kk in range(k):
                aik = a[i, kk]
                for j in range(m):
                    z[i, j] += aik * w[kk, j]
    for i in range(n):
        for j in range(m):
            z[i, j] += b[j]


def _grad_w(a, dz, g):
    """g = a.T @ dz."""
    (n, k), m = a.shape, dz.shape[1]
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(a.T, dz, g)
        return
    g[:, :] = 0
    for i in range(n):
        for kk in range(k):
            aik = a[i, kk]
            for j in range(m):
                g[kk, j] += aik * dz[i, j]


def _back(dz, w, da):
    """da = dz @ w.T."""
    (n, m), k = dz.shape, w.shape[0]
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(dz, w.T, da)
        return
    for i in range(n):
        for kk in range(k):
            s = dz[i, 0] * w[kk, 0]
            for j in range(1, m):
                s += dz[i, j] * w[kk, j]
            da[i, kk] = s


def _activate(z, a, code):
    n, m = z.shape
    for i in range(n):
        for j in range(m):
            v = z[i, j]
            if code == 0:
                a[i, j] = v
            elif code == 1:
                a[i, j] = v if v > 0 else 0
            elif code == 2:
                a[i, j] = np.tanh(v)
            else:
                a[i, j] = _sigmoid(v)


def _times_act_grad(da, z, a, code):
    """da *= d act(z) / dz (given a = act(z)); linear leaves da as it is."""
    if code == 0:
        return
    n, m = da.shape
    for i in range(n):
        for j in range(m):
            if code == 1:
                da[i, j] = da[i, j] if z[i, j] > 0 else 0
            elif code == 2:
                da[i, j] *= 1 - a[i, j] * a[i, j]
            else:
                da[i, j] *= a[i, j] * (1 - a[i, j])


def _loss_and_dlogits(z, y, dz, head):
    """The mean loss from logits z (returned, float64) and its gradient written into dz."""
    n, m = z.shape
    total = 0.0
    if head < 2:  # mse, or bce from logits
        size = n * m
        for i in range(n):
            for j in range(m):
                v = z[i, j]
                if head == 0:
                    d = v - y[i, j]
                    total += d * d
                    dz[i, j] = (d + d) / size
                else:
                    e = np.exp(-abs(v))
                    total += (max(v, 0) + np.log1p(e)) - y[i, j] * v
                    dz[i, j] = ((1 / (1 + e) if v >= 0 else e / (1 + e)) - y[i, j]) / size
        return total / size
    for i in range(n):  # cce from logits
        zmax = z[i, 0]
        for j in range(1, m):
            zmax = max(zmax, z[i, j])
        se = 0.0 * z[i, 0]
        yz = 0.0
        for j in range(m):
            dz[i, j] = np.exp(z[i, j] - zmax)
            se += dz[i, j]
            yz += y[i, j] * z[i, j]
        total += (zmax + np.log(se)) - yz
        for j in range(m):
            dz[i, j] = (dz[i, j] / se - y[i, j]) / n
    return total / n


def _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act):
    """Every layer's pre-activation into zbuf and hidden activation into abuf; returns the logits."""
    n = x.shape[0]
    a_in = x
    n_layers = sizes.shape[0] - 1
    z = _view(zbuf, 0, n, sizes[1])
    for layer in range(n_layers):
        k, m = sizes[layer], sizes[layer + 1]
        z = _view(zbuf, zoff[layer], n, m)
        _affine(a_in, _view(p, woff[layer], k, m), p[boff[layer] : boff[layer] + m], z)
        if layer < n_layers - 1:
            a = _view(abuf, zoff[layer], n, m)
            _activate(z, a, act)
            a_in = a
    return z


def _step(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head):
    """Loss (before the update) and gradients into g for one batch."""
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    logits = _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act)
    dz = _view(d1, 0, n, sizes[n_layers])
    loss = _loss_and_dlogits(logits, y, dz, head)
    for layer in range(n_layers - 1, -1, -1):
        k, m = sizes[layer], sizes[layer + 1]
        a_in = x if layer == 0 else _view(abuf, zoff[layer - 1], n, k)
        _grad_w(a_in, dz, _view(g, woff[layer], k, m))
        gb = g[boff[layer] : boff[layer] + m]
        gb[:] = 0
        for i in range(n):
            for j in range(m):
                gb[j] += dz[i, j]
        if layer > 0:
            da = _view(d2 if (n_layers - 1 - layer) % 2 == 0 else d1, 0, n, k)
            _back(dz, _view(p, woff[layer], k, m), da)
            _times_act_grad(da, _view(zbuf, zoff[layer - 1], n, k), a_in, act)
            dz = da
    return loss


def _update(p, g, m1, m2, hyper, t, opt):
    """SGD (torch-style momentum) or Adam (eps after bias correction), as OptimizerSpec states them;
    hyper = [lr, beta1, beta2, eps, momentum, 1, t] in the training dtype (t written here)."""
    lr, b1, b2, eps, mom, one = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    if opt == 0:
        for i in range(p.shape[0]):
            if mom != 0:
                m1[i] = mom * m1[i] + g[i]
            p[i] -= lr * (m1[i] if mom != 0 else g[i])
        return
    hyper[6] = t
    bc1 = one - b1 ** hyper[6]
    bc2 = one - b2 ** hyper[6]
    for i in range(p.shape[0]):
        gi = g[i]
        m1[i] = b1 * m1[i] + (one - b1) * gi
        m2[i] = b2 * m2[i] + (one - b2) * gi * gi
        p[i] -= lr * (m1[i] / bc1) / (np.sqrt(m2[i] / bc2) + eps)


def _epoch(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, xb, yb, zbuf, abuf, d1, d2, codes):
    """One epoch over order (the samples it uses), batch rows a step, the last step partial; state[0] counts
    the optimizer's steps. Returns the sum over the batches of loss (before each update) * rows."""
    act, head, opt = codes[0], codes[1], codes[2]
    n_in, n_out = X.shape[1], Y.shape[1]
    total = 0.0
    for start in range(0, order.shape[0], batch):
        n = min(batch, order.shape[0] - start)
        x, y = _view(xb, 0, n, n_in), _view(yb, 0, n, n_out)
        for i in range(n):
            r = order[start + i]
            x[i, :] = X[r, :]
            y[i, :] = Y[r, :]
        loss = _step(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head)
        state[0] += 1
        _update(p, g, m1, m2, hyper, state[0], opt)
        total += loss * n
    return total


def _predict(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, out, act, head, chunk):
    """Probabilities (sigmoid/softmax heads) or values (linear head) of every row of X into out."""
    n_in, n_out = X.shape[1], out.shape[1]
    for start in range(0, X.shape[0], chunk):
        n = min(chunk, X.shape[0] - start)
        x = _view(xb, 0, n, n_in)
        x[:, :] = X[start : start + n, :]
        z = _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act)
        for i in range(n):
            if head == 2:
                zmax = z[i, 0]
                for j in range(1, n_out):
                    zmax = max(zmax, z[i, j])
                s = 0.0 * zmax
                for j in range(n_out):
                    out[start + i, j] = np.exp(z[i, j] - zmax)
                    s += out[start + i, j]
                for j in range(n_out):
                    out[start + i, j] /= s
            else:
                for j in range(n_out):
                    out[start + i, j] = z[i, j] if head == 0 else _sigmoid(z[i, j])


# Rebound to numba dispatchers by _kernels(); numba resolves the calls between them at compile time.
_JITTED = (
    "_sigmoid _view _affine _grad_w _back _activate _times_act_grad _loss_and_dlogits _forward _step _update "
    "_epoch _predict"
).split()


def _kernels(threads: int | None):
    """Import numba, set its and BLAS's thread counts, and make every kernel a numba dispatcher (once)."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls SciPy's BLAS: loaded before it is limited
    import threadpoolctl

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
    g = globals()
    for name in _JITTED:
        if not hasattr(g[name], "py_func"):  # not yet a dispatcher
            g[name] = numba.njit(nogil=True, cache=True)(g[name])
    return numba


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

    def devices(self) -> list[str]:
        return ["cpu"]

    def thread_settings(self) -> dict:
        numba = _kernels(self.threads)
        return {"threads": self.threads, "numba_threads": numba.get_num_threads(), "parallel": False}

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
        numba = _kernels(self.threads)
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
        xb, yb = np.empty(rows * spec.n_inputs, dt), np.empty(rows * spec.n_outputs, dt)
        zbuf, abuf = np.empty(lay.n_acts, dt), np.empty(lay.n_acts, dt)
        d1, d2 = np.empty(rows * int(lay.sizes[1:].max()), dt), np.empty(rows * int(lay.sizes[1:].max()), dt)
        codes = np.array([ACT_CODES[spec.activation], HEAD_CODES[spec.head], OPT_CODES[o.name]], dtype=np.int64)
        rest = (rows, lay.sizes, lay.woff, lay.boff, lay.zoff, p, g, m1, m2, hyper, state, xb, yb, zbuf, abuf, d1, d2)

        losses, seconds, history, compile_seconds = [], [], [], 0.0
        for epoch in range(schedule.epochs):
            args = (X, Y, orders[epoch], *rest, codes)
            t0 = time.perf_counter()
            if epoch == 0:  # compilation (or loading it from numba's cache) inside the first epoch's time
                _epoch.compile(tuple(numba.typeof(a) for a in args))
                compile_seconds = time.perf_counter() - t0
            total = _epoch(*args)
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
            extra={"variant": "numba-fused-epoch", "fallback": None},
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        X = check_x(spec, X)
        check_params(spec, params)
        self.check_device(device)
        _kernels(self.threads)
        dt = np.dtype(spec.dtype)
        X = np.ascontiguousarray(X, dtype=dt)
        rows = min(PREDICT_CHUNK, len(X))
        lay = _Layout(spec, rows)
        out = np.empty((len(X), spec.n_outputs), dtype=dt)
        zbuf, abuf, xb = np.empty(lay.n_acts, dt), np.empty(lay.n_acts, dt), np.empty(rows * spec.n_inputs, dt)
        act, head = ACT_CODES[spec.activation], HEAD_CODES[spec.head]
        p = lay.flatten(params, dt)
        _predict(X, lay.sizes, lay.woff, lay.boff, lay.zoff, p, zbuf, abuf, xb, out, act, head, rows)
        return out
