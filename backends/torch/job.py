"""One train() call's data, schedule and bookkeeping (timings, losses, snapshots), shared by every variant."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.spec import Schedule, Spec, TrainResult
from backends.torch.model import export, torch_module

# The names TrainResult.extra["variant"] takes (see the package docstring).
SCAN = "torch.compile-scan"
CUDA_GRAPH = "cuda-graph-step"
EAGER = "eager-loop"
FUSED = "fused-eager-loop"


def tdevice(device: str) -> str:
    return "cuda" if device == "gpu" else "cpu"


def compile_key(spec: Spec, device: str, batch: int, n_full: int, tail: int, variant: str) -> tuple:
    """What a compiled function is specialised on. Inductor's CPU kernels bake in the thread count."""
    model = (tuple(spec.layer_sizes), spec.activation, spec.loss, spec.optimizer, spec.dtype)
    return (variant, model, device, batch, n_full, tail, torch_module().get_num_threads())


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


class Log:
    """Per-epoch timings, losses and (optionally) parameter snapshots."""

    def __init__(self, torch: Any, device: str, record_params: bool) -> None:
        self.torch, self.device, self.record = torch, device, record_params
        self.seconds: list[float] = []
        self.losses: list[float] = []
        self.history: list[list[Any]] = []
        self.t0: float | None = None

    def start(self) -> None:
        """Start the epoch's clock. A no-op while an epoch is already being timed: work done before
        epoch 0's own start (a capture, a failed compile) stays inside epoch 0."""
        if self.t0 is not None:
            return
        if self.device == "gpu":
            self.torch.cuda.synchronize()
        self.t0 = time.perf_counter()

    def stop(self, loss: float, params: Callable[[], list[Any]]) -> None:
        """Call after the epoch loss was read (the read synchronizes the device)."""
        if self.device == "gpu":
            self.torch.cuda.synchronize()
        assert self.t0 is not None, "Log.stop() without start()"
        self.seconds.append(time.perf_counter() - self.t0)
        self.t0 = None
        self.losses.append(loss)
        if self.record:
            self.history.append([t.detach().clone() for t in params()])

    def result(self, params: list[Any], spec: Spec, compile_seconds: float = 0.0) -> TrainResult:
        dt = np.dtype(spec.dtype)
        return TrainResult(
            params=export(params, dt),
            loss_history=np.asarray(self.losses, dtype=np.float64),
            epoch_seconds=np.asarray(self.seconds, dtype=np.float64),
            compile_seconds=float(compile_seconds),
            param_history=[export(p, dt) for p in self.history] if self.record else None,
        )


@dataclass
class Job:
    """One train() call: the data on the device, the schedule, and where results go."""

    spec: Spec
    X: Any  # tensor (n, d)
    Y: Any  # tensor (n, n_outputs)
    orders: Any  # tensor (epochs, n) of sample indices
    init_params: list[np.ndarray]
    schedule: Schedule
    device: str
    log: Log
    extra: dict

    def batches(self, epoch: int) -> tuple:
        """(xs, ys) of the full batches, (n_full, B, .), and the last partial batch (or None, None)."""
        s = self.schedule
        return gather(self.X, self.Y, self.orders[epoch], s.batch_size, s.n_full, s.remainder)

    def sizes(self) -> list[int]:
        s = self.schedule
        return [s.batch_size] * s.n_full + ([s.remainder] if s.remainder else [])


def gather(Xt: Any, Yt: Any, order: Any, B: int, n_full: int, tail: int) -> tuple:
    """The epoch's full batches as (n_full, B, .) tensors via one index_select, and the last partial batch."""
    k = n_full * B
    xs = Xt.index_select(0, order[:k]).view(n_full, B, -1)
    ys = Yt.index_select(0, order[:k]).view(n_full, B, -1)
    if not tail:
        return xs, ys, None, None
    last = order[k : k + tail]
    return xs, ys, Xt.index_select(0, last), Yt.index_select(0, last)


def sync(torch: Any, device: str, value: Any) -> float:
    """Wait for the device, then read a scalar: the timing boundary."""
    if device == "gpu":
        torch.cuda.synchronize()
    return float(value.item())
