"""Starting JAX once per process: import jax, flax.linen and optax lazily, and start XLA's client
with the thread count it can only take at start (see fw)."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

_LOCK = threading.Lock()
FW: dict[str, Any] = {}  # the imported modules, filled once by fw()
THREADS: dict[str, Any] = {}  # how XLA's CPU client started, recorded by fw()


def fw(threads: int | None = None) -> dict[str, Any]:
    """Import jax, flax.linen and optax once, and start XLA with what it reads at start.

    Threads: XLA_FLAGS (set by set_thread_env) is read when the client starts, but measured on
    jaxlib 0.10.2 its thread flags do not bound XLA:CPU, and jax has no thread API. XLA sizes its
    CPU thread pools from the affinity mask it sees at start, so with `threads` set we narrow the
    mask to `threads` CPUs while the client starts, then give every thread the old mask back:
    the pools keep `threads` workers, free to run on any CPU.
    """
    with _LOCK:
        if FW:
            return FW
        # Read by the GPU client when it starts: allocate on demand so peak memory is meaningful.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        started_before: bool | None = False
        if "jax" in sys.modules:
            try:
                from jax._src import xla_bridge

                started_before = bool(xla_bridge.backends_are_initialized())
            except (ImportError, AttributeError):  # private API moved: say we cannot tell
                started_before = None
        import flax.linen as nn
        import jax
        import jax.numpy as jnp
        import optax

        # No TF32 on GPU: every f32 matmul at full precision (no effect on CPU).
        jax.config.update("jax_default_matmul_precision", "highest")
        pool = _start_client(jax, threads) if not started_before else None
        THREADS.update(
            xla_flags=os.environ.get("XLA_FLAGS", ""),
            xla_client_started_before_adapter=started_before,
            xla_cpu_pool_threads=pool,
        )
        FW.update(jax=jax, jnp=jnp, nn=nn, optax=optax)
        return FW


def _start_client(jax: Any, threads: int | None) -> int | None:
    """Start XLA's clients, with `threads` CPUs in the affinity mask if asked; return the number
    of CPUs the CPU pools were sized from (None where affinity is not available)."""
    if not hasattr(os, "sched_getaffinity"):
        jax.devices()
        return None
    mask = os.sched_getaffinity(0)
    if not threads or threads >= len(mask):
        jax.devices()
        return len(mask)
    narrow = set(sorted(mask)[:threads])
    os.sched_setaffinity(0, narrow)
    try:
        jax.devices()
    finally:
        for tid in os.listdir("/proc/self/task"):  # the caller and the threads XLA just made
            try:
                if os.sched_getaffinity(int(tid)) == narrow:
                    os.sched_setaffinity(int(tid), mask)
            except OSError:  # a thread that ended meanwhile
                pass
    return threads


def parse_xla_threads(flags: str) -> dict[str, Any]:
    out: dict[str, Any] = {"xla_cpu_multi_thread_eigen": None, "intra_op_parallelism_threads": None}
    for tok in flags.split():
        key, _, val = tok.lstrip("-").partition("=")
        if key == "xla_cpu_multi_thread_eigen":
            out[key] = val.lower() != "false"
        elif key == "intra_op_parallelism_threads":
            out[key] = int(val)
    return out
