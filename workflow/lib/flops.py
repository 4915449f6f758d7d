"""Floating-point operations of one training or inference sample of a dense spec, layer by layer.

Counting convention (the usual one for GEMM-based training, so figures compare with SGEMM
GFLOP/s): a multiply-add is 2 FLOP; an element-wise operation 1 FLOP per element.
Per dense layer in -> out and per sample:
- forward: 2*in*out (matmul) + out (bias) + out (activation, or the head's sigmoid/softmax/loss)
- backward: out (activation derivative times the incoming gradient) + 2*in*out (dW) + out (db)
  + 2*in*out (dX), except dX of the first layer, which nothing needs
- optimizer, per parameter and step, divided by the batch size: SGD 2 (4 with momentum),
  Adam 10 (two moment updates 3 each, bias corrections 2, sqrt, divide-and-update 2).
"""

from __future__ import annotations

from backends.spec import Spec

OPTIMIZER_FLOPS_PER_PARAM = {"sgd": 2, "sgd_momentum": 4, "adam": 10}


def _layers(spec: Spec) -> list[tuple[int, int]]:
    sizes = spec.layer_sizes
    return list(zip(sizes[:-1], sizes[1:]))


def n_params(spec: Spec) -> int:
    return sum(i * o + o for i, o in _layers(spec))


def predict_flops_per_sample(spec: Spec) -> int:
    return sum(2 * i * o + 2 * o for i, o in _layers(spec))


def train_flops_per_sample(spec: Spec, batch_size: int) -> float:
    """Forward + backward + the optimizer's share, per training sample at this batch size."""
    total = 0
    for k, (i, o) in enumerate(_layers(spec)):
        total += 2 * i * o + 2 * o  # forward
        total += o + 2 * i * o + o + (2 * i * o if k > 0 else 0)  # backward
    opt = spec.optimizer
    key = "adam" if opt.name == "adam" else ("sgd_momentum" if opt.momentum else "sgd")
    return total + OPTIMIZER_FLOPS_PER_PARAM[key] * n_params(spec) / max(int(batch_size), 1)
