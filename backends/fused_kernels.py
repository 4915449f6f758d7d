"""The fused backend's compiled kernels: one training epoch, and predict, on flat buffers.

Every kernel is numba nopython code, compiled once per dtype and cached on disk. What makes them fast
on the catalogue's small nets (measured in docs/design.md, "The fused backend"):
- every branch on the activation, head or optimizer sits outside the element loops, so each loop is a
  plain vectorizable row (fastmath reassoc/contract: LLVM may reorder sums and fuse multiply-adds;
  no nnan/ninf, so a non-finite loss still shows);
- tanh, exp and log1p run as branch-free vector rows in float32 (backends/fused_math.py) instead of one
  libm call per element; float64 calls NumPy's functions, as the reference does;
- error_model="numpy": numba's default ("python") tests every float division for a zero divisor to
  raise ZeroDivisionError, a branch that kept LLVM from vectorizing any loop with a division (tanh's
  rational function, Adam's update); with it a division by zero gives inf/nan, as in NumPy;
- a product with at least 64 bytes of output columns whose three operands (a layer's input, weight and
  output, n x k + k x m + n x m elements, the same for its three products) fit in GEMM_MAX_BYTES runs in
  register-blocked LLVM vector code (backends/fused_gemm.py), which re-reads them from L2 instead of
  packing them as BLAS does; other products go to BLAS (np.dot) from BLAS_MIN_FMAS multiply-adds up,
  below that to a loop with the output row innermost;
- with more than one numba thread, a product of PARALLEL_MIN_FMAS multiply-adds or more and 64 bytes of
  output columns runs the same blocks with its column blocks shared out over the threads (mnist10k's
  784 x 128 layer: OpenBLAS ran it slower on two threads than on one);
- no allocation in the epoch: the caller hands every buffer in, allocated once per training.
"""

from __future__ import annotations

import numba
import numpy as np

from backends.fused_gemm import matmul, matmul_parallel, transpose
from backends.fused_math import FASTMATH, exp_row, log1p01_row, log_row, tanh_row

BLAS_MIN_FMAS = 1 << 15  # a product this large goes to BLAS (np.dot); smaller ones are plain loops
GEMM_MAX_BYTES = 1 << 20  # unless it has 64 bytes of output columns and operands this small: fused_gemm
PARALLEL_MIN_FMAS = 1 << 21  # with several threads, a product this large shares its blocks out over them
_jit = numba.njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")


@_jit
def _sigmoid(z):
    e = np.exp(-abs(z))  # exp of a non-positive number only, as the reference
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


@_jit
def _view(buf, off, rows, cols):
    return buf[off : off + rows * cols].reshape((rows, cols))


@_jit
def _blocked(n, k, m, cols, itemsize):
    """Whether a product of a layer (n rows, k -> m) goes to fused_gemm.matmul: a full 64-byte column
    block, the layer's input, weight and output within GEMM_MAX_BYTES (measured on the Zen 4, 1 MB of
    L2: mnist10k's 100 x 784 x 128, 766 KB, ran faster in the blocks than in OpenBLAS; the sweeps'
    1024-wide layers, 2.3 MB and more, slower)."""
    return cols * itemsize >= 64 and (n * k + k * m + n * m) * itemsize <= GEMM_MAX_BYTES


@_jit
def _parallel(n, k, m, cols, itemsize):
    """Whether a blocked product of a threaded kernel goes to fused_gemm.matmul_parallel: a large one."""
    return n * k * m >= PARALLEL_MIN_FMAS and _blocked(n, k, m, cols, itemsize)


@_jit
def _transpose(w, wt_buf):
    """w.T into the first w.size elements of wt_buf; returns it as a (cols, rows) view."""
    k, m = w.shape
    wt = _view(wt_buf, 0, m, k)
    transpose(w, wt)
    return wt


