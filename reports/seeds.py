"""Every figure over seeds: statistics per (experiment, backend-device), verdicts on the documents'
figures, and the seed-by-seed agreement of the backends.

A training job trains once per seed of the config (`seeds`); each seed is one run result. Only the
timed seeds (the first, or all with `time_all_seeds`) carry throughput; quality is over all seeds.

Verdict on a document's figure, per backend (tolerance = the figure's own precision, never widened):
- "reproduced": the median over seeds is within the tolerance of the figure;
- "within seed range": the median is not, but the figure lies inside [min, max] over seeds (± tolerance);
- "not reproduced": the figure lies outside every seed's result.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.results import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    SPLITS,
    labels_in_order,
    metric,
    num,
    run_label,
    sort_key,
)
from workflow.lib.catalogue import within
from workflow.lib.timing import summarize

REPRODUCED, IN_RANGE, NOT_REPRODUCED = "reproduced", "within seed range", "not reproduced"
VERDICTS = (REPRODUCED, IN_RANGE, NOT_REPRODUCED)


def is_timed(run: dict) -> bool:
    return bool((run.get("timings") or {}).get("timed"))


def timed_runs(runs: list[dict]) -> list[dict]:
    """The runs whose training was timed: the throughput tables' rows (one per training job unless
    time_all_seeds)."""
    return [r for r in runs if is_timed(r)]


def seed_groups(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (experiment, backend-device), in report order; each list ordered by seed."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(runs, key=lambda r: (*sort_key(r), r.get("seed") or 0)):
        out.setdefault((r["experiment"], run_label(r)), []).append(r)
    return out


def stats(values: list[float | None]) -> dict:
    """Median, min, max and the order-statistic interval of the median over the seeds, with the level
    it really has at that n (workflow.lib.timing.summarize's): 75% at 3 seeds, 93.75% at 5."""
    s = summarize([v for v in values if v is not None])
    raw = s["raw"]
    return {
        "n": s["n"],
        "median": s["median"],
        "min": min(raw) if raw else None,
        "max": max(raw) if raw else None,
        "interval": s["interval"],
        "values": raw,
    }


def metric_names(task: str) -> tuple[str, ...]:
    return (*(REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS), "loss")


def aggregate_rows(runs: list[dict]) -> list[dict]:
    """One row per (experiment, backend-device, split, metric): the statistics over the finished seeds."""
    rows = []
    for (exp, _), rs in seed_groups(runs).items():
        ok = [r for r in rs if r["status"] == "ok"]
        for split in SPLITS:
            for name in metric_names(rs[0]["task"]):
                s = stats([metric(r, split, name) for r in ok])
                if not s["n"]:
                    continue
                rows.append(
                    {
                        "experiment": exp,
                        "backend": rs[0]["backend"],
                        "device": rs[0]["device"],
                        "split": split,
                        "metric": name,
                        "seeds": " ".join(str(r["seed"]) for r in rs),
                        "seeds_ok": s["n"],
                        "median": s["median"],
                        "min": s["min"],
                        "max": s["max"],
                        "interval_low": (s["interval"] or {}).get("low"),
                        "interval_high": (s["interval"] or {}).get("high"),
                        "interval_level": (s["interval"] or {}).get("level"),
                    }
                )
    return rows


def aggregate_frame(runs: list[dict]) -> pd.DataFrame:
    """summary_over_seeds.csv: aggregate_rows as a table."""
    return pd.DataFrame(aggregate_rows(runs))


def _figure_key(rep: dict) -> tuple:
    return (rep.get("metric"), rep.get("split"), num(rep.get("value")), rep.get("source"))


def judge(value: float | None, tolerance: float | None, s: dict) -> str | None:
    """The verdict on one figure from the statistics of its measurements over seeds; None: not judged
    (the document prints no value, or no seed finished)."""
    if value is None or not s["n"]:
        return None
    tol = tolerance or 0.0
    if within(s["median"], value, tol):
        return REPRODUCED
    if s["min"] <= value <= s["max"] or within(s["min"], value, tol) or within(s["max"], value, tol):
        return IN_RANGE
    return NOT_REPRODUCED


def figure_verdicts(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """Every figure the documents report, one row each, with each backend-device's seed statistics
    and verdict. Returns the rows and the labels (columns, in report order).

    row: experiment, reconstructed, metric, split, source, reported, tolerance, note, cells
    {label: None (no such run) | {status, n, seeds, median, min, max, interval, verdict}}.
    """
    rows: list[dict] = []
    labels: list[str] = []
    groups = seed_groups(runs)
    for exp in sorted({r["experiment"] for r in runs}):
        rs = [r for r in runs if r["experiment"] == exp]
        figures: dict[tuple, dict] = {}
        for r in sorted(rs, key=sort_key):
            for rep in r.get("reported") or []:
                figures.setdefault(_figure_key(rep), rep)
        exp_labels = labels_in_order(rs)
        labels.extend(x for x in exp_labels if x not in labels)
        for key, rep in figures.items():
            value, tol = num(rep.get("value")), num(rep.get("tolerance"))
            cells: dict[str, Any] = {}
            for label in exp_labels:
                seeds = groups[(exp, label)]
                ok = [r for r in seeds if r["status"] == "ok"]
                measured = [num(_rep(r, key).get("measured")) for r in ok]
                s = stats(measured)
                status = "ok" if ok else seeds[0]["status"]
                cells[label] = {**s, "status": status, "seeds": len(seeds), "verdict": judge(value, tol, s)}
            rows.append(
                {
                    "experiment": exp,
                    "reconstructed": any(r.get("reconstructed_labels") for r in rs),
                    "metric": rep.get("metric"),
                    "split": rep.get("split"),
                    "source": rep.get("source"),
                    "reported": value,
                    "tolerance": tol,
                    "note": rep.get("note") or "",
                    "cells": cells,
                }
            )
    for row in rows:
        row["cells"] = {label: row["cells"].get(label) for label in labels}
    return rows, labels


def _rep(run: dict, key: tuple) -> dict:
    return next((p for p in run.get("reported") or [] if _figure_key(p) == key), {})


def seed_parity(runs: list[dict]) -> list[dict]:
    """Per experiment: do all backends agree seed by seed? For each seed, the spread of the
    experiment's headline metric over the backends and the largest loss-curve deviation from the
    reference, and whether every backend stayed within its parity bound.

    row: experiment, metric (split metric), seeds [{seed, values {label: v}, spread, max_deviation,
    within (True/False/None)}], agree (every seed within bounds), max_spread.
    """
    out = []
    for exp in sorted({r["experiment"] for r in runs}):
        rs = [r for r in runs if r["experiment"] == exp and r["status"] == "ok"]
        if not rs:
            continue
        split, name = headline(rs[0])
        per_seed = []
        for seed in sorted({r["seed"] for r in rs}):
            at = [r for r in rs if r["seed"] == seed]
            values = {run_label(r): metric(r, split, name) for r in sorted(at, key=sort_key)}
            known = [v for v in values.values() if v is not None]
            parities = [r["parity"] for r in at if r.get("parity")]
            devs = [num(p.get("max_rel_loss_deviation")) for p in parities]
            within = [p.get("within_bound") for p in parities if p.get("within_bound") is not None]
            per_seed.append(
                {
                    "seed": seed,
                    "values": values,
                    "spread": (max(known) - min(known)) if len(known) > 1 else None,
                    "max_deviation": max((d for d in devs if d is not None), default=None),
                    "within": all(within) if within else None,
                }
            )
        spreads = [s["spread"] for s in per_seed if s["spread"] is not None]
        verdicts = [s["within"] for s in per_seed if s["within"] is not None]
        out.append(
            {
                "experiment": exp,
                "metric": f"{split} {name}",
                "seeds": per_seed,
                "agree": all(verdicts) if verdicts else None,
                "max_spread": max(spreads) if spreads else None,
            }
        )
    return out


def headline(run: dict) -> tuple[str, str]:
    """The split and metric an experiment is summed up by: its first reported figure's, else test
    accuracy (classification) or test MSE (regression)."""
    for rep in run.get("reported") or []:
        if rep.get("metric") and rep.get("split"):
            return rep["split"], rep["metric"]
    return "test", "mse" if run["task"] == "regression" else "accuracy"
