"""The eager loops: the tutorial's ("eager-loop", mode eager) and the tuned one ("fused-eager-loop"),
which runs when torch.compile fails."""

from __future__ import annotations

from typing import Any

from backends.spec import TrainResult
from backends.torch.job import Job, sync
from backends.torch.model import build_model, load, loss_fn, optimizer


def train_eager(torch: Any, job: Job) -> TrainResult:
    """The tutorial loop: per batch gather, zero_grad, forward, loss, backward, step, .item()."""
    spec, log = job.spec, job.log
    model = build_model(torch, spec, job.X.device, job.X.dtype)
    load(torch, model, job.init_params)
    # foreach as torch's own default: single-tensor kernels on CPU, foreach on CUDA.
    opt = optimizer(torch, model.parameters(), spec.optimizer, foreach=job.device == "gpu")
    loss_of = loss_fn(torch, spec.loss)
    for epoch in range(job.schedule.epochs):
        log.start()
        total = 0.0
        for idx in job.schedule.batches(epoch):
            i = torch.from_numpy(idx).to(job.X.device)
            xb, yb = job.X[i], job.Y[i]
            opt.zero_grad()
            loss = loss_of(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log.stop(total / job.schedule.samples_per_epoch, lambda: list(model.parameters()))
    return log.result(list(model.parameters()), spec)


def train_fused(torch: Any, job: Job) -> TrainResult:
    """The tuned eager loop: epoch batches gathered at once, fused optimizer, loss summed on-tensor."""
    spec, log = job.spec, job.log
    model = build_model(torch, spec, job.X.device, job.X.dtype)
    load(torch, model, job.init_params)
    opt = optimizer(torch, model.parameters(), spec.optimizer, fused=True)
    loss_of = loss_fn(torch, spec.loss)
    for epoch in range(job.schedule.epochs):
        log.start()
        xs, ys, x_last, y_last = job.batches(epoch)
        total = torch.zeros((), dtype=job.X.dtype, device=job.X.device)
        for i, size in enumerate(job.sizes()):
            xb, yb = (xs[i], ys[i]) if i < len(xs) else (x_last, y_last)
            opt.zero_grad(set_to_none=True)
            loss = loss_of(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.detach() * size
        log.stop(sync(torch, job.device, total) / job.schedule.samples_per_epoch, lambda: list(model.parameters()))
    return log.result(list(model.parameters()), spec)
