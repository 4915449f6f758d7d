"""Variant "torch.compile-scan": one torch.compile'd call per epoch.

grad_and_value over functional_call(model) gives loss and gradients, the update is OptimizerSpec's
formulas written out (torch.optim cannot run inside scan), torch._higher_order_ops.scan loops over the
full batches and the last partial batch follows in the same graph. Inductor's cpp_wrapper puts scan's
host loop in C++. Compiled on the first call of epoch 0 (inside its timing), once per process per
(model, optimizer, shapes, threads).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backends.spec import OptimizerSpec, Spec, TrainResult
from backends.torch.eager_loop import train_fused
from backends.torch.job import FUSED, SCAN, Job, compile_key, first_line, sync, tdevice
from backends.torch.model import build_model, contiguous_strides, loss_fn, to_torch_layout

_COMPILED: dict[tuple, CompiledEpoch] = {}  # compile key -> epoch function and its compiled form
SCAN_HOP = "torch.ops.higher_order.scan"  # the name torch's caches check a higher-order op by


def allow_scan_in_compile_caches(torch: Any) -> None:
    """Let inductor's FX graph cache and AOTAutograd's cache store graphs that contain scan.

    torch marks scan (a prototype op) not cacheable, so every process compiled every epoch graph
    again (about 5 s of wall a graph with gcc): the job's timing replicas, which share its cache
    folder, paid the job's whole compilation once more each. The graph key hashes scan's body like any
    other subgraph (as for invoke_subgraph and flex_attention, which torch marks cacheable); the value
    here, torch's version, is part of every key. tests/test_backends.py checks that a second process
    hits the cache and trains the same losses."""
    config = torch._inductor.config
    config.unsafe_marked_cacheable_functions = {SCAN_HOP: torch.__version__, **config.unsafe_marked_cacheable_functions}


def init_state(torch: Any, o: OptimizerSpec, params: tuple) -> tuple:
    if o.name == "sgd":
        return (tuple(torch.zeros_like(p) for p in params),) if o.momentum else ()
    m = tuple(torch.zeros_like(p) for p in params)
    v = tuple(torch.zeros_like(p) for p in params)
    return m, v, torch.zeros((), dtype=params[0].dtype, device=params[0].device)


def update(torch: Any, o: OptimizerSpec, params: tuple, grads: tuple, state: tuple) -> tuple[tuple, tuple]:
    """One optimizer step written out, exactly OptimizerSpec's formulas; returns new tensors."""
    lr = o.learning_rate
    if o.name == "sgd":
        if o.momentum:
            bufs = tuple(o.momentum * b + g for b, g in zip(state[0], grads))
            return tuple(p - lr * b for p, b in zip(params, bufs)), (bufs,)
        return tuple(p - lr * g for p, g in zip(params, grads)), ()
    b1, b2 = o.beta1, o.beta2
    m, v, t = state
    t = t + 1
    m = tuple(b1 * mi + (1 - b1) * g for mi, g in zip(m, grads))
    v = tuple(b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads))
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    params = tuple(p - lr * (mi / bc1) / (torch.sqrt(vi / bc2) + o.eps) for p, mi, vi in zip(params, m, v))
    return params, (m, v, t)


def make_epoch_fn(torch: Any, spec: Spec, model: Any, batch: int, n_full: int, tail: int) -> Callable:
    """A pure function (params, state, xs, ys, x_last, y_last) -> (params, state, loss sum) for one epoch."""
    from torch._higher_order_ops.scan import scan

    names = [n for n, _ in model.named_parameters()]
    loss_of_logits = loss_fn(torch, spec.loss)
    o = spec.optimizer

    def loss_of(params: tuple, x: Any, y: Any) -> Any:
        return loss_of_logits(torch.func.functional_call(model, dict(zip(names, params)), (x,)), y)

    grad_and_loss = torch.func.grad_and_value(loss_of)

    def step(params: tuple, state: tuple, x: Any, y: Any) -> tuple:
        grads, loss = grad_and_loss(params, x, y)
        params, state = update(torch, o, params, grads, state)
        return params, state, loss

    def body(carry: tuple, xy: tuple) -> tuple:
        params, state, loss = step(*carry, *xy)
        # scan needs the carry's metadata unchanged; a (1, k) result may come back with strides (1, 1).
        new = torch.utils._pytree.tree_map(contiguous_strides, (params, state))
        return new, loss.clone()

    def epoch(params: tuple, state: tuple, xs: Any, ys: Any, x_last: Any, y_last: Any) -> tuple:
        total = torch.zeros((), dtype=xs.dtype, device=xs.device)
        if n_full == 1:  # full batch: no loop to scan
            params, state, loss = step(params, state, xs[0], ys[0])
            total = loss * batch
        elif n_full:
            (params, state), losses = scan(body, (params, state), (xs, ys))
            total = losses.sum() * batch
        if tail:
            params, state, loss = step(params, state, x_last, y_last)
            total = total + loss * tail
        return params, state, total

    return epoch


