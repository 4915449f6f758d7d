"""The run result's schema (workflow/schemas/run_result.schema.yaml): its version and a validator,
used by the writer (workflow/scripts/train.py) before a file is written and by every reader
(reports.results.load_run) when one is read."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "run_result.schema.yaml"


@cache
def schema() -> dict:
    return yaml.safe_load(PATH.read_text())


def version() -> int:
    """The one SCHEMA_VERSION: the schema's const for schema_version."""
    return int(schema()["properties"]["schema_version"]["const"])


@cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def problems(run: dict) -> list[str]:
    """Every violation, each with its key path ("timings.train_samples_per_s.median: ..."), best first."""
    import jsonschema

    validator = _validator()
    errors = sorted(validator.iter_errors(run), key=jsonschema.exceptions.relevance)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
