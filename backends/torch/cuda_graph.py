"""Variant "cuda-graph-step": the full-batch step with torch.optim(capturable=True) captured once as a
CUDA graph and replayed per full batch; the last partial batch runs eagerly through the same optimizer.
Written for CUDA, not run on a GPU yet."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.spec import Spec, TrainResult
from backends.torch.job import CUDA_GRAPH, Job, compile_key, sync
from backends.torch.model import build_model, load, loss_fn, optimizer

_GRAPHS: dict[tuple, GraphStep] = {}  # compile key -> captured step


@dataclass
class GraphStep:
    """A captured full-batch train step: copy a batch into x/y, replay graph; loss_sum accumulates."""

    model: Any
    opt: Any
    graph: Any
    x: Any
    y: Any
    loss_sum: Any
    init_state: Callable[[], None]


def capture(torch: Any, spec: Spec, batch: int) -> GraphStep:
    """Warm up the train step on a side stream, then capture it (PyTorch's whole-network capture recipe)."""
    dev, dt = "cuda", getattr(torch, spec.dtype)
    model = build_model(torch, spec, dev, dt)
    with torch.no_grad():  # skip_init left memory uninitialised; the warm-up steps need numbers
        for p in model.parameters():
            p.zero_()
    capturable = {"capturable": True} if spec.optimizer.name == "adam" else {}
    opt = optimizer(torch, model.parameters(), spec.optimizer, foreach=True, **capturable)
    loss_of = loss_fn(torch, spec.loss)
    x = torch.zeros((batch, spec.n_inputs), dtype=dt, device=dev)
    y = torch.zeros((batch, spec.n_outputs), dtype=dt, device=dev)
    loss_sum = torch.zeros((), dtype=dt, device=dev)

    def step() -> None:
        loss = loss_of(model(x), y)
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach())

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # builds optimizer state and warms cuBLAS/allocator before the capture
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()

    def init_state() -> None:
        """Zero the optimizer state in place (the graph holds its addresses)."""
        for group in opt.param_groups:
            for p in group["params"]:
                for v in opt.state[p].values():
                    if torch.is_tensor(v):
                        v.zero_()

    return GraphStep(model, opt, graph, x, y, loss_sum, init_state)


def train_cuda_graph(torch: Any, job: Job) -> TrainResult:
    """Full batches by replaying the captured step; the last partial batch eagerly through the same optimizer.
    The capture (warm-up steps included) runs inside epoch 0's timing; compile_seconds is its share."""
    spec, s, log = job.spec, job.schedule, job.log
    key = compile_key(spec, job.device, s.batch_size, 0, 0, CUDA_GRAPH)
    loss_of = loss_fn(torch, spec.loss)
    compile_s = 0.0
    log.start()  # epoch 0's clock runs from before the capture
    g = _GRAPHS.get(key)
    if g is None:
        t0 = time.perf_counter()
        g = _GRAPHS[key] = capture(torch, spec, s.batch_size)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
    load(torch, g.model, job.init_params)  # reset in place: the graph replays on these very tensors
    g.init_state()
    params = list(g.model.parameters())
    for epoch in range(s.epochs):
        log.start()  # a no-op in epoch 0, whose clock already runs
        xs, ys, x_last, y_last = job.batches(epoch)
        g.loss_sum.zero_()
        for i in range(s.n_full):
            g.x.copy_(xs[i])
            g.y.copy_(ys[i])
            g.graph.replay()
        total = g.loss_sum * s.batch_size
        if s.remainder:
            g.opt.zero_grad(set_to_none=True)
            loss = loss_of(g.model(x_last), y_last)
            loss.backward()
            g.opt.step()
            total = total + loss.detach() * s.remainder
        log.stop(sync(torch, job.device, total) / s.samples_per_epoch, lambda: params)
    return log.result(params, spec, compile_s)
