"""The machine's speed beside each timed section: one fixed kernel, timed in the same slot.

Why: a shared 2-core machine's speed moves within a day (its calibrate ceiling read 67.6, 93.3 and
85.1 GFLOP/s in three runs of one commit), so two runs of one commit differ in samples/s by the
machine's speed as much as by anything in the code. The run's ceiling (workflow/scripts/calibrate.py)
is one reading per run and the best of several kernels, a different one winning each time; dividing
by it left 16% of the cells of three same-code runs "moved" (README). This reading is the same kernel
every time (a NumPy float32 256x256 matmul, through OpenBLAS, on the section's thread count), taken in
each process right before and after its timed section, so a figure can be judged per GFLOP/s of the
machine as it was while that figure was timed (reports/compare.py).
"""

from __future__ import annotations

import time

import numpy as np

SIZE = 256  # 3 x 256 KiB of float32: in L2, so the kernel measures the core, not the memory
BLOCKS = 3  # timed blocks each side of the section
BLOCK_SECONDS = 0.02
SOURCE = f"NumPy float32 matmul {SIZE}x{SIZE}, median of {BLOCKS} blocks of {BLOCK_SECONDS:g} s before and after"


def _operands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((SIZE, SIZE)).astype(np.float32), rng.standard_normal((SIZE, SIZE)).astype(np.float32)


def blocks(threads: int) -> list[float]:
    """GFLOP/s of BLOCKS blocks of the fixed matmul, each lasting about BLOCK_SECONDS, on `threads` BLAS
    threads (threadpoolctl; the process's own setting is restored after)."""
    from threadpoolctl import threadpool_limits

    a, b = _operands()
    out = np.empty_like(a)
    with threadpool_limits(limits=int(threads), user_api="blas"):
        np.matmul(a, b, out=out)  # first touch
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < BLOCK_SECONDS / 4 or k == 0:
            np.matmul(a, b, out=out)
            k += 1
        rates = []
        for _ in range(BLOCKS):
            t0 = time.perf_counter()
            for _ in range(4 * k):
                np.matmul(a, b, out=out)
            rates.append(2 * SIZE**3 * 4 * k / (time.perf_counter() - t0) / 1e9)
    return rates


def reading(before: list[float], after: list[float]) -> float:
    """The section's speed probe: the median of the blocks taken before and after it."""
    return float(np.median(before + after))
