"""What moved between two results trees ("this" and "other"), as plain rows for reports/templates/compare.html.j2.

- quality: each run's final metrics (the mean over its seeds), this minus other. Where both trees hold the
  same seeds the comparison is paired, seed by seed: the delta moved when it exceeds the spread of the
  per-seed deltas (any delta for one seed); otherwise, when it exceeds the two trees' spreads over seeds;
- speed: each run's median training samples/s, this over other, with the verdict of the measurement rule
  (workflow/lib/stats.py compare_samples on the medians of the fresh processes that timed them, each per
  GFLOP/s of the machine as it ran: its own speed-probe reading, else the run's calibrate ceiling, where
  both trees have it; `basis`): "faster"/"slower" only beyond
  x/÷ SPEED_BAND AND Welch's p < 0.05 on their logs, "no change" otherwise, "not comparable" unless both
  runs carry the same environment fingerprint;
- parity: each run's loss-curve deviation from the reference and its bound, in both trees;
- runs: runs present in one tree only, or with another status;
- environment: the two trees' environments side by side, field by field.

Runs are matched by (experiment, backend-device); a key holds a list (one run per seed).
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from reports.overview import groups, median_speed
from reports.results import SPLITS, fingerprint, metric, num, timing
from reports.tables import ENV_FIELDS, LOWER_IS_BETTER
from workflow.lib.stats import compare_samples, has_probe, units

QUALITY_METRICS = {"regression": ("mse", "r2"), "classification": ("accuracy", "f1")}
SPEED_BAND = 1.10  # 10%: the spread beyond which a timing is already called unstable


def _timed(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["status"] == "ok" and (r.get("timings") or {}).get("timed", True)]


def _reading(run: dict, key: str) -> float | None:
    """A machine reading (GFLOP/s) from the run's timings: positive and finite, else None."""
    v = num(timing(run, key))
    return v if v is not None and math.isfinite(v) and v > 0 else None


def ceiling(run: dict) -> float | None:
    """The machine ceiling (GFLOP/s) the run's own pipeline run measured (calibrate), None without one."""
    return _reading(run, "machine_ceiling_gflops")


def probe(run: dict) -> float | None:
    """The median speed-probe reading beside the run's timed sections (workflow/lib/speed_probe.py)."""
    return _reading(run, "probe_gflops")


def _figure(run: dict) -> dict | None:
    return (run.get("timings") or {}).get("train_samples_per_s")


# What the speed of a run is divided by, best first: the probe read beside each process's timed
# section, else the run's calibrate ceiling; with neither in both trees, samples/s as they are.
BASES = {
    "speed probe": lambda r: has_probe(_figure(r)),
    "ceiling": lambda r: ceiling(r) is not None,
}
MACHINE_READING = {"speed probe": probe, "ceiling": ceiling}


AUTO = "auto"  # the first of BASES both groups carry; "samples" forces raw samples/s


def basis(*groups: list[dict], asked: str = AUTO) -> str | None:
    """The first of BASES (or only `asked`) that every timed run of every group carries, None if none."""
    timed = [_timed(g) for g in groups]
    names = list(BASES) if asked == AUTO else [asked] if asked in BASES else []
    if not all(timed):
        return None
    return next((name for name in names if all(BASES[name](r) for t in timed for r in t)), None)


def speed_units(runs: list[dict], by: str | None = None) -> list[float]:
    """The training samples/s a group's finished, timed runs are tested on: each run's process medians (its
    repetitions where one process timed it; workflow.lib.stats.units), per GFLOP/s of the machine as `by`
    read it: "speed probe" (each process's own reading), "ceiling" (the run's calibrate ceiling), None (raw)."""
    out = []
    for r in _timed(runs):
        scale = ceiling(r) if by == "ceiling" else 1.0
        out += [v / scale for v in units(_figure(r), per_probe=by == "speed probe")]
    return out


def _stat(values: list[float]) -> dict:
    """One quality figure over a cell's runs: value (mean), spread (standard deviation over seeds, None for one)."""
    if not values:
        return {"value": None, "spread": None, "n": 0, "values": []}
    spread = statistics.stdev(values) if len(values) > 1 else None
    return {"value": statistics.fmean(values), "spread": spread, "n": len(values), "values": values}


def _metric_values(runs: list[dict], split: str, name: str) -> list[float]:
    return [v for r in runs if r["status"] == "ok" and (v := metric(r, split, name)) is not None and math.isfinite(v)]


