"""NumPy preprocessing done before any backend sees the data: standardization fit on the
training split only, and targets shaped for the loss (one-hot for categorical CE)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardizer:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, a: np.ndarray) -> Standardizer:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        scale = a.std(axis=0)
        return cls(mean=a.mean(axis=0), scale=np.where(scale > 0, scale, 1.0))

    def transform(self, a: np.ndarray) -> np.ndarray:
        return ((np.asarray(a, dtype=np.float64).reshape(len(a), -1) - self.mean) / self.scale).reshape(np.shape(a))

    def inverse(self, a: np.ndarray) -> np.ndarray:
        return (np.asarray(a, dtype=np.float64).reshape(len(a), -1) * self.scale + self.mean).reshape(np.shape(a))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}


def targets(y: np.ndarray, task: str, n_outputs: int) -> np.ndarray:
    """Float targets of shape (n, n_outputs): values, 0/1 column, or one-hot rows (any softmax head)."""
    if task != "regression" and n_outputs > 1:
        y = np.asarray(y, dtype=np.int64)
        if y.min() < 0 or y.max() >= n_outputs:
            raise ValueError(f"labels must lie in 0..{n_outputs - 1} for a {n_outputs}-unit softmax head")
        return np.eye(n_outputs, dtype=np.float64)[y]
    return np.asarray(y, dtype=np.float64).reshape(-1, 1)
