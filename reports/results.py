"""Load the run result files the workflow writes and flatten them into one tidy table.

A run result is `results/runs/{experiment}/{backend}-{device}/seed{seed}.json` (one per training:
a job trains every seed of the config); every key is present, null where it does not apply.
`summary.csv` has one row per training; `summary_over_seeds.csv` the statistics over seeds
(reports/seeds.py).

    python -m reports.results --results results --out results/summary.csv
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from backends import REFERENCE, names
from reports import run_schema
from workflow.lib.stats import units

SPLITS = ("train", "test")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("mse", "mae", "r2")


class ResultsError(RuntimeError):
    """A results directory or run file cannot be read as the report needs it."""


def run_label(run: dict) -> str:
    """The run's name inside its experiment, as in its file name: backend-device."""
    return f"{run['backend']}-{run['device']}"


def num(x: Any) -> float | None:
    """A JSON number as float (NaN/inf kept), anything else (null, text) as None."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def finite(x: Any) -> bool:
    v = num(x)
    return v is not None and math.isfinite(v)


def metric(run: dict, split: str, name: str) -> float | None:
    """metrics[split][name] as float, None where the run has none (failed run, other task)."""
    return num(((run.get("metrics") or {}).get(split) or {}).get(name))


def timing(run: dict, *keys: str) -> Any:
    """A nested value under timings, None when any level is missing or null."""
    node: Any = run.get("timings") or {}
    for k in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(k)
    return node


def fingerprint(run: dict) -> str | None:
    return (run.get("environment") or {}).get("fingerprint")


def reference_name(runs: list[dict]) -> str:
    """The reference backend named by the runs' parity records (the registry's by default)."""
    for r in runs:
        ref = (r.get("parity") or {}).get("reference")
        if ref:
            return str(ref)
    return REFERENCE


def _backend_rank(backend: str) -> tuple[int, str]:
    order = names()
    return (order.index(backend), backend) if backend in order else (len(order), backend)


def label_key(run: dict) -> tuple:
    """The registry's backend order (reference first), then device."""
    return (_backend_rank(run["backend"]), run["device"])


def sort_key(run: dict) -> tuple:
    """Experiment, then backend in registry order, then device."""
    return (run["experiment"], *label_key(run))


def labels_in_order(runs: list[dict]) -> list[str]:
    """The distinct backend-device labels of the runs, in report order."""
    firsts = {run_label(r): r for r in runs}
    return [run_label(r) for r in sorted(firsts.values(), key=label_key)]


def load_run(path: str | Path) -> dict:
    """Read and check one run result file; the error names the file and what is wrong."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read run result {path}: {e}; delete it and rerun its training job") from e
    if not isinstance(run, dict):
        raise ResultsError(f"run result {path} is not a JSON object; delete it and rerun its training job")
    if run.get("schema_version") != run_schema.version():
        raise ResultsError(
            f"run result {path} has schema_version {run.get('schema_version')!r}; this report reads "
            f"version {run_schema.version()}: rerun the pipeline to rewrite it"
        )
    bad = run_schema.problems(run)
    if bad:
        raise ResultsError(
            f"run result {path} does not match {run_schema.PATH.name}: {bad[0]}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; it was not written by this version of the pipeline: delete it and rerun its training job"
        )
    run["_path"] = str(path)
    return run


def load_runs(results_dir: str | Path) -> list[dict]:
    """All run results under results_dir/runs, sorted; an error when there are none."""
    results_dir = Path(results_dir)
    runs_dir = results_dir / "runs"
    if not results_dir.is_dir():
        raise ResultsError(
            f"results directory {results_dir} does not exist; run the pipeline first "
            "(snakemake --cores N) or pass --results with the directory it wrote"
        )
    files = sorted(runs_dir.glob("*/*/seed*.json"))
    if not files:
        old = sorted(runs_dir.glob("*/*.json"))
        hint = f" ({len(old)} files of the older one-seed layout are there: rerun the pipeline)" if old else ""
        raise ResultsError(
            f"no run results under {runs_dir} (expected runs/{{experiment}}/{{backend}}-{{device}}/seed{{N}}.json)"
            f"{hint}; run the pipeline first or pass --results with the directory it wrote"
        )
    runs = [load_run(f) for f in files]
    seen: dict[tuple[str, str, int], str] = {}
    for r in runs:
        key = (r["experiment"], run_label(r), r["seed"])
        if key in seen:
            raise ResultsError(
                f"two run results claim experiment {key[0]!r}, run {key[1]!r}, seed {key[2]}: {seen[key]} and "
                f"{r['_path']}; delete the stale one"
            )
        seen[key] = r["_path"]
    return sorted(runs, key=lambda r: (*sort_key(r), r["seed"]))


def load_optional_json(path: str | Path) -> Any:
    """A JSON side file (config.json, devices.json) or None when absent; bad JSON is an error."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ResultsError(f"cannot parse {path}: {e}; delete it and rerun the pipeline") from e


def load_devices(results_dir: str | Path) -> dict[str, dict]:
    """results/devices.json: {backend: {"devices": [...], "reason": "..."}}; {} when absent."""
    path = Path(results_dir) / "devices.json"
    data = load_optional_json(path)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ResultsError(
            f'{path} must map each backend to {{"devices": [...], "reason": "..."}}; rerun the pipeline to rewrite it'
        )
    return data


def not_scheduled(devices: dict[str, dict], backend: str, device: str) -> str | None:
    """Why backend/device was not in this run's plan, per devices.json; None if it was (or devices.json is absent)."""
    if not devices:
        return None
    entry = devices.get(backend)
    if entry is None:
        return f"backend {backend!r} is not in this run's plan"
    if device in (entry.get("devices") or []):
        return None
    return entry.get("reason") or f"{device} not requested by this run's config"