@_jit
def _affine(a, w, b, z, wt_buf, threaded):
    """z = a @ w + b; wt_buf: scratch of w.size elements."""
    (n, k), m = a.shape, w.shape[1]
    if _blocked(n, k, m, m, z.itemsize):
        for i in range(n):
            for j in range(m):
                z[i, j] = b[j]
        if threaded:  # a constant: the single-threaded kernels hold no parallel code (numba caches them)
            if _parallel(n, k, m, m, z.itemsize):
                matmul_parallel(a, False, w, z, 1)
                return
        matmul(a, False, w, z, 1)
        return
    if _blocked(n, k, m, k, z.itemsize):  # a narrow output (the head): dot products along k, vectorized
        wt = _transpose(w, wt_buf)
        for i in range(n):
            for j in range(m):
                s = b[j]
                for kk in range(k):
                    s += a[i, kk] * wt[j, kk]
                z[i, j] = s
        return
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(a, w, z)
        for i in range(n):
            for j in range(m):
                z[i, j] += b[j]
        return
    for i in range(n):
        for j in range(m):
            z[i, j] = b[j]
        for kk in range(k):
            aik = a[i, kk]
            for j in range(m):
                z[i, j] += aik * w[kk, j]


@_jit
def _grad_w(a, dz, g, gb, wt_buf, threaded):
    """g = a.T @ dz and gb = the column sums of dz; wt_buf: scratch of g.size elements."""
    (n, k), m = a.shape, dz.shape[1]
    gb[:] = 0
    for i in range(n):
        for j in range(m):
            gb[j] += dz[i, j]
    if threaded:
        if _parallel(n, k, m, m, g.itemsize):
            matmul_parallel(a, True, dz, g, 0)
            return
    if _blocked(n, k, m, m, g.itemsize):
        matmul(a, True, dz, g, 0)
        return
    if _blocked(n, k, m, k, g.itemsize):  # a narrow g: g.T = dz.T @ a, blocked, then transposed
        gt = _view(wt_buf, 0, m, k)
        matmul(dz, True, a, gt, 0)
        transpose(gt, g)
        return
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(a.T, dz, g)
        return
    g[:, :] = 0
    for i in range(n):
        for kk in range(k):
            aik = a[i, kk]
            for j in range(m):
                g[kk, j] += aik * dz[i, j]


@_jit
def _back(dz, w, da, wt_buf, threaded):
    """da = dz @ w.T; wt_buf: scratch of w.size elements (w transposed, for fused_gemm.matmul)."""
    (n, m), k = dz.shape, w.shape[0]
    if threaded:
        if _parallel(n, k, m, k, da.itemsize):
            matmul_parallel(dz, False, _transpose(w, wt_buf), da, 0)
            return
    if _blocked(n, k, m, k, da.itemsize):
        matmul(dz, False, _transpose(w, wt_buf), da, 0)
        return
    if n * k * m >= BLAS_MIN_FMAS:
        np.dot(dz, w.T, da)
        return
    for i in range(n):
        for kk in range(k):
            s = dz[i, 0] * w[kk, 0]
            for j in range(1, m):
                s += dz[i, j] * w[kk, j]
            da[i, kk] = s


@_jit
def _activate(z, a, size, code):
    """a = act(z) over the first size elements of two flat rows."""
    if code == 0:
        a[:size] = z[:size]
    elif code == 1:
        for i in range(size):
            a[i] = max(z[i], 0)
    elif code == 2:
        tanh_row(z, a, size)
    else:
        for i in range(size):
            a[i] = _sigmoid(z[i])


@_jit
def _times_act_grad(da, z, a, size, code):
    """da *= d act(z) / dz (given a = act(z)) over size elements of flat rows; linear leaves da as it is."""
    if code == 1:
        for i in range(size):
            da[i] = da[i] if z[i] > 0 else 0
    elif code == 2:
        for i in range(size):
            da[i] *= 1 - a[i] * a[i]
    elif code == 3:
        for i in range(size):
            da[i] *= a[i] * (1 - a[i])


