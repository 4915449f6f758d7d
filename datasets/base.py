"""The dataset contract: arrays plus metadata, saved as {name}.npz + {name}.json."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TASK_KINDS = ("regression", "binary", "multiclass")
ARRAYS = ("X_train", "y_train", "X_test", "y_test")


class DatasetError(RuntimeError):
    """A dataset cannot be built or read (missing source files, corrupt data...)."""


@dataclass
class Dataset:
    """X float32; labels int64 (classification) or float32 (regression).

    meta holds: source (document and section), task, class_names, params (generator
    parameters), seed, split, preprocessing, reconstructed_labels, and the checksum.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X_train = np.ascontiguousarray(self.X_train, dtype=np.float32)
        self.X_test = np.ascontiguousarray(self.X_test, dtype=np.float32)
        label_dtype = np.float32 if self.task == "regression" else np.int64
        self.y_train = np.ascontiguousarray(self.y_train, dtype=label_dtype)
        self.y_test = np.ascontiguousarray(self.y_test, dtype=label_dtype)
        self.meta.setdefault("name", self.name)
        self.meta["n_train"] = int(len(self.X_train))
        self.meta["n_test"] = int(len(self.X_test))
        self.meta["n_features"] = int(self.X_train.shape[1])
        self.meta["checksum"] = self.checksum()

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def n_classes(self) -> int:
        return len(self.meta.get("class_names") or [])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ARRAYS}

    def checksum(self) -> str:
        """sha256 over the four arrays' dtypes, shapes and bytes."""
        h = hashlib.sha256()
        for k in ARRAYS:
            a = getattr(self, k)
            h.update(f"{k}:{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def save(self, npz_path: str | Path, meta_path: str | Path) -> None:
        npz_path, meta_path = Path(npz_path), Path(meta_path)
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        with open(npz_path, "wb") as f:  # np.savez would append .npz to other names
            np.savez(f, **self.arrays())
        meta_path.write_text(json.dumps(self.meta, indent=2, default=_jsonable) + "\n")


def load(npz_path: str | Path, meta_path: str | Path | None = None) -> Dataset:
    """Read a dataset file back, checking it against the checksum in its metadata."""
    npz_path = Path(npz_path)
    meta_path = Path(meta_path) if meta_path else npz_path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(npz_path) as z:
            arrays = {k: z[k] for k in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # BadZipFile: not an npz
        raise DatasetError(
            f"cannot read dataset {npz_path} ({e}); delete it and rerun the pipeline to regenerate it"
        ) from e
    expected = meta.get("checksum")
    ds = Dataset(name=meta["name"], meta=meta, **arrays)
    if expected and ds.meta["checksum"] != expected:
        raise DatasetError(
            f"dataset {npz_path} does not match the checksum in {meta_path}; "
            "it is corrupt or was edited: delete both files and rerun the pipeline"
        )
    return ds


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o)}")
