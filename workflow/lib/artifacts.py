"""A child run's trained model in MLflow: `weights.npz` for every backend, in one layout, and, where
the adapter builds its framework's own model (Backend.framework_model: the Keras peers and
torch-idiomatic), that model through MLflow's own flavor (`mlflow.keras` / `mlflow.pytorch`
`log_model`), which `mlflow.<flavor>.load_model` reads back.

weights.npz: W0, b0, W1, b1, ... at the spec's dtype (float32 in every catalogue entry), W{i} shaped
(in, out) and b{i} (out,), as backends.spec lays them out; the spec is in the run's params (spec.*)
and in its result.json. read_weights gives them back as the list the backends take.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

WEIGHTS = "weights.npz"  # the artifact's path in the run
MODEL_NAME = "model"  # the logged model's name
FLAVORS = {"keras": "keras", "torch": "pytorch"}  # Backend.framework -> its MLflow flavor module


def weight_arrays(spec: dict, weights: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """{"W0": (in, out), "b0": (out,), ...} at the spec's dtype; a ValueError naming the mismatch when
    the weights do not fit the spec."""
    from backends.spec import Spec

    s = Spec.from_dict(spec)
    got = [tuple(np.shape(w)) for w in weights]
    if got != s.param_shapes:
        raise ValueError(
            f"weights shaped {got} do not fit the spec's {s.param_shapes} ([W (in, out), b, ...]); "
            "pass the training's final params (TrainResult.params) with the spec it trained"
        )
    return {f"{'Wb'[i % 2]}{i // 2}": np.ascontiguousarray(w, dtype=s.dtype) for i, w in enumerate(weights)}


def log_weights(client: MlflowClient, run_id: str, spec: dict, weights: Sequence[np.ndarray]) -> None:
    """weights.npz (uncompressed: a few kB to a few MB, written in well under a millisecond for most nets)."""
    arrays = weight_arrays(spec, weights)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        client.log_artifact(run_id, str(path))


def read_weights(client: MlflowClient, run_id: str, dst: str | Path) -> list[np.ndarray]:
    """The run's weights.npz, downloaded into dst, as [W0, b0, W1, b1, ...]."""
    path = client.download_artifacts(run_id, WEIGHTS, str(dst))
    with np.load(path, allow_pickle=False) as z:
        layers = sum(1 for k in z.files if k.startswith("W"))
        return [z[f"{k}{i}"] for i in range(layers) for k in "Wb"]


@cache
def _distributions() -> dict[str, list[str]]:
    """import name -> installed distributions (tensorflow may come as tensorflow-cpu); read once a process."""
    from importlib import metadata

    return metadata.packages_distributions()


def pip_requirements(backend: str) -> list[str]:
    """The pinned pip requirements of a backend's model: its framework packages (the registry's
    `requires`) and NumPy, at the versions installed here. Explicit, so MLflow does not spend
    seconds inferring them by loading the model in a subprocess."""
    from importlib import metadata

    import backends

    names: dict[str, None] = {}
    for module in (*backends.REGISTRY[backend].requires, "numpy"):
        for dist in _distributions().get(module, [module]):
            names[dist] = None
    return [f"{name}=={metadata.version(name)}" for name in names]


def log_framework_model(uri: str, run_id: str, result: dict, weights: Sequence[np.ndarray]) -> str | None:
    """The framework's own model through its MLflow flavor's log_model, linked to the run; returns its
    model URI (models:/ID), or None for a backend whose adapter builds none."""
    import backends
    from backends.spec import Spec

    backend = backends.get_backend(result["backend"], threads=result.get("threads"))
    spec = Spec.from_dict(result["spec"])
    model = backend.framework_model(spec, list(weights))
    if model is None:
        return None
    if backend.framework not in FLAVORS:
        raise ValueError(
            f"backend {backend.name!r} built a {backend.framework} model, which has no MLflow flavor here; "
            f"add its flavor to workflow.lib.artifacts.FLAVORS (known: {sorted(FLAVORS)})"
        )
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    flavor = importlib.import_module(f"mlflow.{FLAVORS[backend.framework]}")
    dtype = np.dtype(spec.dtype)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(dtype, (-1, spec.n_inputs))]),
        outputs=Schema([TensorSpec(dtype, (-1, spec.n_outputs))]),
    )
    options = {}
    if flavor.__name__ == "mlflow.pytorch":
        # MLflow's default format, torch.export's graph (loading runs no pickled code), traces the model
        # on an example: two rows, so the batch dimension stays dynamic. The first export of a process
        # costs about 3 s (torch.export's own start-up), later ones about 0.1 s.
        options = {"serialization_format": "pt2", "input_example": np.zeros((2, spec.n_inputs), dtype=dtype)}
    # log_model logs to the fluent API's active run: resume ours (its status is set again by the caller).
    with _tracking_uri(uri), mlflow.start_run(run_id=run_id):
        info = flavor.log_model(
            model,
            name=MODEL_NAME,
            signature=signature,
            pip_requirements=pip_requirements(result["backend"]),
            **options,
        )
    return info.model_uri


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """The fluent API's tracking URI set to uri for the block, and the one before restored after."""
    import mlflow

    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
