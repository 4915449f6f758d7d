"""Dataset registry: name -> generator. No framework is imported here."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from datasets import blobs, hotels, mnist, toy
from datasets.base import Dataset, DatasetError, load

# Module attributes stay modules (datasets.mnist is the module, not its function).
GENERATORS: dict[str, Callable[..., Dataset]] = {
    "linear": toy.linear,
    "moons": toy.moons,
    "circles": toy.circles,
    "sine": toy.sine,
    "spiral": toy.spiral,
    "blobs4": blobs.blobs4,
    "blobs2": blobs.blobs2,
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

# The split sizes of each dataset at its generator's defaults, known without building it (the full
# MNIST needs its files): the catalogue needs them for the tolerance of an accuracy figure (one sample
# of its split). tests/test_datasets.py checks them against every dataset it can build.
SIZES: dict[str, dict[str, int]] = {
    **dict.fromkeys(["linear", "moons", "circles"], {"train": 800, "test": 200}),
    "sine": {"train": 1920, "test": 480},
    "spiral": {"train": 1200, "test": 300},
    **dict.fromkeys(["blobs4", "blobs2"], {"train": 3200, "test": 800}),
    "hotels-linear": {"train": 8, "test": 4},
    **dict.fromkeys(["hotels", "hotels-hot", "hotels-category"], {"train": 24, "test": 8}),
    "mnist": {"train": 60000, "test": 10000},
    "mnist10k": {"train": 8000, "test": 2000},
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


__all__ = ["Dataset", "DatasetError", "GENERATORS", "SIZES", "TASK_OF", "build", "load", "names"]