@_jit
def _loss_and_dlogits(z, y, dz, size, m, head, e, lg, ib):
    """The mean loss from the logits z (size elements, m a row; returned) and its gradient written into dz;
    e, lg, ib: scratch rows of size elements."""
    total = 0.0
    if head == 0:  # mse
        for i in range(size):
            d = z[i] - y[i]
            total += d * d
            dz[i] = (d + d) / size
        return total / size
    if head == 1:  # bce from logits, exp of a non-positive number only
        for i in range(size):
            dz[i] = -abs(z[i])
        exp_row(dz, e, size, ib)
        log1p01_row(e, lg, size)
        for i in range(size):
            v, ei = z[i], e[i]
            total += (max(v, 0) + lg[i]) - y[i] * v
            dz[i] = ((1 / (1 + ei) if v >= 0 else ei / (1 + ei)) - y[i]) / size
        return total / size
    n = size // m  # cce from logits
    for r in range(n):
        o = r * m
        zmax = z[o]
        for j in range(1, m):
            zmax = max(zmax, z[o + j])
        for j in range(m):
            e[o + j] = z[o + j] - zmax
    exp_row(e, dz, size, ib)
    for r in range(n):  # each row's sum of exponentials into e[r], its log into lg[r] (one vector row)
        o = r * m
        se = 0.0 * z[o]
        for j in range(m):
            se += dz[o + j]
        e[r] = se
    log_row(e, lg, n, ib)
    for r in range(n):
        o = r * m
        zmax = z[o]
        for j in range(1, m):
            zmax = max(zmax, z[o + j])
        yz = 0.0
        for j in range(m):
            yz += y[o + j] * z[o + j]
        total += (zmax + lg[r]) - yz
        se = e[r]
        for j in range(m):
            dz[o + j] = (dz[o + j] / se - y[o + j]) / n
    return total / n


@_jit
def _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act, wt, threaded):
    """Every layer's pre-activation into zbuf and hidden activation into abuf; returns the logits."""
    n = x.shape[0]
    a_in = x
    n_layers = sizes.shape[0] - 1
    z = _view(zbuf, 0, n, sizes[1])
    for layer in range(n_layers):
        k, m = sizes[layer], sizes[layer + 1]
        z = _view(zbuf, zoff[layer], n, m)
        _affine(a_in, _view(p, woff[layer], k, m), p[boff[layer] : boff[layer] + m], z, wt, threaded)
        if layer < n_layers - 1:
            _activate(zbuf[zoff[layer] :], abuf[zoff[layer] :], n * m, act)
            a_in = _view(abuf, zoff[layer], n, m)
    return z


@_jit
def _step(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head, e, lg, ib, wt, threaded):
    """Loss (before the update) and gradients into g for one batch."""
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    n_out = sizes[n_layers]
    _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act, wt, threaded)
    loss = _loss_and_dlogits(zbuf[zoff[n_layers - 1] :], y.ravel(), d1, n * n_out, n_out, head, e, lg, ib)
    dz = _view(d1, 0, n, n_out)
    for layer in range(n_layers - 1, -1, -1):
        k, m = sizes[layer], sizes[layer + 1]
        a_in = x if layer == 0 else _view(abuf, zoff[layer - 1], n, k)
        _grad_w(a_in, dz, _view(g, woff[layer], k, m), g[boff[layer] : boff[layer] + m], wt, threaded)
        if layer > 0:
            dbuf = d2 if (n_layers - 1 - layer) % 2 == 0 else d1
            da = _view(dbuf, 0, n, k)
            _back(dz, _view(p, woff[layer], k, m), da, wt, threaded)
            _times_act_grad(dbuf, zbuf[zoff[layer - 1] :], abuf[zoff[layer - 1] :], n * k, act)
            dz = da
    return loss


