"""Row kernels of the fused backend's elementwise math, written so that LLVM vectorizes them.

numba calls libm for np.tanh, np.exp and np.log1p, one element at a time (no vector math library is
linked); on the catalogue's tanh nets that was most of an epoch (sine-mlp: 113k samples/s with tanh,
423k with a linear activation, same run). In float32 these rows use branch-free formulas of plain
arithmetic instead, accurate to a few float32 ulps (the float32 parity bound is 10 x float32 noise):
tanh as Eigen's/XLA's rational approximation (what jax runs on CPU), exp as Cephes' expf (range
reduction by ln 2, degree-6 polynomial, 2^k from its exponent bits), log1p(e) for e in [0, 1] as
2 atanh(e / (2 + e)) by its odd series, log(x) of a positive normal x as k ln 2 + log1p(f - 1) from
its bits (x = 2^k f, sqrt(2)/2 <= f < sqrt(2)). In float64 they call NumPy's functions, exactly as the
reference does, so float64 parity is to the last bits of libm.
Every row function takes (source, destination, count[, int32 scratch]); source may be destination.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import overload

FASTMATH = {"reassoc", "contract", "nsz"}  # no nnan/ninf: a non-finite loss must stay visible
_jit = numba.njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")

_F = np.float32
# Eigen's generic_fast_tanh_float: tanh(x) = x P(x^2) / Q(x^2) on [-7.9053, 7.9053]
_TANH_CLAMP = _F(7.90531110763549805)
_A = [_F(v) for v in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08)]
_A += [_F(v) for v in (-8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)]
_B = [_F(v) for v in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)]
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = _A
_B0, _B2, _B4, _B6 = _B
_TINY = _F(0.0004)
# Cephes expf
_EXP_HI, _EXP_LO = _F(88.3762626647949), _F(-87.3365447504019)  # 2^k stays a normal float32
_LOG2E, _HALF, _C1, _C2 = _F(1.44269504088896341), _F(0.5), _F(0.693359375), _F(-2.12194440e-4)
_P = [_F(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1)]
_P0, _P1, _P2, _P3, _P4 = _P
_P5, _ONE, _TWO = _F(5.0000001201e-1), _F(1.0), _F(2.0)
_LN2, _SQRT2 = _F(0.693147180559945309), _F(1.41421356237309505)
_INV = [_F(1.0 / k) for k in (3, 5, 7, 9, 11, 13)]
_I3, _I5, _I7, _I9, _I11, _I13 = _INV


@_jit
def tanh32(x):
    v = _TANH_CLAMP if x > _TANH_CLAMP else x  # comparisons written so that a NaN passes through
    v = -_TANH_CLAMP if v < -_TANH_CLAMP else v
    v2 = v * v
    p = v2 * _A13 + _A11
    p = v2 * p + _A9
    p = v2 * p + _A7
    p = v2 * p + _A5
    p = v2 * p + _A3
    p = v2 * p + _A1
    q = v2 * _B6 + _B4
    q = v2 * q + _B2
    q = v2 * q + _B0
    return x if abs(x) < _TINY else v * p / q


@_jit
def log1p01_32(e):
    """log(1 + e) for -0.3 <= e <= 1 (|s| <= 1/3: the series' next term is below 1e-8 relative)."""
    s = e / (_TWO + e)
    s2 = s * s
    return _TWO * s * (_ONE + s2 * (_I3 + s2 * (_I5 + s2 * (_I7 + s2 * (_I9 + s2 * (_I11 + s2 * _I13))))))


@_jit
def tanh_row32(src, dst, n):
    for i in range(n):
        dst[i] = tanh32(src[i])


@_jit
def tanh_row64(src, dst, n):
    for i in range(n):
        dst[i] = np.tanh(src[i])


@_jit
def exp_row32(src, dst, n, ib):
    """dst = exp(src) in two vector passes: the polynomial, then its scale 2^k written as float32 bits."""
    fb = ib.view(np.float32)
    for i in range(n):
        v = _EXP_HI if src[i] > _EXP_HI else src[i]
        v = _EXP_LO if v < _EXP_LO else v
        k = np.floor(v * _LOG2E + _HALF)
        r = v - k * _C1 - k * _C2
        y = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) + r + _ONE
        dst[i] = y
        ib[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for i in range(n):
        dst[i] *= fb[i]


@_jit
def exp_row64(src, dst, n, ib):
    for i in range(n):
        dst[i] = np.exp(src[i])


@_jit
def log1p01_row32(src, dst, n):
    for i in range(n):
        dst[i] = log1p01_32(src[i])


@_jit
def log1p01_row64(src, dst, n):
    for i in range(n):
        dst[i] = np.log1p(src[i])


@_jit
def log_row32(src, dst, n, ib):
    """dst = log(src) for positive normal src: its exponent k and mantissa f from the float32 bits."""
    sb = src.view(np.int32)
    fb = ib.view(np.float32)
    for i in range(n):
        ib[i] = (sb[i] & np.int32(0x007FFFFF)) | np.int32(0x3F800000)  # f, in [1, 2)
    for i in range(n):
        k = _F((sb[i] >> np.int32(23)) - np.int32(127))
        f = fb[i]
        big = f > _SQRT2  # f in [sqrt(2)/2, sqrt(2)): no cancellation between k ln 2 and log(f) near x = 1
        f = f * _HALF if big else f
        k = k + _ONE if big else k
        dst[i] = k * _LN2 + log1p01_32(f - _ONE)


@_jit
def log_row64(src, dst, n, ib):
    for i in range(n):
        dst[i] = np.log(src[i])


def _pick(a, f32, f64):
    from numba import types

    return f32 if a.dtype == types.float32 else f64


def tanh_row(src, dst, n):
    """dst = tanh(src) in the array's dtype (resolved at compile time)."""
    raise NotImplementedError("jit-only")


def exp_row(src, dst, n, ib):
    """dst = exp(src); ib: int32 scratch of n elements."""
    raise NotImplementedError("jit-only")


def log1p01_row(src, dst, n):
    """dst = log1p(src) for src in [0, 1]."""
    raise NotImplementedError("jit-only")


def log_row(src, dst, n, ib):
    """dst = log(src) for positive src; ib: int32 scratch of n elements; dst may not be src in float32."""
    raise NotImplementedError("jit-only")


@overload(tanh_row)
def _tanh_row(src, dst, n):
    impl = _pick(src, tanh_row32, tanh_row64)
    return lambda src, dst, n: impl(src, dst, n)


@overload(exp_row)
def _exp_row(src, dst, n, ib):
    impl = _pick(src, exp_row32, exp_row64)
    return lambda src, dst, n, ib: impl(src, dst, n, ib)


@overload(log1p01_row)
def _log1p01_row(src, dst, n):
    impl = _pick(src, log1p01_row32, log1p01_row64)
    return lambda src, dst, n: impl(src, dst, n)


@overload(log_row)
def _log_row(src, dst, n, ib):
    impl = _pick(src, log_row32, log_row64)
    return lambda src, dst, n, ib: impl(src, dst, n, ib)
