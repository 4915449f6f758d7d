"""Write one dataset file (npz + json metadata) and its plot."""

from __future__ import annotations

import argparse
import inspect
import sys

import datasets
from datasets.plots import plot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mnist-dir", default="")
    ap.add_argument("--npz", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--plot", required=True)
    args = ap.parse_args(argv)
    params = {"directory": args.mnist_dir} if args.name == "mnist" else {}
    if "seed" in inspect.signature(datasets.GENERATORS.get(args.name, dict)).parameters:
        params["seed"] = args.seed
    try:
        ds = datasets.build(args.name, **params)
    except datasets.DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ds.save(args.npz, args.meta)
    plot(ds, args.plot)
    print(f"{args.name}: {ds.meta['n_train']} train / {ds.meta['n_test']} test, checksum {ds.meta['checksum'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