@_jit
def _update(p, g, m1, m2, hyper, t, opt):
    """SGD (torch-style momentum) or Adam (eps after bias correction), as OptimizerSpec states them;
    hyper = [lr, beta1, beta2, eps, momentum, 1, t] in the training dtype (t written here)."""
    lr, b1, b2, eps, mom, one = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5]
    size = p.shape[0]
    if opt == 0:
        if mom != 0:
            for i in range(size):
                m1[i] = mom * m1[i] + g[i]
                p[i] -= lr * m1[i]
        else:
            for i in range(size):
                p[i] -= lr * g[i]
        return
    hyper[6] = t
    bc1 = one - b1 ** hyper[6]
    bc2 = one - b2 ** hyper[6]
    c1, c2 = one - b1, one - b2
    for i in range(size):
        gi = g[i]
        m1[i] = b1 * m1[i] + c1 * gi
        m2[i] = b2 * m2[i] + c2 * gi * gi
        p[i] -= lr * (m1[i] / bc1) / (np.sqrt(m2[i] / bc2) + eps)


@_jit
def _epoch(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes, threaded):
    """One epoch over order (the samples it uses), batch rows a step, the last step partial; state[0] counts
    the optimizer's steps; bufs: the flat scratch buffers of the training (FusedBuffers.pack). Returns the
    sum over the batches of loss (before each update) * rows. threaded, a constant of the two entry points
    below: whether the large products share their blocks out over numba's threads."""
    act, head, opt = codes[0], codes[1], codes[2]
    xb, yb, zbuf, abuf, d1, d2, e, lg, wt = bufs
    n_in, n_out = X.shape[1], Y.shape[1]
    total = 0.0
    for start in range(0, order.shape[0], batch):
        n = min(batch, order.shape[0] - start)
        x, y = _view(xb, 0, n, n_in), _view(yb, 0, n, n_out)
        for i in range(n):
            r = order[start + i]
            for j in range(n_in):
                x[i, j] = X[r, j]
            for j in range(n_out):
                y[i, j] = Y[r, j]
        loss = _step(x, y, sizes, woff, boff, zoff, p, g, zbuf, abuf, d1, d2, act, head, e, lg, ib, wt, threaded)
        state[0] += 1
        _update(p, g, m1, m2, hyper, state[0], opt)
        total += loss * n
    return total


@_jit
def _predict(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, wt, out, act, head, chunk, threaded):
    """Probabilities (sigmoid/softmax heads) or values (linear head) of every row of X into out;
    threaded as in _epoch."""
    n_in, n_out = X.shape[1], out.shape[1]
    for start in range(0, X.shape[0], chunk):
        n = min(chunk, X.shape[0] - start)
        x = _view(xb, 0, n, n_in)
        x[:, :] = X[start : start + n, :]
        z = _forward(x, sizes, woff, boff, zoff, p, zbuf, abuf, act, wt, threaded)
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


# The entry points: threaded is a constant in each, so numba compiles _epoch and _predict once for each
# value and prunes the other branch; the single-threaded kernels hold no parallel code. (A flag passed
# from Python made every call re-type the dispatcher; numba's parallel code in the single-threaded
# kernels had made them uncacheable, a 15 s compile in every process.)
@_jit
def epoch(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes):
    """One epoch on one thread (_epoch)."""
    return _epoch(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes, False)


@_jit
def epoch_threaded(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes):
    """One epoch whose large products share their blocks out over numba's threads (_epoch)."""
    return _epoch(X, Y, order, batch, sizes, woff, boff, zoff, p, g, m1, m2, hyper, state, bufs, ib, codes, True)


@_jit
def predict(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, wt, out, act, head, chunk):
    _predict(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, wt, out, act, head, chunk, False)


@_jit
def predict_threaded(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, wt, out, act, head, chunk):
    _predict(X, sizes, woff, boff, zoff, p, zbuf, abuf, xb, wt, out, act, head, chunk, True)
