"""Log every sweep job's result to MLflow from one process: one MLflow run per sweep file
(workflow.scripts.sweep.log_mlflow), then OUT names each file's run.

    python -m workflow.scripts.sweep_mlflow --results results --uri= --mlflow-experiment fwbench \\
        --out results/sweeps/mlflow.json results/sweeps/moons-mlp/jax-cpu.json ...

Why one process: importing MLflow and opening its store cost each of the 14 sweep jobs of the default
run about 6 s of CPU (2-core AMD EPYC, 2026-12-07), more than many of their sweeps; a sweep job now
only measures and writes its file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="results/sweeps/{sweep}/{backend}-{device}.json")
    ap.add_argument("--results", default="results")
    ap.add_argument("--uri", default="")
    ap.add_argument("--mlflow-experiment", required=True)
    ap.add_argument("--out", required=True, help="file -> its MLflow run (or the error that stopped it)")
    args = ap.parse_args(argv)

    from workflow.lib.tracking import resolve_uri
    from workflow.scripts.sweep import log_mlflow
    from workflow.scripts.train import write_json

    uri = resolve_uri(args.uri or None, args.results)
    logged: dict[str, dict] = {}
    for path in args.files:
        result = json.loads(Path(path).read_text())
        try:
            logged[path] = log_mlflow(result, uri, args.mlflow_experiment, args.results)
        except Exception as e:  # noqa: BLE001 - the measured sweeps are kept either way
            logged[path] = {"error": f"{type(e).__name__}: {e}"}
            print(f"warning: MLflow logging of {path} failed: {e}", file=sys.stderr)
        print(f"{path}: {logged[path]}")
    write_json(logged, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
