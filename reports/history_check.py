"""The check against history (`python -m reports.check --baseline-from-history N`): each run of a
results tree against the last N like-for-like parents of the store before it, instead of a static
baselines file.

Which parents: the run's own point in the history (found by its MLflow run id, so the results tree
and the history must come from the same store), the points of its series (same fingerprint and spec,
reports.history) up to and including it, and of those the last N before it inside its own segment
(the change points of reports.history): after a confirmed step the new level is the baseline, so a
regression fails the commit that made it, not every commit after it.

- train samples/s: `compare_samples(this run's process medians, the pooled process medians of the N
  parents, factor)` (ratio beyond the factor AND Welch's p < alpha on their logs; factor from
  reports.history.FIGURES); "slower" fails (like for like: same machine type, same versions),
  "faster" is a note.
- quality (median over the seeds): expected = the median of the N parents' values, tolerance =
  max(k x sd / sqrt(n), floor) over them, the rule and constants of reports.baselines.
- status, parity against the run's own bound, and the timing proof: as in the static check.
"""

from __future__ import annotations

import statistics

from reports import history as hist
from reports.baselines import DEFAULTS, QUALITY, SPLITS, floor, split_size
from reports.check import LOWER_IS_BETTER, Check, _flags, _parity, foreign, g
from reports.results import metric, run_label
from reports.seeds import seed_groups, timed_runs
from workflow.lib.stats import compare_samples, has_probe, units


def _locate(history: dict) -> dict[str, tuple[dict, dict]]:
    """MLflow run id -> (its series, its point)."""
    out = {}
    for s in hist.series(history):
        for p in s["points"]:
            for run_id in p["run_ids"]:
                out[run_id] = (s, p)
    return out


def baseline_points(s: dict, point: dict, n: int) -> list[dict]:
    """The last n points before `point` in its series and segment (train samples/s change points)."""
    upto = [p for p in s["points"] if p["order"] <= point["order"]]
    here = len(upto) - 1
    trimmed = {**s, "points": upto}
    start = 0
    for c in hist.steps_of(trimmed, "train_samples_per_s"):
        at = upto.index(next(p for p in upto if p["parent_run_id"] == c["parent_run_id"]))
        if at <= here:
            start = max(start, at)
    return upto[start:here][-n:]


def check(runs: list[dict], history: dict, n: int) -> list[Check]:
    where = _locate(history)
    groups = seed_groups(runs)
    timed = {(r["experiment"], run_label(r)): r for r in timed_runs(runs)}
    out: list[Check] = []
    for (exp, label), seeds in sorted(groups.items()):
        for r in seeds:
            out += _flags(exp, f"{label} seed {r['seed']}", r)
        bad = [r for r in seeds if r["status"] != "ok"]
        for r in bad:
            out.append(Check(exp, f"{label} seed {r['seed']}", "status", "ok", r["status"], "", "FAILED", fails=True))
        if bad:
            continue
        for r in seeds:
            out += _parity(exp, f"{label} seed {r['seed']}", r)
        run_id = ((timed.get((exp, label)) or seeds[0]).get("mlflow") or {}).get("run_id")
        if run_id not in where:
            why = "FAILED: not in the history (no MLflow run, or history.json older than this run: rewrite it)"
            out.append(Check(exp, label, "history", "present", "absent", "", why, fails=True))
            continue
        s, point = where[run_id]
        base = baseline_points(s, point, n)
        if not base:
            out.append(
                Check(exp, label, "history", f"{n} parents", "none", "", "no earlier like-for-like parent", note=True)
            )
            continue
        commits = ", ".join(hist.short(p["commit"]) for p in base)
        out.append(Check(exp, label, "history", f"{n} parents", f"{len(base)}: {commits}", "", "pass"))
        if (exp, label) in timed:
            out.append(_throughput(exp, label, timed[(exp, label)], base))
        out += _quality(exp, label, seeds, base)
    return out


def _throughput(exp: str, label: str, run: dict, base: list[dict]) -> Check:
    """Parents timed under foreign load are left out of the pooled baseline, and a run timed under it
    is not compared: another process's share of the CPU is not a property of the code."""
    _, better, factor = hist.FIGURES["train_samples_per_s"]
    figure = (run.get("timings") or {}).get("train_samples_per_s")
    this = units(figure)
    clean = [p for p in base if not foreign(p.get("flags"))]
    figures = [p["figures"].get("train_samples_per_s") or {} for p in clean]
    pooled = [v for f in figures for v in f.get("samples") or []]
    expected = statistics.median(pooled) if pooled else None
    got = statistics.median(this) if this else None
    # per GFLOP/s of the speed probe where this run and every clean parent read it (the machine's speed
    # on the day is not the code's: workflow/lib/speed_probe.py); else samples/s as they are
    per_probe = has_probe(figure) and bool(figures) and all(f.get("probe_samples") for f in figures)
    if per_probe:
        c = compare_samples(
            units(figure, per_probe=True),
            [v for f in figures for v in f["probe_samples"]],
            factor,
            higher_is_better=better,
        )
    else:
        c = compare_samples(this, pooled, factor, higher_is_better=better)
    rule = f"x/÷{factor:g}, p < 0.05" + (", per GFLOP/s of the speed probe" if per_probe else "")
    row = Check(exp, label, "train samples/s", g(expected), g(got), rule, "")
    if foreign(run.get("flags")):
        row.verdict, row.note = "not comparable: timed under foreign load (rerun on an idle machine)", True
    elif not clean:
        row.verdict = f"not comparable: all {len(base)} parents were timed under foreign load"
        row.note = True
    elif c.verdict == "slower":
        row.verdict, row.fails = f"SLOWER x{c.ratio:.3g} ({c.reason})", True
    elif c.verdict == "faster":
        row.verdict, row.note = f"faster x{c.ratio:.3g} ({c.reason})", True
    elif c.verdict == "not comparable":
        row.verdict, row.note = f"not comparable: {c.reason}", True
    else:
        row.verdict = "pass" + (f" (x{c.ratio:.3g}, {c.reason})" if c.ratio else "")
    return row


def _quality(exp: str, label: str, seeds: list[dict], base: list[dict]) -> list[Check]:
    out = []
    task = seeds[0].get("task")
    for split in SPLITS:
        for name in QUALITY.get(task, ()):
            key = f"{split}_{name}"
            values = [float(p["figures"][key]["value"]) for p in base if key in p["figures"]]
            got_values = [metric(r, split, name) for r in seeds]
            if not values or any(v is None for v in got_values):
                continue
            expected, got = statistics.median(values), statistics.median(got_values)
            spread = DEFAULTS["k"] * statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
            tol = max(spread, floor(name, expected, split_size(seeds[0], split), DEFAULTS))
            row = Check(
                exp, label, f"{split}.{name}", g(expected), g(got), f"± {tol:.3g} ({len(values)} parents)", "pass"
            )
            if abs(got - expected) > tol:
                worse = (got > expected) if name in LOWER_IS_BETTER else (got < expected)
                row.verdict, row.fails = ("REGRESSED" if worse else "CHANGED (better)"), True
            out.append(row)
    return out
