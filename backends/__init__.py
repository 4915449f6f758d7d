"""Backend registry: name -> adapter, imported lazily so a missing framework only makes
that backend unavailable. Adding a backend is one module plus one line here."""

from __future__ import annotations

import importlib
import importlib.util
from typing import NamedTuple

from backends.base import Backend, BackendError


class Entry(NamedTuple):
    module: str  # the adapter module
    cls: str  # its class
    mode: str  # compiled (fastest path), eager (per-batch loop), or the adapter's own (keras, idiomatic)
    requires: tuple[str, ...]  # framework modules that must be importable


REGISTRY: dict[str, Entry] = {
    "numpy": Entry("backends.numpy_reference", "NumpyBackend", "eager", ("numpy",)),
    "torch": Entry("backends.torch.backend", "TorchBackend", "compiled", ("torch",)),
    "torch-eager": Entry("backends.torch.backend", "TorchBackend", "eager", ("torch",)),
    "torch-idiomatic": Entry("backends.torch.idiomatic", "TorchIdiomaticBackend", "idiomatic", ("torch",)),
    "tensorflow": Entry("backends.tensorflow_adapter", "TensorFlowBackend", "compiled", ("tensorflow",)),
    "tensorflow-eager": Entry("backends.tensorflow_adapter", "TensorFlowBackend", "eager", ("tensorflow",)),
    "jax": Entry("backends.jax_adapter", "JaxBackend", "compiled", ("jax", "flax", "optax")),
    "jax-eager": Entry("backends.jax_adapter", "JaxBackend", "eager", ("jax", "flax", "optax")),
    "keras-tensorflow": Entry("backends.keras_adapter", "KerasBackend", "keras", ("keras", "tensorflow")),
    "keras-jax": Entry("backends.keras_adapter", "KerasBackend", "keras", ("keras", "jax", "flax", "optax")),
    "keras-torch": Entry("backends.keras_adapter", "KerasBackend", "keras", ("keras", "torch")),
    "fused": Entry("backends.fused", "FusedBackend", "compiled", ("numba",)),
}

REFERENCE = "numpy"


def names() -> list[str]:
    return list(REGISTRY)


def is_available(name: str) -> bool:
    entry = _entry(name)
    return all(importlib.util.find_spec(m) is not None for m in entry.requires)


def available() -> list[str]:
    return [n for n in REGISTRY if is_available(n)]


def gpu_capable(name: str) -> bool:
    """Whether the backend has a CUDA path (without importing its framework or probing a device)."""
    entry = _entry(name)
    return bool(getattr(importlib.import_module(entry.module), entry.cls).gpu_capable)


def get_backend(name: str, threads: int | None = None) -> Backend:
    entry = _entry(name)
    if not is_available(name):
        missing = [m for m in entry.requires if importlib.util.find_spec(m) is None]
        raise BackendError(
            f"backend {name!r} is unavailable: module(s) {missing} not installed; "
            f"install the pinned requirements (requirements.txt) or drop {name!r} from `backends:`"
        )
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    return cls(name=name, mode=entry.mode, threads=threads)


def _entry(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; registered backends: {', '.join(REGISTRY)}") from None