def _paired(this: list[dict], other: list[dict], split: str, name: str) -> list[float]:
    """Per-seed deltas when both cells hold the same seeds, all finished; [] otherwise."""
    x = {r["seed"]: metric(r, split, name) for r in this if r["status"] == "ok"}
    y = {r["seed"]: metric(r, split, name) for r in other if r["status"] == "ok"}
    if len(x) != len(this) or len(y) != len(other) or set(x) != set(y) or None in {*x.values(), *y.values()}:
        return []
    return [x[s] - y[s] for s in sorted(x)]


def quality_rows(this: list[dict], other: list[dict]) -> list[dict]:
    """A row per (experiment, run, split, metric) measured in both trees: this, other, delta, moved, better."""
    a, b = groups(this), groups(other)
    rows = []
    for key in sorted(a.keys() & b.keys()):
        task = "regression" if a[key][0]["task"] == "regression" else "classification"
        for split in SPLITS:
            for name in QUALITY_METRICS[task]:
                x, y = _stat(_metric_values(a[key], split, name)), _stat(_metric_values(b[key], split, name))
                if x["value"] is None or y["value"] is None:
                    continue
                delta = x["value"] - y["value"]
                paired = _paired(a[key], b[key], split, name)
                noise = (
                    (statistics.stdev(paired) if len(paired) > 1 else 0.0)
                    if paired
                    else (x["spread"] or 0.0) + (y["spread"] or 0.0)
                )
                rows.append(
                    {
                        "experiment": key[0],
                        "run": key[1],
                        "split": split,
                        "metric": name,
                        "this": x,
                        "other": y,
                        "delta": delta,
                        "moved": abs(delta) > noise,
                        "paired": bool(paired),
                        "better": (delta < 0) if name in LOWER_IS_BETTER else (delta > 0),
                    }
                )
    return rows


def _fingerprints(runs: list[dict]) -> list[str]:
    return sorted({fingerprint(r) or "none" for r in runs})


def speed_rows(this: list[dict], other: list[dict], asked: str = AUTO) -> list[dict]:
    """A row per run timed in both trees: median samples/s each, samples_ratio this/other, machine_ratio (the
    machine's reading in this tree over the other's), basis (what the verdict divided by), the verdict (its
    ratio, p-value and reason), moved (a verdict of faster or slower), like_for_like.

    The verdict is on samples/s per GFLOP/s of the machine as it ran (`basis`): a shared 2-core machine ran
    the CI config 1.38x faster (ceiling 67.6 -> 93.3 GFLOP/s) two hours apart, every backend with it, and a
    comparison of the same code must not call the machine's own speed a change (README). `ratio` is then
    per GFLOP/s, `samples_ratio` raw. `asked` picks one basis ("samples": none) instead of the first both carry."""
    a, b = groups(this), groups(other)
    rows = []
    for key in sorted(a.keys() & b.keys()):
        x, y = median_speed(a[key]), median_speed(b[key])
        if x is None or y is None:
            continue
        fa, fb = _fingerprints(a[key]), _fingerprints(b[key])
        like = fa == fb and len(fa) == 1
        by = basis(a[key], b[key], asked=asked)
        change = compare_samples(speed_units(a[key], by), speed_units(b[key], by), SPEED_BAND, comparable=like)
        machine = None
        if by:
            read = MACHINE_READING[by]
            machine = statistics.median(map(read, _timed(a[key]))) / statistics.median(map(read, _timed(b[key])))
        rows.append(
            {
                "experiment": key[0],
                "run": key[1],
                "this": x,
                "other": y,
                "samples_ratio": x / y,
                "machine_ratio": machine,
                "basis": by,
                "ratio": change.ratio if change.ratio is not None else (x / y) / (machine or 1.0),
                "verdict": change.verdict,
                "p_value": change.p_value,
                "reason": (f"per GFLOP/s of the {by}, {change.reason}" if by else change.reason),
                "moved": change.verdict in ("faster", "slower"),
                "like_for_like": like,
                "fingerprints": {"this": fa, "other": fb},
            }
        )
    return rows


