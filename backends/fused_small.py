"""The fused backend's epoch for small nets, feature-major: every activation and gradient block is held
transposed, (features, rows), so that each loop's innermost index runs over the batch's rows.

Row-major blocks (backends/fused_kernels.py) put a layer's output units innermost: on the catalogue's
tiny nets (2 -> 4 -> 2 -> 1, 2 -> 3) those loops run 1 to 4 times and do not vectorize, and a step was
mostly loop overhead. Here a layer is m x k passes over n rows (32 to 128 contiguous elements: whole
vector registers), the weight gradient k x m dot products over the rows, and the element-wise parts
(activations, the sigmoid and MSE losses, the optimizer) are the same flat loops as there. The math is
the NumPy reference's, step for step; only the order of the sums over rows differs, as it does in BLAS.
fused.py picks this epoch where every layer is at most SMALL_MAX_WIDTH wide (measured in docs/design.md).
"""

from __future__ import annotations

from backends.fused_kernels import _activate, _jit, _loss_and_dlogits, _times_act_grad, _update, _view
from backends.fused_math import exp_row, log_row

SMALL_MAX_WIDTH = 16  # every layer (inputs included) at most this wide: this epoch (fused.py)


@_jit
def _affine_t(a, w, b, z):
    """z = (a.T @ w + b).T: a (k, n), w (k, m), z (m, n)."""
    k, n = a.shape
    m = w.shape[1]
    for j in range(m):
        bj = b[j]
        for i in range(n):
            z[j, i] = bj
        for kk in range(k):
            wkj = w[kk, j]
            for i in range(n):
                z[j, i] += wkj * a[kk, i]


@_jit
def _grad_w_t(a, dz, g, gb):
    """g = a @ dz.T (k, m) and gb = the row sums of dz: a (k, n), dz (m, n)."""
    k, n = a.shape
    m = dz.shape[0]
    for j in range(m):
        s = dz[j, 0]
        for i in range(1, n):
            s += dz[j, i]
        gb[j] = s
    for kk in range(k):
        for j in range(m):
            s = a[kk, 0] * dz[j, 0]
            for i in range(1, n):
                s += a[kk, i] * dz[j, i]
            g[kk, j] = s


@_jit
def _back_t(dz, w, da):
    """da = w @ dz: dz (m, n), w (k, m), da (k, n)."""
    m, n = dz.shape
    k = w.shape[0]
    for kk in range(k):
        w0 = w[kk, 0]
        for i in range(n):
            da[kk, i] = w0 * dz[0, i]
        for j in range(1, m):
            wkj = w[kk, j]
            for i in range(n):
                da[kk, i] += wkj * dz[j, i]


@_jit
def _softmax_loss_t(z, y, dz, n, m, e, lg, ib):
    """The mean cross-entropy of a softmax from feature-major logits z (m rows of n, flat; returned) and
    its gradient into dz; e, lg: scratch of n * m elements (m >= 2), ib: int scratch as large."""
    size = n * m
    zmax = lg[n : 2 * n]
    for i in range(n):
        zmax[i] = z[i]
    for j in range(1, m):
        for i in range(n):
            zmax[i] = max(zmax[i], z[j * n + i])
    for j in range(m):
        for i in range(n):
            e[j * n + i] = z[j * n + i] - zmax[i]
    exp_row(e, dz, size, ib)
    for i in range(n):  # each row's sum of exponentials into e[:n], its log into lg[:n]
        e[i] = dz[i]
    for j in range(1, m):
        for i in range(n):
            e[i] += dz[j * n + i]
    log_row(e, lg, n, ib)
    total = 0.0
    for i in range(n):
        total += zmax[i] + lg[i]
    for j in range(m):
        for i in range(n):
            total -= y[j * n + i] * z[j * n + i]
            dz[j * n + i] = (dz[j * n + i] / e[i] - y[j * n + i]) / n
    return total / n


@_jit
def _step_t(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head, e, lg, ib):
    """Loss (before the update) and gradients into g for one batch: x (inputs, n), y (outputs, n)."""
    n = x.shape[1]
    n_layers = sizes.shape[0] - 1
    n_out = sizes[n_layers]
    a_in = x
    for layer in range(n_layers):
        k, m = sizes[layer], sizes[layer + 1]
        _affine_t(a_in, _view(p, woff[layer], k, m), p[boff[layer] : boff[layer] + m], _view(zbuf, zoff[layer], m, n))
        if layer < n_layers - 1:
            _activate(zbuf[zoff[layer] :], abuf[zoff[layer] :], n * m, act)
            a_in = _view(abuf, zoff[layer], m, n)
    logits = zbuf[zoff[n_layers - 1] :]
    if head == 2:
        loss = _softmax_loss_t(logits, y.ravel(), d1, n, n_out, e, lg, ib)
    else:  # element-wise: the same in either layout
        loss = _loss_and_dlogits(logits, y.ravel(), d1, n * n_out, n_out, head, e, lg, ib)
    dz = _view(d1, 0, n_out, n)
    for layer in range(n_layers - 1, -1, -1):
        k, m = sizes[layer], sizes[layer + 1]
        a_in = x if layer == 0 else _view(abuf, zoff[layer - 1], k, n)
        _grad_w_t(a_in, dz, _view(g, woff[layer], k, m), g[boff[layer] : boff[layer] + m])
        if layer > 0:
            dbuf = d2 if (n_layers - 1 - layer) % 2 == 0 else d1
            da = _view(dbuf, 0, k, n)
            _back_t(dz, _view(p, woff[layer], k, m), da)
            _times_act_grad(dbuf, zbuf[zoff[layer - 1] :], abuf[zoff[layer - 1] :], n * k, act)
            dz = da
    return loss


@_jit
def epoch_small(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes):
    """One epoch, feature-major, on one thread: the arguments of fused_kernels.epoch (its buffers are as
    large either way)."""
    act, head, opt = codes[0], codes[1], codes[2]
    xb, yb, zbuf, abuf, d1, d2, e, lg, _ = bufs
    n_in, n_out = X.shape[1], Y.shape[1]
    total = 0.0
    for start in range(0, order.shape[0], batch):
        n = min(batch, order.shape[0] - start)
        x, y = _view(xb, 0, n_in, n), _view(yb, 0, n_out, n)
        for i in range(n):
            r = order[start + i]
            for j in range(n_in):
                x[j, i] = X[r, j]
            for j in range(n_out):
                y[j, i] = Y[r, j]
        loss = _step_t(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head, e, lg, ib)
        state[0] += 1
        _update(p, g, m1, m2, hyper, state[0], opt)
        total += loss * n
    return total
