"""The network, its parameter layout, the loss and torch.optim, shared by every variant."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from backends.base import BackendError
from backends.spec import OptimizerSpec, Spec

_ACTIVATIONS = {"linear": "Identity", "relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


@cache
def torch_module() -> Any:
    import torch

    return torch


def build_model(torch: Any, spec: Spec, device: Any, dtype: Any) -> Any:
    """nn.Sequential of Linear layers with spec.activation between them (the head stays in the loss)."""
    nn = torch.nn
    layers: list[Any] = []
    sizes = spec.layer_sizes
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        # skip_init: the spec's weights are loaded next; no RNG draw, no wasted init.
        layers.append(torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out, device=device, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(getattr(nn, _ACTIVATIONS[spec.activation])())
    return nn.Sequential(*layers)


def to_torch_layout(torch: Any, params: list[np.ndarray], device: Any, dtype: Any) -> list[Any]:
    """[W0 (in, out), b0, ...] -> [weight (out, in), bias, ...] tensors."""
    out = []
    for i, p in enumerate(params):
        a = np.asarray(p).T if i % 2 == 0 else np.asarray(p)
        out.append(contiguous_strides(torch.tensor(np.ascontiguousarray(a), dtype=dtype, device=device)))
    return out


def load(torch: Any, model: Any, params: list[np.ndarray]) -> None:
    """Copy spec-layout params into the model's own tensors, in place."""
    with torch.no_grad():
        for t, p in zip(model.parameters(), to_torch_layout(torch, params, "cpu", model[0].weight.dtype)):
            t.copy_(p)


def export(tensors: list[Any], dtype: np.dtype) -> list[np.ndarray]:
    """[weight (out, in), bias, ...] -> NumPy [W (in, out), b, ...] of the spec's dtype."""
    out = []
    for i, t in enumerate(tensors):
        a = t.detach().cpu().numpy()
        out.append(np.ascontiguousarray(a.T if i % 2 == 0 else a, dtype=dtype))
    return out


def contiguous_strides(t: Any) -> Any:
    """t itself if it has row-major strides, else a row-major copy (size-1 dims included)."""
    want, strides = 1, []
    for size in reversed(t.shape):
        strides.insert(0, want)
        want *= size
    return t if tuple(t.stride()) == tuple(strides) else t.clone(memory_format=torch_module().contiguous_format)


def loss_fn(torch: Any, loss: str) -> Callable:
    """The mean loss from logits, as in numpy_reference.loss_and_dlogits."""
    F = torch.nn.functional
    if loss == "mse":
        return lambda z, y: F.mse_loss(z, y, reduction="mean")
    if loss == "bce":
        return lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="mean")
    if loss == "cce":  # probability targets: mean over rows of -sum(y * log_softmax(z))
        return lambda z, y: F.cross_entropy(z, y, reduction="mean")
    raise BackendError(f"unknown loss {loss!r}")


def optimizer(torch: Any, params: Any, o: OptimizerSpec, **impl: bool) -> Any:
    """torch.optim with every constant explicit; impl picks foreach/fused/capturable."""
    if o.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=o.learning_rate,
            momentum=o.momentum,
            dampening=0.0,
            weight_decay=0.0,
            nesterov=False,
            maximize=False,
            **impl,
        )
    # torch.optim.Adam divides by sqrt(v_hat) + eps: the spec's formulation.
    return torch.optim.Adam(
        params,
        lr=o.learning_rate,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        weight_decay=0.0,
        amsgrad=False,
        maximize=False,
        **impl,
    )
