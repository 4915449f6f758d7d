"""The per-epoch accuracy (or MSE) curves of a training, from its recorded parameters, and its time to
the target: what a run result's metric_history and timings.time_to_target hold (runner.py calls it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from backends.numpy_reference import activate, forward
from backends.spec import Spec
from workflow.lib import metrics as M
from workflow.lib.catalogue import LOWER_IS_BETTER

if TYPE_CHECKING:
    from workflow.lib.runner import Prepared


def time_to_target(spec: Spec, prep: Prepared, param_history, timings: dict | None, target) -> tuple[dict, dict | None]:
    """Per-epoch train/test accuracy (or MSE) from the recorded parameters, evaluated in NumPy, and
    the time to the first epoch that meets the target: compile time plus that many epochs at the
    measured steady-state pace (both timed in the slot, so the figure carries no foreign load)."""
    metric = (target or {}).get("metric") or ("mse" if prep.ds.task == "regression" else "accuracy")
    history: dict[str, list[float]] = {f"train_{metric}": [], f"test_{metric}": []}
    for split, X in (("train", prep.X_train), ("test", prep.X_test)):
        y = prep.ds.y_train if split == "train" else prep.ds.y_test
        for out in outputs_per_epoch(spec, param_history or [], X):
            history[f"{split}_{metric}"].append(M.history_metric(metric, y, prep.to_original_y(out), prep.ds.task))
    if target is None:
        return history, None
    series = history.get(f"{target['split']}_{target['metric']}", [])
    goal = {"metric": target["metric"], "split": target["split"], "target": target["value"]}
    lower = target["metric"] in LOWER_IS_BETTER
    for e, v in enumerate(series):
        if v is not None and (v <= target["value"] if lower else v >= target["value"]):
            pace = timings or {}
            seconds = (
                pace["compile_seconds"] + (e + 1) * pace["steady_epoch_seconds"]
                if "steady_epoch_seconds" in pace
                else None  # no timed seed finished: no pace to convert epochs into seconds
            )
            return history, {**goal, "reached": True, "epochs": e + 1, "seconds": seconds}
    best = (min if lower else max)((v for v in series if v is not None), default=None)
    return history, {**goal, "reached": False, "epochs": None, "seconds": None, "best": best}


EPOCH_CHUNK_ELEMENTS = 1 << 22  # activations held at once by outputs_per_epoch (16 MB of float32)


def outputs_per_epoch(spec: Spec, param_history: list[list[np.ndarray]], X: np.ndarray) -> Iterator[np.ndarray]:
    """The network's outputs on X for each epoch's parameters: numpy_reference.forward on a stack of
    epochs (weights (epochs, in, out), biases (epochs, 1, out)), in the spec's dtype (the model's own
    precision; float64 matmuls made mnist10k-mlp's curves 0.56 s a seed, now 0.16 s), a chunk of
    epochs per matmul (an 800-epoch net: one NumPy call a layer, not 800)."""
    dt = np.dtype(spec.dtype)
    X = np.asarray(X, dtype=dt)
    widest = max(s[-1] for s in spec.param_shapes)
    chunk = max(1, EPOCH_CHUNK_ELEMENTS // max(1, len(X) * widest))
    for start in range(0, len(param_history), chunk):
        epochs = param_history[start : start + chunk]
        stacked = [np.stack([np.asarray(p[i], dtype=dt) for p in epochs]) for i in range(len(epochs[0]))]
        stacked[1::2] = [b[:, None, :] for b in stacked[1::2]]
        zs, _ = forward(spec, stacked, X)
        yield from activate(zs[-1], spec.head)
