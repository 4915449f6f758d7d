"""A run's MLflow inputs: its dataset's train and test splits, with MLflow's contexts "training" and
"testing", named and digested by our own checksum rather than MLflow's hash of the data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput
    from mlflow.tracking import MlflowClient

MAX_DIGEST = 36  # MLflow's limit on a dataset digest
SPLITS = {"train": "training", "test": "testing"}  # our split -> MLflow's mlflow.data.context


def dataset_inputs(r: dict, results: str | Path) -> list[DatasetInput]:
    """The dataset's splits as MLflow inputs, one per split ("{dataset}-train", "{dataset}-test").

    MLflow keeps one row per (name, digest) and one input per dataset and run, so the splits of one
    file need names of their own. Digest: the first 36 hex digits of the file's sha256 (MLflow's
    limit; the whole checksum is in the profile). A result without a checksum gets no inputs rather
    than a made-up digest.
    """
    checksum = r.get("dataset_checksum")
    if not checksum:
        return []
    from mlflow.entities import Dataset, DatasetInput, InputTag

    uri = f"{Path(results).resolve().name}/datasets/{r['dataset']}.npz"
    out = []
    for split, context in SPLITS.items():
        dataset = Dataset(
            name=f"{r['dataset']}-{split}",
            digest=checksum[:MAX_DIGEST],
            source_type="local",
            source=json.dumps({"uri": uri, "split": split}),
            profile=json.dumps({"sha256": checksum, "task": r.get("task"), "split": split}),
        )
        out.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return out


def log_dataset_inputs(client: MlflowClient, run_id: str, r: dict, results: str | Path) -> None:
    """log_inputs, retried when parallel jobs of one experiment insert the same new dataset at once
    (a server on PostgreSQL answers the loser with a unique-key violation; its retry finds the row)."""
    inputs = dataset_inputs(r, results)
    if not inputs:
        return
    for attempt in range(5):
        try:
            client.log_inputs(run_id, inputs)
            return
        except Exception as e:  # noqa: BLE001 - only the insert race is retried
            if "unique" not in str(e).lower() and "duplicate key" not in str(e).lower() or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
