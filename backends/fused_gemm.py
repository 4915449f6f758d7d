"""Register-blocked small matrix products for the fused backend, below the sizes where BLAS wins.

At the catalogue's 64-wide layers a product is 32 x 64 x 64 multiply-adds: OpenBLAS spends most of
such a call outside its kernel, and numba's plain loops keep the output row in memory (the arrays may
alias, so LLVM cannot hold it in registers; numba leaves LLVM's SLP vectorizer off). Here the inner
block is written as LLVM vector IR directly: 4 rows x 64 bytes of C (16 float32 or 8 float64 a row;
LLVM splits a row into registers of the target's width, two AVX2 registers or one AVX-512 one) stay in
registers over the whole reduction, each step one row of B and one broadcast element of A a row.
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
        fname = f"llvm.fma.v{width}f{size * 8}"
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
def matmul(a, trans, b, c, beta):
    """c = beta c + op(a) @ b, op(a) = a.T if trans else a (beta 0 or 1; a, b, c C-contiguous 2-d, b is
    (depth, cols), c (rows, cols)): 64-byte-wide column blocks of 4 rows in registers, plain loops
    for the last cols % (64 bytes) columns."""
    depth, cols = b.shape
    rows = c.shape[0]
    ars, aks = (1, a.shape[1]) if trans else (a.shape[1], 1)
    width = 64 // c.itemsize
    full = cols - cols % width
    for j0 in range(0, full, width):
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
    if full < cols:
        af = a.ravel()
        for i in range(rows):
            for j in range(full, cols):
                s = c[i, j] if beta != 0 else 0 * c[i, j]
                for p in range(depth):
                    s += af[i * ars + p * aks] * b[p, j]
                c[i, j] = s
