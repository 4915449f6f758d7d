"""Which MLflow store a results folder names: the URI given, else the one its run recorded in
results/config.json (mlflow.tracking_uri), else the embedded SQLite store RESULTS/mlflow.db."""

from __future__ import annotations

import json
from pathlib import Path

from workflow.lib.store import StoreError, _sqlite_path, default_uri, kind, resolve_uri


def store_uri(results: str | Path, uri: str | None = None) -> str:
    """The tracking URI of `results` (see module doc); a missing SQLite file is an error naming the fix."""
    results = Path(results)
    if not uri:
        try:
            uri = (json.loads((results / "config.json").read_text()).get("mlflow") or {}).get("tracking_uri")
        except (OSError, ValueError):
            uri = None
    resolved = resolve_uri(uri, results)
    if kind(resolved) == "sqlite" and not Path(_sqlite_path(resolved)).is_file():
        where = "the embedded store" if resolved == default_uri(results) else "the store"
        raise StoreError(
            f"{where} {_sqlite_path(resolved)} does not exist; run the pipeline first (fwbench run), "
            "or pass --results with the folder it wrote, or --uri with the store's address"
        )
    return resolved
