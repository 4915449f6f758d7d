"""The toy 2-D datasets of adl1 and sdls1, made with scikit-learn generators from a seed."""

from __future__ import annotations

from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from datasets.base import Dataset


def moons(seed: int = 0, n_samples: int = 1000, noise: float = 0.1, test_size: float = 0.2) -> Dataset:
    """adl1 §2.2/§3.1. The article evaluates on its training data; we also hold out a test split."""
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    return Dataset(
        "moons",
        Xtr,
        ytr,
        Xte,
        yte,
        meta={
            "source": "adl1 §2.2, §3.1",
            "task": "binary",
            "class_names": ["0", "1"],
            "params": {"generator": "sklearn.datasets.make_moons", "n_samples": n_samples, "noise": noise},
            "seed": seed,
            "split": {"test_size": test_size, "stratified": True, "choice": "doc silent on size and split"},
            "preprocessing": [],
            "reconstructed_labels": False,
        },
    )
