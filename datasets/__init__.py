"""Dataset registry: name -> generator. No framework is imported here."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from datasets import hotels, mnist, toy
from datasets.base import Dataset, DatasetError, load

# Module attributes stay modules (datasets.mnist is the module, not its function).
GENERATORS: dict[str, Callable[..., Dataset]] = {
    "linear": toy.linear,
    "moons": toy.moons,
    "circles": toy.circles,
    "sine": toy.sine,
    "spiral": toy.spiral,
    "blobs4": toy.blobs4,
    "blobs2": toy.blobs2,
    "hotels-linear": hotels.hotels_linear,
    "hotels": hotels.hotels,
    "hotels-hot": hotels.hotels_hot,
    "hotels-category": hotels.hotels_category,
    "mnist": mnist.mnist,
    "mnist10k": mnist.mnist10k,
}

# The task of each dataset, known without building it (the full MNIST needs its files).
TASK_OF: dict[str, str] = {
    **dict.fromkeys(["linear", "moons", "circles", "sine", "blobs2", "hotels-hot"], "binary"),
    **dict.fromkeys(["spiral", "blobs4", "hotels-category", "mnist", "mnist10k"], "multiclass"),
    **dict.fromkeys(["hotels-linear", "hotels"], "regression"),
}


def names() -> list[str]:
    return list(GENERATORS)


def build(name: str, **params) -> Dataset:
    """Make dataset `name`; params override the generator's documented defaults."""
    try:
        gen = GENERATORS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(GENERATORS)}") from None
    accepted = inspect.signature(gen).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DatasetError(
            f"dataset {name!r} takes no parameter(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}"
        )
    return gen(**params)


__all__ = ["Dataset", "DatasetError", "GENERATORS", "TASK_OF", "build", "load", "names"]
