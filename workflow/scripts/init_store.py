"""Create the MLflow store and experiment before the parallel training jobs start."""

from __future__ import annotations

import argparse
import sys

from workflow.lib.store import StoreError, init_store, redact, resolve_uri


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default="results")
    ap.add_argument("--uri", default="")
    ap.add_argument("--experiment", default="fwbench")
    args = ap.parse_args(argv)
    try:
        uri = resolve_uri(args.uri or None, args.results)
        exp_id = init_store(uri, args.experiment, args.results)
    except StoreError as e:
        print(f"fwbench: {e}", file=sys.stderr)
        return 2
    print(f"MLflow store {redact(uri)}: experiment {args.experiment!r} (id {exp_id}) ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
