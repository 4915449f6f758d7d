"""`fwbench gc`: purge the soft-deleted runs of a results folder's MLflow store, artifacts included.

A rerun soft-deletes the run it replaces (it stays in the store, hidden); `mlflow gc` removes such
runs for good. This lists them first (experiment, run id, name, artifact location) and purges only
with --yes, through `mlflow gc --run-ids` on exactly the runs listed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from workflow.lib.results_store import store_uri
from workflow.lib.store import StoreError, redact


def deleted_runs(uri: str) -> list[dict]:
    """Every soft-deleted run of the store's active experiments: experiment, run_id, name, artifact_uri."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    out = []
    for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        for run in client.search_runs([exp.experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=50000):
            out.append(
                {
                    "experiment": exp.name,
                    "run_id": run.info.run_id,
                    "name": run.info.run_name,
                    "artifact_uri": run.info.artifact_uri,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fwbench gc", description=__doc__)
    ap.add_argument("--results", default="results", help="the results folder whose store to clean (default: results)")
    ap.add_argument("--uri", default=None, help="the store's tracking URI instead of the one the results name")
    ap.add_argument("--yes", action="store_true", help="purge the listed runs (without it: list them only)")
    args = ap.parse_args(argv)
    try:
        uri = store_uri(args.results, args.uri)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = deleted_runs(uri)
    print(f"{len(runs)} soft-deleted runs in {redact(uri)}")
    for r in runs:
        print(f"  {r['experiment']}  {r['run_id']}  {r['name']}  {r['artifact_uri']}")
    if not runs:
        return 0
    if not args.yes:
        print("dry run: nothing purged; rerun with --yes to purge these runs and their artifacts")
        return 0
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "gc",
        "--backend-store-uri",
        uri,
        "--tracking-uri",  # mlflow gc refuses to run without one; the same store resolves the artifacts
        uri,
        "--run-ids",
        ",".join(r["run_id"] for r in runs),
    ]
    done = subprocess.run(cmd)
    if done.returncode:
        print(f"error: mlflow gc failed (exit {done.returncode}); the runs above are still there", file=sys.stderr)
        return 1
    print(f"purged {len(runs)} runs and their artifacts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