@dataclass
class CompiledEpoch:
    """An epoch function and its compiled form, built on first use with the first options that work."""

    raw: Callable
    model: Any
    attempts: list[dict]
    fn: Callable | None = None
    options: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def first_call(self, torch: Any, args: tuple) -> tuple | None:
        """Compile with the first option set that works, calling it on args; return that call's outputs
        (the epoch's result: the function is pure, so a failed attempt changed nothing), or None when
        every option set failed."""
        for options in self.attempts[len(self.failures) :]:
            try:
                fn = torch.compile(self.raw, fullgraph=True, dynamic=False, options=dict(options) or None)
                out = fn(*args)
            except Exception as e:  # noqa: BLE001 - any failure of the compiled path is reported, then falls back
                self.failures.append(f"{options}: {first_line(e)}")
                continue
            self.fn, self.options = fn, dict(options)
            return out
        return None


def compiled_epoch(torch: Any, spec: Spec, device: str, batch: int, n_full: int, tail: int) -> CompiledEpoch:
    """The epoch function for this spec and shapes, cached per process (compiled on first use)."""
    key = compile_key(spec, device, batch, n_full, tail, SCAN)
    hit = _COMPILED.get(key)
    if hit is not None:
        return hit
    # One code object serves every spec/shape (closures), each a dynamo cache entry: room for many.
    allow_scan_in_compile_caches(torch)
    dyn = torch._dynamo.config
    dyn.recompile_limit = max(dyn.recompile_limit, 256)
    dyn.accumulated_recompile_limit = max(dyn.accumulated_recompile_limit, 4096)
    model = build_model(torch, spec, tdevice(device), getattr(torch, spec.dtype))
    # cpp_wrapper: the host code (scan's loop included) in C++, not Python, for less overhead per step.
    # It has codegen bugs on some graphs (seen: a full-batch linear MLP), hence the plain retry.
    attempts = [{"cpp_wrapper": True}, {}] if device == "cpu" else [{}]
    raw = make_epoch_fn(torch, spec, model, batch, n_full, tail)
    _COMPILED[key] = entry = CompiledEpoch(raw=raw, model=model, attempts=attempts)
    return entry


def train_scan(torch: Any, job: Job) -> TrainResult:
    """One compiled call per epoch; epoch 0's call compiles. Falls back to the fused loop when compiling fails."""
    spec, s, log = job.spec, job.schedule, job.log
    try:
        entry = compiled_epoch(torch, spec, job.device, s.batch_size, s.n_full, s.remainder)
    except ImportError as e:  # scan is a prototype op: a torch without it trains the fused loop
        return _fallback(torch, job, [first_line(e)])
    params = tuple(to_torch_layout(torch, job.init_params, job.X.device, job.X.dtype))
    state = init_state(torch, spec.optimizer, params)
    for epoch in range(s.epochs):
        log.start()
        args = (params, state, *job.batches(epoch))
        out = entry.fn(*args) if entry.fn is not None else entry.first_call(torch, args)
        if out is None:
            return _fallback(torch, job, entry.failures)
        params, state, total = out
        log.stop(sync(torch, job.device, total) / s.samples_per_epoch, lambda p=params: list(p))
    job.extra["inductor_options"] = dict(entry.options)
    if entry.failures:
        job.extra["compile_failures"] = list(entry.failures)
    return log.result(list(params), spec)


def _fallback(torch: Any, job: Job, failures: list[str]) -> TrainResult:
    """The compiled epoch could not be built (no C++ compiler, say): train with the fused loop, say why.
    The log keeps running, so epoch 0 includes the failed attempt."""
    reason = (
        f"{SCAN} failed ({failures[-1]}); ran {FUSED} instead. "
        "On CPU, torch.compile's Inductor needs a working C++ compiler (g++)."
    )
    warnings.warn(reason, RuntimeWarning, stacklevel=4)
    job.extra.update(variant=FUSED, fallback=reason, compile_failures=list(failures))
    return train_fused(torch, job)
