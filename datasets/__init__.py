"""Dataset registry: name -> generator. No framework is imported here."""

from __future__ import annotations

from collections.abc import Callable

from datasets.base import Dataset, DatasetError, load
from datasets.toy import moons

GENERATORS: dict[str, Callable[..., Dataset]] = {
    "moons": moons,
}


def names() -> list[str]:
    return list(GENERATORS)


def build(name: str, **params) -> Dataset:
    """Make dataset `name`; params override the generator's documented defaults."""
    try:
        gen = GENERATORS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(GENERATORS)}") from None
    return gen(**params)


__all__ = ["Dataset", "DatasetError", "GENERATORS", "build", "load", "names"]