def _parity(runs: list[dict]) -> dict:
    values = [num((r.get("parity") or {}).get("max_rel_loss_deviation")) for r in runs if r["status"] == "ok"]
    bounds = [num((r.get("parity") or {}).get("bound")) for r in runs if r["status"] == "ok"]
    values = [v for v in values if v is not None]
    bounds = [v for v in bounds if v is not None]
    deviation, bound = (max(values) if values else None), (min(bounds) if bounds else None)
    beyond = deviation is not None and bound is not None and not deviation <= bound
    return {"deviation": deviation, "bound": bound, "beyond": beyond}


def parity_rows(this: list[dict], other: list[dict]) -> list[dict]:
    """A row per run with a parity figure in either tree: the largest deviation and its bound, this and other."""
    a, b = groups(this), groups(other)
    rows = []
    for key in sorted(a.keys() & b.keys()):
        x, y = _parity(a[key]), _parity(b[key])
        if x["deviation"] is None and y["deviation"] is None:
            continue
        changed = x["beyond"] != y["beyond"]
        rows.append({"experiment": key[0], "run": key[1], "this": x, "other": y, "changed": changed})
    return rows


def run_rows(this: list[dict], other: list[dict]) -> list[dict]:
    """Runs in one tree only, or whose status differs: experiment, run, this and other status (None: absent)."""
    a, b = groups(this), groups(other)
    rows = []
    for key in sorted(a.keys() | b.keys()):
        x = sorted({r["status"] for r in a.get(key, [])})
        y = sorted({r["status"] for r in b.get(key, [])})
        if x != y:
            rows.append({"experiment": key[0], "run": key[1], "this": x or None, "other": y or None})
    return rows


def _env(runs: list[dict]) -> dict:
    """The environment most of the runs share."""
    counts: dict[str, list[dict]] = {}
    for r in runs:
        counts.setdefault(fingerprint(r) or "none", []).append(r)
    rs = max(counts.values(), key=len) if counts else [{}]
    return {**(rs[0].get("environment") or {}), "device": rs[0].get("device")}


def _show(v: Any) -> str:
    if v is None:
        return "—"
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def environment_rows(this: list[dict], other: list[dict]) -> list[dict]:
    """The two trees' main environments side by side: field, this, other, differs (one row per framework version)."""
    x, y = _env(this), _env(other)
    rows = [{"field": "fingerprint", "this": _show(x.get("fingerprint")), "other": _show(y.get("fingerprint"))}]
    for field in ENV_FIELDS:
        if field == "versions":
            for lib in sorted({*(x.get("versions") or {}), *(y.get("versions") or {})}):
                xv, yv = (x.get("versions") or {}).get(lib), (y.get("versions") or {}).get(lib)
                rows.append({"field": f"version of {lib}", "this": _show(xv), "other": _show(yv)})
        else:
            rows.append({"field": field, "this": _show(x.get(field)), "other": _show(y.get(field))})
    rows.append({"field": "git commit", "this": _show(x.get("git_commit")), "other": _show(y.get("git_commit"))})
    for row in rows:
        row["differs"] = row["this"] != row["other"]
    return rows


def _machine(this: list[dict], other: list[dict], read) -> dict:
    """{this, other, ratio}: the median machine reading (GFLOP/s) over each tree's timed runs."""
    values = [[v for r in _timed(runs) if (v := read(r)) is not None] for runs in (this, other)]
    m = {side: statistics.median(v) if v else None for side, v in zip(("this", "other"), values)}
    return {**m, "ratio": m["this"] / m["other"] if all(m.values()) else None}


def compare(this: list[dict], other: list[dict], asked: str = AUTO) -> dict:
    """Every table of the comparison page, and whether the two trees are like for like (the same fingerprint
    set); `asked`: the basis of the speed verdicts (speed_rows)."""
    speed = speed_rows(this, other, asked)
    quality = quality_rows(this, other)
    parity = parity_rows(this, other)
    machine = {name: _machine(this, other, read) for name, read in MACHINE_READING.items()}
    return {
        "like_for_like": _fingerprints(this) == _fingerprints(other),
        "machine": machine,
        "fingerprints": {"this": _fingerprints(this), "other": _fingerprints(other)},
        "environment": environment_rows(this, other),
        "speed": speed,
        "quality": quality,
        "parity": parity,
        "runs": run_rows(this, other),
        "moved": {
            "speed": sum(r["moved"] for r in speed),
            "quality": sum(r["moved"] for r in quality),
            "parity": sum(r["changed"] for r in parity),
        },
    }
