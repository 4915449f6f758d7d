"""Refresh the CI baselines from a real run, on purpose (never hand-written values).

    python -m reports.baselines --results results --out reports/baselines.json [--from-seeds DIR ...]

What goes in, per experiment and run (backend-device), for every run whose status is ok:

- quality: train/test accuracy and F1 (classification) or train/test MSE (regression).
  expected = the value in --results.
  tolerance = max(k * std, floor), std the sample standard deviation (ddof 1) of the metric over
  --results and every --from-seeds directory holding the same run (results of the same pipeline
  with other seeds), when there are at least 2 values; the floor alone otherwise (one directory).
  Floors: accuracy max(0.02, 1/n), F1 max(0.03, 2/n), n the split's sample count (so one sample
  flipping never fails the check); MSE 10% of the expected value (at least 1e-6). k = 3.
- parity: none here. Each run carries its own bound, derived from float32 numerics in the same
  pipeline run (workflow.lib.runner.parity_bound), so it holds on every CPU.
- variant: the code path each run took (a fallback to another one is flagged by the check).
- throughput: each run's median samples/s (train and inference) divided by that of one run of
  the same experiment measured in the same pipeline run: the reference backend on CPU, or the
  slowest run when the reference did not finish. The check compares ratios only, never seconds,
  flags a ratio that moved by more than `factor` (3x), and fails on it only when asked.

The same rule is written into the file's "method" field with the constants used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from reports.results import (
    ResultsError,
    fingerprint,
    load_runs,
    metric,
    reference_name,
    run_label,
    throughput,
)

SCHEMA_VERSION = 1
DEFAULTS = {
    "k": 3.0,
    "accuracy_floor": 0.02,
    "f1_floor": 0.03,
    "mse_relative_floor": 0.10,
    "mse_absolute_floor": 1e-6,
    "throughput_factor": 3.0,
}
QUALITY = {"binary": ("accuracy", "f1"), "multiclass": ("accuracy", "f1"), "regression": ("mse",)}
SPLITS = ("train", "test")


def method_text(s: dict) -> str:
    return (
        f"quality: expected = value in the baseline run; tolerance = max(k * std, floor) with k = {s['k']:g} and std "
        "the sample standard deviation (ddof 1) over the baseline run and the --from-seeds runs (other seeds) that "
        "hold the same experiment/backend/device, when there are >= 2 values, else the floor alone. Floors: accuracy "
        f"max({s['accuracy_floor']:g}, 1/n), f1 max({s['f1_floor']:g}, 2/n) with n the split's sample count; mse "
        f"max({s['mse_relative_floor']:g} * expected, {s['mse_absolute_floor']:g}). Both directions fail: a change "
        "beyond tolerance means the result moved. parity: each run's own float32-numerics bound (not baselined). "
        "variant: the code path of the baseline run; another one is flagged. throughput: ratio of "
        "the run's median samples/s (train, inference) to the ratio_to run of the same experiment and pipeline run "
        "(reference backend on cpu, else the slowest run); flagged when it moves by more than factor "
        f"{s['throughput_factor']:g}x either way; compared only when both runs keep their recorded fingerprints."
    )


def split_size(run: dict, split: str) -> int | None:
    cm = ((run.get("metrics") or {}).get(split) or {}).get("confusion_matrix")
    try:
        return int(np.asarray(cm, dtype=float).sum()) if cm else None
    except (TypeError, ValueError):
        return None


def floor(name: str, expected: float, n: int | None, s: dict) -> float:
    if name == "accuracy":
        return max(s["accuracy_floor"], 1.0 / n if n else 0.0)
    if name == "f1":
        return max(s["f1_floor"], 2.0 / n if n else 0.0)
    return max(s["mse_relative_floor"] * abs(expected), s["mse_absolute_floor"])


def ratio_to(runs: list[dict]) -> str | None:
    """The run of one experiment whose throughput the others are divided by."""
    reference = reference_name(runs)
    for r in runs:
        if r["backend"] == reference and r["device"] == "cpu" and throughput(r, "train") is not None:
            return run_label(r)
    rated = [(throughput(r, "train"), run_label(r)) for r in runs if throughput(r, "train") is not None]
    return min(rated)[1] if rated else None


def _index(runs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["experiment"], run_label(r)): r for r in runs}


def build(primary: list[dict], seed_dirs: list[list[dict]] | None = None, settings: dict | None = None) -> dict:
    """The baselines dict from the runs of one results dir (plus runs of the same pipeline with other seeds)."""
    s = {**DEFAULTS, **(settings or {})}
    seeds = [_index(rs) for rs in seed_dirs or []]
    by_exp: dict[str, list[dict]] = {}
    for r in primary:
        by_exp.setdefault(r["experiment"], []).append(r)
    experiments: dict[str, dict] = {}
    skipped = []
    for exp, runs in sorted(by_exp.items()):
        den_label = ratio_to(runs)
        den = next((r for r in runs if run_label(r) == den_label), None)
        entry: dict = {
            "ratio_to": den_label,
            "ratio_to_fingerprint": fingerprint(den) if den else None,
            "runs": {},
        }
        for r in runs:
            if r["status"] != "ok":
                skipped.append(f"{exp}/{run_label(r)} ({r['status']})")
                continue
            same = [r] + [ix[(exp, run_label(r))] for ix in seeds if (exp, run_label(r)) in ix]
            same = [x for x in same if x["status"] == "ok"]
            entry["runs"][run_label(r)] = _run_entry(r, same, den, s)
        if entry["runs"]:
            experiments[exp] = entry
    if not experiments:
        raise ResultsError("no run finished (status ok): nothing to baseline; fix the failing runs first")
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": method_text(s),
        "settings": s,
        "sources": {
            "seeds": sorted({x for x in [*(r.get("seed") for r in primary), *_seeds(seeds)] if x is not None}),
            "n_seed_dirs": len(seeds),
            "skipped_runs": skipped,
        },
        "throughput": {"factor": s["throughput_factor"], "fail": False},
        "experiments": experiments,
    }


def _seeds(seeds: list[dict]) -> list:
    return [r.get("seed") for ix in seeds for r in ix.values()]


def _run_entry(run: dict, same: list[dict], den: dict | None, s: dict) -> dict:
    metrics = {}
    for split in SPLITS:
        for name in QUALITY[run["task"]]:
            expected = metric(run, split, name)
            if expected is None or not math.isfinite(expected):
                continue
            values = [v for x in same if (v := metric(x, split, name)) is not None and math.isfinite(v)]
            std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
            fl = floor(name, expected, split_size(run, split), s)
            metrics[f"{split}.{name}"] = {
                "expected": expected,
                "tolerance": max(s["k"] * std, fl) if std is not None else fl,
                "std": std,
                "n": len(values),
                "floor": fl,
            }
    entry: dict = {"backend": run["backend"], "device": run["device"], "fingerprint": fingerprint(run)}
    entry["metrics"] = metrics
    entry["variant"] = (run.get("timings") or {}).get("variant")
    if den is not None and den is not run:
        ratios = {}
        for kind in ("train", "inference"):
            a, b = throughput(run, kind), throughput(den, kind)
            if a is not None and b is not None:
                ratios[kind] = a / b
        if ratios:
            entry["throughput"] = ratios
    return entry


def load_seed_dirs(dirs: list[str], primary: list[dict]) -> list[list[dict]]:
    primary_seeds = {r.get("seed") for r in primary}
    out = []
    for d in dirs:
        runs = load_runs(d)
        clash = primary_seeds & {r.get("seed") for r in runs}
        if clash:
            raise ResultsError(
                f"--from-seeds {d} holds runs with seed(s) {sorted(clash)} like --results; the tolerance needs runs "
                "with other seeds: rerun the pipeline with another seed into another results directory"
            )
        out.append(runs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.baselines", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="results dir of the run to baseline (default: results)")
    ap.add_argument("--out", default="reports/baselines.json", help="baselines file to write")
    ap.add_argument("--from-seeds", nargs="*", default=[], metavar="DIR", help="results dirs of runs with other seeds")
    ap.add_argument("--k", type=float, default=DEFAULTS["k"], help="tolerance = max(k * std across seeds, floor)")
    ap.add_argument("--throughput-factor", type=float, default=DEFAULTS["throughput_factor"])
    args = ap.parse_args(argv)
    if args.k <= 0 or args.throughput_factor <= 1:
        print("error: --k must be > 0 and --throughput-factor > 1", file=sys.stderr)
        return 2
    try:
        primary = load_runs(args.results)
        seeds = load_seed_dirs(args.from_seeds, primary)
        data = build(primary, seeds, {"k": args.k, "throughput_factor": args.throughput_factor})
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    n_runs = sum(len(e["runs"]) for e in data["experiments"].values())
    print(f"wrote {out}: {len(data['experiments'])} experiments, {n_runs} runs, {len(seeds)} seed dir(s)")
    for s in data["sources"]["skipped_runs"]:
        print(f"warning: not baselined, and the check fails while it does not finish: {s}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
