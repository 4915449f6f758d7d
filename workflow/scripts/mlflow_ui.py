"""`fwbench ui`: the MLflow UI on the store a results folder names (workflow/lib/results_store.py).

For the embedded SQLite store (or PostgreSQL) it runs `mlflow ui` on it, artifacts included, until
Ctrl-C; a tracking server already has its UI, so for an http(s) store it prints the address.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from workflow.lib.results_store import store_uri
from workflow.lib.store import StoreError, artifact_location, kind, redact


def ui_command(uri: str, host: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    artifacts = artifact_location(uri)
    return cmd + (["--default-artifact-root", artifacts] if artifacts else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fwbench ui", description=__doc__)
    ap.add_argument("--results", default="results", help="the results folder whose store to browse (default: results)")
    ap.add_argument("--uri", default=None, help="the store's tracking URI instead of the one the results name")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ap.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    args = ap.parse_args(argv)
    try:
        uri = store_uri(args.results, args.uri)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if kind(uri) == "http":
        print(f"the store is the MLflow tracking server at {redact(uri)}: open {redact(uri)} in a browser")
        return 0
    print(f"fwbench ui: {redact(uri)} at http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.run(ui_command(uri, args.host, args.port)).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
