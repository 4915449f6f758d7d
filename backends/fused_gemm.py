"""Register-blocked small matrix products for the fused backend, below the sizes where BLAS wins.

At the catalogue's 64-wide layers a product is 32 x 64 x 64 multiply-adds: OpenBLAS spends most of
such a call outside its kernel, and numba's plain loops keep the output row in memory (the arrays may
alias, so LLVM cannot hold it in registers; numba leaves LLVM's SLP vectorizer off). Here the inner
block is written as LLVM vector IR directly: 6 rows x 64 bytes of C (16 float32 or 8 float64 a row;
LLVM splits a row into registers of the target's width, two AVX2 registers or one AVX-512 one: 12 of
AVX2's 16) stay in registers over the whole reduction, each step one row of B and one broadcast element
of A a row. transpose (for da = dz @ W.T, whose B would otherwise be W's columns) moves float32 in 8 x 8
tiles of vector shuffles.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from backends.fused_math import FASTMATH

ROWS = 6  # rows of C a block; a block is 64 bytes wide (16 float32, 8 float64)
_jit = numba.njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")


@intrinsic(prefer_literal=True)
def _block(typingctx, rows, c, coff, ldc, a, aoff, ars, aks, b, boff, ldb, depth, beta):
    """C[r, 0:w] = beta * C[r, 0:w] + sum_p A[r, p] * B[p, 0:w] for r < rows (a literal), w = 64 bytes;
    flat element offsets: C[r, j] = c[coff + r ldc + j], A[r, p] = a[aoff + r ars + p aks],
    B[p, j] = b[boff + p ldb + j]; beta is 0 or 1."""
    if not isinstance(rows, types.IntegerLiteral):
        return None
    n_rows = rows.literal_value
    i = types.intp
    sig = types.void(rows, c, i, i, a, i, i, i, b, i, i, i, i)

    def codegen(context, builder, signature, args):
        _, c_arr, coff_, ldc_, a_arr, aoff_, ars_, aks_, b_arr, boff_, ldb_, depth_, beta_ = args
        fty = context.get_value_type(c.dtype)
        size = context.get_abi_sizeof(fty)
        width = 64 // size
        vty = ir.VectorType(fty, width)
        cp = context.make_array(c)(context, builder, c_arr).data
        ap = context.make_array(a)(context, builder, a_arr).data
        bp = context.make_array(b)(context, builder, b_arr).data
        intp = context.get_value_type(types.intp)
        keep = builder.icmp_signed("!=", beta_, ir.Constant(intp, 0))
        zero = ir.Constant(vty, None)
        fname = f"llvm.fmuladd.v{width}f{size * 8}"  # fused where the target has FMA
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), fname)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)

        def row_ptr(base, off):
            return builder.bitcast(builder.gep(base, [off]), vty.as_pointer())

        slots, cptrs = [], []
        for r in range(n_rows):
            cptr = row_ptr(cp, builder.add(coff_, builder.mul(ldc_, ir.Constant(intp, r))))
            slot = cgutils.alloca_once(builder, vty)
            builder.store(builder.select(keep, builder.load(cptr, align=size), zero), slot)
            slots.append(slot)
            cptrs.append(cptr)
        with cgutils.for_range(builder, depth_) as loop:
            p = loop.index
            brow = builder.load(row_ptr(bp, builder.add(boff_, builder.mul(p, ldb_))), align=size)
            abase = builder.add(aoff_, builder.mul(p, aks_))
            for r in range(n_rows):
                aoff_r = builder.add(abase, builder.mul(ars_, ir.Constant(intp, r)))
                av = builder.load(builder.gep(ap, [aoff_r]), align=size)
                av = builder.insert_element(ir.Constant(vty, ir.Undefined), av, ir.Constant(ir.IntType(32), 0))
                av = builder.shuffle_vector(av, ir.Constant(vty, ir.Undefined), splat)
                builder.store(builder.call(fma, [av, brow, builder.load(slots[r])]), slots[r])
        for r in range(n_rows):
            builder.store(builder.load(slots[r]), cptrs[r], align=size)
        return context.get_dummy_value()

    return sig, codegen


@_jit
def _column_block(a, ars, aks, b, c, j0, beta):
    """c[:, j0:j0 + 64 bytes] = beta c[...] + op(a) @ b[:, j0:...]: blocks of ROWS rows, then 4, 3, 2, 1."""
    depth, cols = b.shape
    rows = c.shape[0]
    i0 = 0
    while i0 + ROWS <= rows:
        _block(6, c, i0 * cols + j0, cols, a, i0 * ars, ars, aks, b, j0, cols, depth, beta)
        i0 += ROWS
    left = rows - i0
    if left >= 4:
        _block(4, c, i0 * cols + j0, cols, a, i0 * ars, ars, aks, b, j0, cols, depth, beta)
        i0 += 4
        left -= 4
    if left == 3:
        _block(3, c, i0 * cols + j0, cols, a, i0 * ars, ars, aks, b, j0, cols, depth, beta)
    elif left == 2:
        _block(2, c, i0 * cols + j0, cols, a, i0 * ars, ars, aks, b, j0, cols, depth, beta)
    elif left == 1:
        _block(1, c, i0 * cols + j0, cols, a, i0 * ars, ars, aks, b, j0, cols, depth, beta)


@_jit
def _last_columns(a, ars, aks, b, c, full, beta):
    """The columns from full on (fewer than 64 bytes of them), as plain loops."""
    depth, cols = b.shape
    af = a.ravel()
    for i in range(c.shape[0]):
        for j in range(full, cols):
            if beta == 0:
                c[i, j] = 0  # not 0 * c[i, j]: scratch may hold a non-finite value
            s = c[i, j]
            for p in range(depth):
                s += af[i * ars + p * aks] * b[p, j]
            c[i, j] = s


@_jit
def matmul(a, trans, b, c, beta):
    """c = beta c + op(a) @ b, op(a) = a.T if trans else a (beta 0 or 1; a, b, c C-contiguous 2-d, b is
    (depth, cols), c (rows, cols)): 64-byte-wide column blocks of ROWS rows in registers, plain
    loops for the last cols % (64 bytes) columns."""
    cols = b.shape[1]
    ars, aks = (1, a.shape[1]) if trans else (a.shape[1], 1)
    width = 64 // c.itemsize
    full = cols - cols % width
    for j0 in range(0, full, width):
        _column_block(a, ars, aks, b, c, j0, beta)
    if full < cols:
        _last_columns(a, ars, aks, b, c, full, beta)


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def matmul_parallel(a, trans, b, c, beta):
    """matmul with its 64-byte column blocks shared out over numba's threads (prange): each thread
    reads all of op(a) and its own panels of b, and writes its own columns of c."""
    cols = b.shape[1]
    ars, aks = (1, a.shape[1]) if trans else (a.shape[1], 1)
    width = 64 // c.itemsize
    full = cols - cols % width
    for jb in numba.prange(full // width):
        _column_block(a, ars, aks, b, c, jb * width, beta)
    if full < cols:
        _last_columns(a, ars, aks, b, c, full, beta)


@intrinsic
def _tile8(typingctx, src, soff, lds, dst, doff, ldd):
    """dst[doff + j ldd + i] = src[soff + i lds + j] for i, j < 8 (float32): eight row loads, the AVX
    unpack / shuffle / 128-bit-lane permute sequence of an 8 x 8 transpose as LLVM shuffles, eight stores."""
    i = types.intp
    sig = types.void(src, i, i, dst, i, i)

    def codegen(context, builder, signature, args):
        s_arr, soff_, lds_, d_arr, doff_, ldd_ = args
        fty = context.get_value_type(src.dtype)
        vty = ir.VectorType(fty, 8)
        intp = context.get_value_type(types.intp)
        sp = context.make_array(src)(context, builder, s_arr).data
        dp = context.make_array(dst)(context, builder, d_arr).data

        def ptr(base, off, ld, r):
            off = builder.add(off, builder.mul(ld, ir.Constant(intp, r)))
            return builder.bitcast(builder.gep(base, [off]), vty.as_pointer())

        def shuf(x, y, mask):
            return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

        r = [builder.load(ptr(sp, soff_, lds_, q), align=4) for q in range(8)]
        lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
        t = [shuf(r[q], r[q + 1], m) for q in range(0, 8, 2) for m in (lo, hi)]
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        s = [shuf(t[q], t[q + 2], m) for q in (0, 1, 4, 5) for m in (lo, hi)]
        lo, hi = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
        out = [shuf(s[q], s[q + 4], lo) for q in range(4)] + [shuf(s[q], s[q + 4], hi) for q in range(4)]
        for q in range(8):
            builder.store(out[q], ptr(dp, doff_, ldd_, q), align=4)
        return context.get_dummy_value()

    return sig, codegen


@_jit
def transpose(w, wt):
    """wt = w.T (w: (rows, cols), wt: (cols, rows), C-contiguous): float32 in 8 x 8 shuffled tiles."""
    k, m = w.shape
    k8, m8 = (k - k % 8, m - m % 8) if w.itemsize == 4 else (0, 0)
    for k0 in range(0, k8, 8):
        for j0 in range(0, m8, 8):
            _tile8(w, k0 * m + j0, m, wt, j0 * k + k0, k)
    for kk in range(k):
        for j in range(m8 if kk < k8 else 0, m):
            wt[j, kk] = w[kk, j]
