"""Backend "torch-idiomatic": the training script a PyTorch user writes, compiled the documented way.

An nn.Sequential of nn.Linear + activation modules (model.build_model), a loss module from logits
(nn.BCEWithLogitsLoss, nn.CrossEntropyLoss with probability targets, nn.MSELoss), torch.optim.Adam or
SGD with torch's own implementation defaults, and a plain Python loop over the schedule's batches
(gathered per batch, the last partial batch as the schedule says) calling a train step:

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

What is compiled: that step function, torch.compile(step, dynamic=False), as PyTorch's torch.compile
tutorial compiles a training step. Not torch.compile(model): that compiles the forward (and, through
AOTAutograd, its backward) only, and leaves the optimizer's per-parameter update eager, a large part of
a step for networks this small. Dynamo traces the step in pieces (it graph-breaks at zero_grad and
Tensor.backward()): forward + loss as one graph whose backward AOTAutograd compiles and autograd runs,
opt.step as another (dynamo's compiled optimizer). dynamic=False: the schedule has at most two batch
shapes, each gets its own static graph.

Recompiles. Dynamo guards on the identity of the model and optimizer the step closes over, and keeps
its compiled graphs per code object: a new model per train() recompiles the same code every call, and
past torch._dynamo.config.recompile_limit (8) torch runs the frames uncompiled without an error. So:
- one model, optimizer and compiled step per process per (network, loss, optimizer, dtype, device,
  threads), reset in place by every train(): parameters loaded, optimizer state zeroed (a zeroed Adam
  m, v and step, or SGD momentum buffer, gives exactly a fresh optimizer's first update);
- each of those compiled with isolate_recompiles=True, so distinct specs in one process do not share
  one code object's limit (a spec needs a few entries: two batch shapes, the optimizer's first step);
- every train() reads dynamo's counters, and when a frame hit a recompile limit during it, the result
  says so (variant "torch-idiomatic-eager", the reason in extra["fallback"]).

float64: train() sets torch's default dtype to the spec's for its duration (restored after), as a float64
PyTorch script does: torch.optim keeps Adam's step count in the default dtype, and the compiled Adam
computes the bias corrections from that tensor.

Compilation, a failed attempt and its eager retry all run inside epoch 0's timing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.base import BackendError, check_inputs, check_params
from backends.spec import Schedule, Spec, TrainResult
from backends.torch.backend import TorchBackend, _no_tf32, _setup
from backends.torch.job import Log, compile_key, first_line, tdevice
from backends.torch.model import build_model, load, optimizer

COMPILED = "torch-idiomatic-compile"
EAGER = "torch-idiomatic-eager"
_LOSSES = {"bce": "BCEWithLogitsLoss", "cce": "CrossEntropyLoss", "mse": "MSELoss"}
_STEPS: dict[tuple, Trainer] = {}  # compile key -> the process's model, optimizer and compiled step


def loss_module(torch: Any, loss: str) -> Any:
    """The loss module from logits, mean over the batch (CrossEntropyLoss takes probability rows as targets)."""
    try:
        return getattr(torch.nn, _LOSSES[loss])(reduction="mean")
    except KeyError:
        raise BackendError(f"unknown loss {loss!r}; the spec's heads pair with {sorted(_LOSSES)}") from None


def make_step(model: Any, opt: Any, loss_fn: Any) -> Callable:
    """The train step as a tutorial writes it; returns the pre-update mini-batch loss."""

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


@dataclass
class Trainer:
    """A model, its optimizer, the eager step and (once it compiled) the compiled one."""

    model: Any
    opt: Any
    eager: Callable
    compiled: Callable | None = None
    failure: str | None = None  # why torch.compile failed for this trainer, once it has

    def compiled_step(self, torch: Any) -> Callable | None:
        """The compiled step (torch.compile wraps it here; the first call of each graph compiles), or None
        once compiling failed for this trainer."""
        if self.compiled is None and self.failure is None:
            try:
                self.compiled = torch.compile(self.eager, dynamic=False, isolate_recompiles=True)
            except Exception as e:  # noqa: BLE001 - any failure of the compiled path is reported, then falls back
                self.failure = first_line(e)
        return self.compiled

    def reset(self, torch: Any, params: list[np.ndarray]) -> None:
        """Load params and zero the optimizer state in place: the compiled graphs keep their inputs."""
        load(torch, self.model, params)
        self.opt.zero_grad()
        with torch.no_grad():
            for state in self.opt.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()


def trainer(torch: Any, spec: Spec, device: str) -> Trainer:
    key = compile_key(spec, device, 0, 0, 0, COMPILED)
    hit = _STEPS.get(key)
    if hit is None:
        model = build_model(torch, spec, tdevice(device), getattr(torch, spec.dtype))
        opt = optimizer(torch, model.parameters(), spec.optimizer)  # torch's default foreach/fused choice
        hit = _STEPS[key] = Trainer(model, opt, make_step(model, opt, loss_module(torch, spec.loss)))
    return hit


def limit_hits(torch: Any) -> int:
    """How many times dynamo has refused to compile a frame for a recompile limit in this process."""
    counts = torch._dynamo.utils.counters["unimplemented"]
    return sum(n for msg, n in counts.items() if "recompile limit" in msg.lower())


class TorchIdiomaticBackend(TorchBackend):
    """torch.nn + torch.optim + a per-batch loop over a torch.compile'd step (see the module docstring)."""

    modes = ("idiomatic",)

    def variant(self, device: str = "cpu") -> str:
        return COMPILED

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
        self.check_device(device)
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        self.check_epsilon(spec)
        torch = _setup(self.threads)
        if device == "gpu":
            _no_tf32(torch)
        dt, dev = getattr(torch, spec.dtype), tdevice(device)
        Xt, Yt = torch.as_tensor(X, dtype=dt).to(dev), torch.as_tensor(Y, dtype=dt).to(dev)
        orders = torch.as_tensor(schedule.orders, dtype=torch.int64).to(dev)
        default_dtype = torch.get_default_dtype()
        # torch.optim makes its scalar state (Adam's step) in the default dtype, and the compiled Adam computes
        # the bias corrections from it as a tensor: float32 there costs ~1e-6 relative in a float64 training.
        torch.set_default_dtype(dt)
        try:
            return self._train(torch, spec, Xt, Yt, orders, init_params, schedule, device, record_params)
        finally:
            torch.set_default_dtype(default_dtype)

    def framework_model(self, spec: Spec, params: list[np.ndarray]) -> Any:
        """The nn.Sequential this backend trains, on the CPU in eval mode, params loaded, with the head
        (Sigmoid, Softmax over the last axis, or Identity) appended: predict()'s output from model(x)."""
        check_params(spec, params)
        torch = _setup(self.threads)
        model = build_model(torch, spec, "cpu", getattr(torch, spec.dtype))
        load(torch, model, params)
        head = {"linear": torch.nn.Identity(), "sigmoid": torch.nn.Sigmoid(), "softmax": torch.nn.Softmax(dim=-1)}
        return torch.nn.Sequential(*model, head[spec.head]).eval()

    def _train(
        self,
        torch: Any,
        spec: Spec,
        Xt: Any,
        Yt: Any,
        orders: Any,
        init_params: list[np.ndarray],
        schedule: Schedule,
        device: str,
        record_params: bool,
    ) -> TrainResult:
        log = Log(torch, device, record_params)
        log.start()  # epoch 0's clock runs from here: building, compiling, a failed attempt, its retry
        t_start, hits_before = log.t0, limit_hits(torch)
        tr = trainer(torch, spec, device)
        step = tr.compiled_step(torch)
        if step is not None:
            try:
                tr.reset(torch, init_params)
                loop(torch, step, tr, Xt, Yt, orders, schedule, log)
            except Exception as e:  # noqa: BLE001 - Inductor fails on a graph's first call; reported, then eager
                tr.compiled, tr.failure = None, first_line(e)
                log = Log(torch, device, record_params)  # start over from init_params, eagerly;
                log.t0 = t_start  # the failed attempt's time stays in epoch 0
        variant, fallback = COMPILED, None
        if tr.failure is not None:
            variant, fallback = EAGER, f"torch.compile of the train step failed ({tr.failure}); ran the step eagerly"
            tr.reset(torch, init_params)
            loop(torch, tr.eager, tr, Xt, Yt, orders, schedule, log)
        elif limit_hits(torch) > hits_before:
            variant, fallback = (
                EAGER,
                (
                    "torch._dynamo hit a recompile limit (torch._dynamo.config.recompile_limit="
                    f"{torch._dynamo.config.recompile_limit}) during this training and ran frames of the step "
                    "uncompiled; TORCH_LOGS=recompiles names the frame and the failing guard, or raise the limit"
                ),
            )
        if fallback is not None:
            warnings.warn(fallback, RuntimeWarning, stacklevel=3)
        result = log.result(list(tr.model.parameters()), spec)
        result.extra.update(variant=variant, fallback=fallback)
        return result


def loop(torch: Any, step: Callable, tr: Trainer, Xt: Any, Yt: Any, orders: Any, s: Schedule, log: Log) -> None:
    """The per-batch loop; the epoch loss is the sample-weighted mean of the steps' pre-update losses."""
    ends = [min((i + 1) * s.batch_size, s.samples_per_epoch) for i in range(s.steps_per_epoch)]
    sizes = torch.tensor([e - i * s.batch_size for i, e in enumerate(ends)], dtype=Xt.dtype, device=Xt.device)
    for epoch in range(s.epochs):
        log.start()
        order, losses, start = orders[epoch], [], 0
        for end in ends:
            idx = order[start:end]
            losses.append(step(Xt[idx], Yt[idx]))
            start = end
        total = torch.stack(losses).mul(sizes).sum()
        log.stop(float(total.item()) / s.samples_per_epoch, lambda: list(tr.model.parameters()))
