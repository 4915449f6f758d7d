"""Refresh the CI baselines from a real run, on purpose (never hand-written values).

    python -m reports.baselines --results results --out reports/baselines.json

The CI run (`bash workflow/run-benchmark.sh --configfile config/ci.yaml`) trains every job over the
config's seeds; its results directory is the input. What goes in, per experiment and run
(backend-device) whose seeds all finished:

- quality: train/test accuracy and F1 (classification) or train/test MSE (regression).
  expected = the median over the seeds; the check compares the median of the same seeds.
  tolerance = max(k * std / sqrt(n), floor), std the sample standard deviation (ddof 1) of the
  metric over the n seeds (the spread of a median of n draws is about std / sqrt(n) x 1.25; k = 3
  covers that), the floor alone with one seed. Floors: accuracy max(0.02, 1/n_split), F1
  max(0.03, 2/n_split), n_split the split's sample count (so one sample flipping never fails the
  check); MSE 10% of the expected value (at least 1e-6).
- parity: none here. Each run carries its own bound, derived from float32 numerics in the same
  pipeline run (workflow.lib.parity), so it holds on every CPU.
- variant: the code path each run took (a fallback to another one is flagged by the check).
- throughput: each run's median samples/s (train and inference; the timed seed) divided by that of one run of
  the same experiment measured in the same pipeline run: the reference backend on CPU, or the
  slowest run when the reference did not finish, with its process medians each over that median
  (`throughput_samples`). The check compares ratios only, never seconds, flags a ratio only when it
  moved by more than `factor` (3x) AND Welch's t-test on their logs says so (p < 0.05;
  workflow/lib/stats.py compare_samples), and fails on it only when asked.

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
    ratio_samples,
    reference_name,
    run_label,
    throughput,
)
from reports.seeds import is_timed, seed_groups, timed_runs
from workflow.lib.stats import TEST

SCHEMA_VERSION = 2
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
        f"quality: expected = the median over the baseline run's seeds; tolerance = max(k * std / sqrt(n), floor) with "
        f"k = {s['k']:g}, std the sample standard deviation (ddof 1) over the n seeds of the same "
        "experiment/backend/device, when n >= 2, else the floor alone; the check compares the median of the same "
        "seeds. Floors: accuracy "
        f"max({s['accuracy_floor']:g}, 1/n), f1 max({s['f1_floor']:g}, 2/n) with n the split's sample count; mse "
        f"max({s['mse_relative_floor']:g} * expected, {s['mse_absolute_floor']:g}). Both directions fail: a change "
        "beyond tolerance means the result moved. parity: each run's own float32-numerics bound (not baselined). "
        "variant: the code path of the baseline run; another one is flagged. throughput: ratio of "
        "the run's median samples/s (train, inference) to the ratio_to run of the same experiment and pipeline run "
        "(reference backend on cpu, else the slowest run); flagged when it moves by more than factor "
        f"{s['throughput_factor']:g}x either way and {TEST} (each over the "
        "ratio_to run's median) gives p < 0.05; compared only when both runs keep their recorded fingerprints."
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


def build(runs: list[dict], settings: dict | None = None) -> dict:
    """The baselines dict from the runs of one results dir (every seed of every training)."""
    s = {**DEFAULTS, **(settings or {})}
    experiments: dict[str, dict] = {}
    skipped = []
    groups = seed_groups(runs)
    for exp in sorted({r["experiment"] for r in runs}):
        timed = [r for r in timed_runs(runs) if r["experiment"] == exp]
        den_label = ratio_to(timed)
        den = next((r for r in timed if run_label(r) == den_label), None)
        entry: dict = {"ratio_to": den_label, "ratio_to_fingerprint": fingerprint(den) if den else None, "runs": {}}
        for (e, label), seeds in groups.items():
            if e != exp:
                continue
            bad = [f"seed {r['seed']} {r['status']}" for r in seeds if r["status"] != "ok"]
            if bad:
                skipped.append(f"{exp}/{label} ({', '.join(bad)})")
                continue
            entry["runs"][label] = _run_entry(seeds, den, s)
        if entry["runs"]:
            experiments[exp] = entry
    if not experiments:
        raise ResultsError("no run finished (status ok): nothing to baseline; fix the failing runs first")
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": method_text(s),
        "settings": s,
        "sources": {"seeds": sorted({r["seed"] for r in runs}), "skipped_runs": skipped},
        "throughput": {"factor": s["throughput_factor"], "fail": False},
        "experiments": experiments,
    }


def _run_entry(seeds: list[dict], den: dict | None, s: dict) -> dict:
    head = seeds[0]
    timed = next((r for r in seeds if is_timed(r)), head)
    metrics = {}
    for split in SPLITS:
        for name in QUALITY[head["task"]]:
            values = [v for x in seeds if (v := metric(x, split, name)) is not None and math.isfinite(v)]
            if len(values) != len(seeds):
                continue
            expected = float(np.median(values))
            std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
            fl = floor(name, expected, split_size(head, split), s)
            metrics[f"{split}.{name}"] = {
                "expected": expected,
                "tolerance": max(s["k"] * std / math.sqrt(len(values)), fl) if std is not None else fl,
                "std": std,
                "n": len(values),
                "floor": fl,
            }
    entry: dict = {"backend": head["backend"], "device": head["device"], "fingerprint": fingerprint(timed)}
    entry["seeds"] = [r["seed"] for r in seeds]
    entry["metrics"] = metrics
    entry["variant"] = (timed.get("timings") or {}).get("variant")
    if den is not None and den is not timed:
        ratios, samples = {}, {}
        for kind in ("train", "inference"):
            a, b = throughput(timed, kind), throughput(den, kind)
            if a is not None and b is not None:
                ratios[kind] = a / b
                samples[kind] = [round(v, 6) for v in ratio_samples(timed, den, kind)]
        if ratios:
            entry["throughput"] = ratios
            entry["throughput_samples"] = samples  # what the check's significance test compares against
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.baselines", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="results dir of the run to baseline (default: results)")
    ap.add_argument("--out", default="reports/baselines.json", help="baselines file to write")
    ap.add_argument("--k", type=float, default=DEFAULTS["k"], help="tolerance = max(k * std / sqrt(n seeds), floor)")
    ap.add_argument("--throughput-factor", type=float, default=DEFAULTS["throughput_factor"])
    args = ap.parse_args(argv)
    if args.k <= 0 or args.throughput_factor <= 1:
        print("error: --k must be > 0 and --throughput-factor > 1", file=sys.stderr)
        return 2
    try:
        data = build(load_runs(args.results), {"k": args.k, "throughput_factor": args.throughput_factor})
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    n_runs = sum(len(e["runs"]) for e in data["experiments"].values())
    print(f"wrote {out}: {len(data['experiments'])} experiments, {n_runs} runs, seeds {data['sources']['seeds']}")
    for s in data["sources"]["skipped_runs"]:
        print(f"warning: not baselined, and the check fails while it does not finish: {s}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
