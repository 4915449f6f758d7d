"""Every commit's figures in one view: series, change points, the terminal table, JSON and plots,
from the history rows workflow/lib/history.py reads out of the MLflow store (results/history.json).

Series. Points of one (experiment, backend, device) are joined into a series only when like for like:
the same environment fingerprint (CPU, threads, every framework version...) and the same trained spec
(the `like` key). Points of another fingerprint form another series, shown apart.

Change points (the method, as in asv's step detection, with the project's significance rule):

1. Segmentation. Over the series' values in commit order, x_i = log(value), find the partition into
   segments of at least MIN_SEGMENT (2) points minimizing the sum over segments of
   sum |x_i - median(segment)| plus a penalty `beta` per step (exact, by dynamic programming: a
   series is at most a few hundred commits). L1 about the median, so one outlier inside a segment
   costs only its own distance; beta = 2 log(factor), which is what splitting 2 + 2 points that
   differ by exactly `factor` saves, so smaller steps never pay for themselves.
2. Confirmation. Each step between adjacent segments A and B is kept only where
   `workflow.lib.stats.compare_samples(samples of B, samples of A, factor)` calls it "faster" or
   "slower": ratio of medians beyond `factor` AND Welch's p < alpha on the logs of the pooled samples
   (process medians for samples/s; one value per seed for quality and parity; one per commit for
   compile seconds). An unconfirmed step is removed and its neighbours re-checked.

So a single noisy point is never a step (it cannot form a segment, and inside one its cost is
bounded), and a step at the newest commit is named once a second commit confirms the new level:
until then it is indistinguishable from a noisy point. The check against history (reports/check.py
--baseline-from-history N, reports/history_check.py) covers that newest commit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from reports.results import ResultsError
from workflow.lib.stats import compare_samples

MIN_SEGMENT = 2
# figure -> (title, higher is better, factor). Throughput: process-to-process spread of one config on one
# machine reached 1.35x (README, torch mnist10k-mlp); 1.5x sits above it. Compile seconds move as much.
# Quality: 2% relative (the baselines' accuracy floor is 0.02); parity: an order of magnitude (the
# bound itself is 10 x the float32 deviation).
FIGURES = {
    "train_samples_per_s": ("train samples/s", True, 1.5),
    "compile_seconds": ("compile s", False, 1.5),
    "test_accuracy": ("test accuracy", True, 1.02),
    "test_f1": ("test F1", True, 1.02),
    "test_mse": ("test MSE", False, 1.02),
    "test_r2": ("test R²", True, 1.02),
    "train_accuracy": ("train accuracy", True, 1.02),
    "train_f1": ("train F1", True, 1.02),
    "train_mse": ("train MSE", False, 1.02),
    "train_r2": ("train R²", True, 1.02),
    "parity": ("parity", False, 10.0),
}


def load_history(path: str | Path) -> dict:
    """results/history.json (workflow/lib/history.py); ResultsError naming the fix."""
    path = Path(path)
    fix = "write it with `python -m workflow.lib.history --results results --out results/history.json`"
    if not path.is_file():
        raise ResultsError(f"history file {path} not found; {fix} (the pipeline's history rule does)")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ResultsError(f"cannot parse {path}: {e}; {fix}") from e
    if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("points"), list):
        raise ResultsError(f"{path} is not a schema_version 1 history file; {fix}")
    return data


def series(history: dict) -> list[dict]:
    """The like-for-like series: {experiment, backend, device, like, fingerprint, points (commit order)}."""
    out: dict[tuple, dict] = {}
    for p in sorted(history.get("points") or [], key=lambda p: p["order"]):
        key = (p["experiment"], p["backend"], p["device"], p["like"])
        s = out.setdefault(
            key,
            {
                "experiment": p["experiment"],
                "backend": p["backend"],
                "device": p["device"],
                "like": p["like"],
                "fingerprint": p["fingerprint"],
                "points": [],
            },
        )
        s["points"].append(p)
    return [out[k] for k in sorted(out)]


def _segment_cost(x: np.ndarray) -> float:
    return float(np.abs(x - np.median(x)).sum())


def segment(values: list[float], factor: float) -> list[int]:
    """Step positions (index of each segment's first point) of the penalized L1 partition (module doc)."""
    x = np.log(np.asarray(values, dtype=np.float64))
    n, beta = len(x), 2 * math.log(factor)
    if n < 2 * MIN_SEGMENT:
        return []
    best, back = [0.0] + [math.inf] * n, [0] * (n + 1)
    for j in range(MIN_SEGMENT, n + 1):
        for i in [0, *range(MIN_SEGMENT, j - MIN_SEGMENT + 1)]:
            if best[i] == math.inf:
                continue
            cost = best[i] + _segment_cost(x[i:j]) + (beta if i else 0.0)
            if cost < best[j]:
                best[j], back[j] = cost, i
    steps, j = [], n
    while j > 0:
        j = back[j]
        if j:
            steps.append(j)
    return sorted(steps)


def _pool(samples: list[list[float]]) -> list[float]:
    return [v for s in samples for v in s]


def change_points(values: list[float], samples: list[list[float]], factor: float, higher_is_better: bool) -> list[dict]:
    """Confirmed steps: {index, ratio, p_value, verdict} (ratio: after / before, medians of the pooled samples)."""
    if len(values) < 2 * MIN_SEGMENT or any(not (v > 0 and math.isfinite(v)) for v in values):
        return []
    steps = segment(values, factor)
    while True:
        bounds = [0, *steps, len(values)]
        verdicts = []
        for k, at in enumerate(steps):
            before, after = _pool(samples[bounds[k] : at]), _pool(samples[at : bounds[k + 2]])
            verdicts.append(compare_samples(after, before, factor, higher_is_better=higher_is_better))
        weak = [k for k, c in enumerate(verdicts) if c.verdict not in ("faster", "slower")]
        if not weak:
            return [{"index": at, **c.to_dict()} for at, c in zip(steps, verdicts)]
        steps.pop(weak[0])


def figure_series(s: dict, figure: str) -> tuple[list[dict], list[float], list[list[float]]]:
    """The points of a series that have the figure, its values and samples."""
    pts = [p for p in s["points"] if figure in p["figures"]]
    values = [float(p["figures"][figure]["value"]) for p in pts]
    samples = [[float(v) for v in p["figures"][figure].get("samples") or [p["figures"][figure]["value"]]] for p in pts]
    return pts, values, samples


def steps_of(s: dict, figure: str) -> list[dict]:
    """The change points of one figure of a series, named by the commits on both sides."""
    _, better, factor = FIGURES[figure]
    pts, values, samples = figure_series(s, figure)
    out = []
    for c in change_points(values, samples, factor, better):
        at, before = pts[c["index"]], pts[c["index"] - 1]
        out.append(
            {
                "figure": figure,
                **c,
                "commit": at["commit"],
                "previous_commit": before["commit"],
                "parent_run_id": at["parent_run_id"],
            }
        )
    return out


def analyse(history: dict) -> dict:
    """The history as series with their change points (what `--json` prints)."""
    out = []
    for s in series(history):
        steps = [c for f in FIGURES for c in steps_of(s, f)]
        out.append({k: v for k, v in s.items() if k != "points"} | {"points": s["points"], "change_points": steps})
    return {"experiment": history.get("experiment"), "tracking_uri": history.get("tracking_uri"), "series": out}


def short(commit: str | None) -> str:
    return (commit or "no-git")[:10]


def _cell(p: dict, figure: str) -> str:
    f = p["figures"].get(figure)
    if f is None:
        return "—"
    v = float(f["value"])
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def framework_versions(versions: dict) -> str:
    """The versions worth a column: the frameworks, not every tool."""
    keep = ("torch", "tensorflow", "tensorflow-cpu", "jax", "numpy", "numba")
    return " ".join(f"{k} {versions[k]}" for k in keep if k in versions)


def table(history: dict, figures: list[str] | None = None) -> str:
    """The terminal view: per series, one row per commit, then its change points."""
    lines = [f"history of {history.get('experiment')} in {history.get('tracking_uri')}"]
    if not history.get("points"):
        return lines[0] + ": no parent run with finished trainings in this store"
    for s in series(history):
        shown = [f for f in (figures or FIGURES) if any(f in p["figures"] for p in s["points"])]
        steps = {(c["figure"], c["commit"]): c for f in shown for c in steps_of(s, f)}
        fp = s["like"]
        lines += ["", f"{s['experiment']}  {s['backend']}  {s['device']}  (fingerprint/spec {fp})"]
        header = ["commit", "date", *[FIGURES[f][0] for f in shown], "versions"]
        rows = [header]
        for p in s["points"]:
            cells = []
            for f in shown:
                mark = " ◆" if (f, p["commit"]) in steps else ""
                cells.append(_cell(p, f) + mark)
            rows.append([short(p["commit"]), (p["commit_time"] or "")[:10], *cells, framework_versions(p["versions"])])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        for c in steps.values():
            lines.append(f"  ◆ {describe_step(c)}")
    return "\n".join(lines)


def describe_step(c: dict) -> str:
    return (
        f"{FIGURES[c['figure']][0]} stepped x{c['ratio']:.3g} ({c['verdict']}, p = {c['p_value']:.2g}) between "
        f"{short(c['previous_commit'])} and {short(c['commit'])}"
    )


def section_rows(found: list[dict]) -> list[dict]:
    """The report's History table: one row per series with its latest figures and change points."""
    rows = []
    for s in found:
        last = s["points"][-1]
        steps = [describe_step(c) for f in FIGURES for c in steps_of(s, f)]
        latest = (last["figures"].get("train_samples_per_s") or {}).get("value")
        rows.append(s | {"n": len(s["points"]), "latest": latest, "versions": framework_versions(last["versions"])})
        rows[-1]["steps"] = steps
    return rows
