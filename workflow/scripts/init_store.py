"""Create the MLflow store and experiment before the parallel training jobs start."""

from __future__ import annotations

import argparse

from workflow.lib.tracking import init_store, resolve_uri


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default="results")
    ap.add_argument("--uri", default="")
    ap.add_argument("--experiment", default="fwbench")
    args = ap.parse_args(argv)
    uri = resolve_uri(args.uri or None, args.results)
    exp_id = init_store(uri, args.experiment, args.results)
    print(f"MLflow store {uri}: experiment {args.experiment!r} (id {exp_id}) ready")


if __name__ == "__main__":
    main()