def throughput(run: dict, kind: str) -> float | None:
    """Median samples/s of kind 'train' or 'inference'; None unless the run is ok and it is positive."""
    v = num(timing(run, f"{kind}_samples_per_s", "median"))
    return v if run["status"] == "ok" and v is not None and math.isfinite(v) and v > 0 else None


def ratio_samples(run: dict, den: dict, kind: str) -> list[float]:
    """The run's units of samples/s of kind 'train' or 'inference' (its process medians, or its repetitions
    where one process timed it: workflow.lib.stats.units), each over the median of `den`'s: what a throughput
    ratio between two runs of one pipeline run is tested on."""
    b = throughput(den, kind)
    if b is None or throughput(run, kind) is None:
        return []
    return [v / b for v in units((run.get("timings") or {}).get(f"{kind}_samples_per_s"))]


def speedup_vs_slowest(runs: list[dict], kind: str) -> dict[str, float]:
    """Each run's median throughput over the slowest run's, among the given runs (one experiment)."""
    rates = {run_label(r): throughput(r, kind) for r in runs}
    rates = {k: v for k, v in rates.items() if v is not None}
    if not rates:
        return {}
    slowest = min(rates.values())
    return {k: v / slowest for k, v in rates.items()}


def summary_row(run: dict) -> dict:
    """One flat row of the summary table."""
    row: dict[str, Any] = {
        k: run.get(k) for k in ("experiment", "dataset", "task", "backend", "framework", "mode", "device", "status")
    }
    row["message"] = run.get("message") or ""
    for split in SPLITS:
        for m in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, "loss"):
            row[f"{split}_{m}"] = metric(run, split, m)
    losses = run.get("loss_history") or []
    row["final_loss"] = num(losses[-1]) if losses else None
    for kind in ("train", "inference"):
        for stat in ("median", "q1", "q3"):
            row[f"{kind}_samples_per_s_{stat}"] = num(timing(run, f"{kind}_samples_per_s", stat))
        row[f"{kind}_samples_per_s_unstable"] = timing(run, f"{kind}_samples_per_s", "unstable")
    row["compile_seconds"] = num(timing(run, "compile_seconds"))
    row["first_epoch_seconds"] = num(timing(run, "first_epoch_seconds"))
    row["train_gflops"] = num(timing(run, "train_gflops"))
    row["percent_of_ceiling"] = num(timing(run, "percent_of_ceiling"))
    row["cpu_per_wall"] = num(timing(run, "section", "cpu_per_wall"))
    row["timed_cpus"] = " ".join(map(str, timing(run, "section", "cpus") or []))
    row["variant"] = timing(run, "variant")
    row["fallback"] = timing(run, "fallback")
    row["flags"] = "; ".join(run.get("flags") or [])
    ttt = timing(run, "time_to_target") or {}
    row["time_to_target_metric"] = ttt.get("metric")
    row["time_to_target_target"] = num(ttt.get("target"))
    row["time_to_target_reached"] = ttt.get("reached")
    row["time_to_target_seconds"] = num(ttt.get("seconds"))
    row["time_to_target_epochs"] = ttt.get("epochs")
    row["parity_max_rel_loss_deviation"] = num((run.get("parity") or {}).get("max_rel_loss_deviation"))
    row["parity_bound"] = num((run.get("parity") or {}).get("bound"))
    row["peak_rss_mb"] = num((run.get("memory") or {}).get("peak_rss_mb"))
    row["seed"] = run.get("seed")
    row["threads"] = run.get("threads")
    row["dtype"] = (run.get("spec") or {}).get("dtype")
    row["fingerprint"] = fingerprint(run)
    row["mlflow_run_id"] = (run.get("mlflow") or {}).get("run_id")
    row["path"] = run.get("_path")
    return row


def summary_frame(runs: list[dict]) -> pd.DataFrame:
    """The tidy summary: one row per run, in report order, with speed-ups against the slowest run of its experiment."""
    runs = sorted(runs, key=sort_key)
    rows = [summary_row(r) for r in runs]
    by_exp: dict[str, list[dict]] = {}
    for r in runs:
        by_exp.setdefault(r["experiment"], []).append(r)
    speed = {(exp, kind): speedup_vs_slowest(rs, kind) for exp, rs in by_exp.items() for kind in ("train", "inference")}
    for r, row in zip(runs, rows):
        for kind in ("train", "inference"):
            row[f"{kind}_speedup_vs_slowest"] = speed[(r["experiment"], kind)].get(run_label(r))
    return pd.DataFrame(rows)


def write_summary(results_dir: str | Path, out: str | Path, over_seeds: str | Path | None = None) -> pd.DataFrame:
    """summary.csv (one row per training) and, beside it, summary_over_seeds.csv (reports/seeds.py)."""
    from reports.seeds import aggregate_frame

    runs = load_runs(results_dir)
    frame = summary_frame(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    aggregate_frame(runs).to_csv(over_seeds or out.with_name("summary_over_seeds.csv"), index=False)
    return frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.results", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the pipeline's results directory (default: results)")
    ap.add_argument("--out", default=None, help="the CSV to write (default: RESULTS/summary.csv)")
    args = ap.parse_args(argv)
    out = args.out or str(Path(args.results) / "summary.csv")
    try:
        frame = write_summary(args.results, out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(frame)} runs, {frame['experiment'].nunique()} experiments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
