"""The sweep files (results/sweeps/{sweep}/{backend}-{device}.json) as plain rows: every point
(summary.csv), the per-step overhead fits (overheads.csv) and the report's table.

    python -m reports.sweeps --results results --summary results/sweeps/summary.csv \\
        --overheads results/sweeps/overheads.csv

The practical ceiling is the `fused` backend (one numba-compiled function per epoch, no framework in
the loop): each figure is also given as a fraction of fused's at the same sweep point and device.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRACTICAL = "fused"
NEVER = "never in the swept range"


class SweepFileError(ValueError):
    """A sweep file that cannot be read; the message names it and the fix."""


def load_sweeps(results_dir: str | Path) -> list[dict]:
    """Every sweep file under RESULTS/sweeps, sorted by sweep, device, backend."""
    out = []
    for path in sorted(Path(results_dir, "sweeps").glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SweepFileError(f"{path}: not readable JSON ({e}); delete it and rerun its sweep job") from e
        missing = [k for k in ("sweep", "backend", "device", "points", "fit") if k not in data]
        if missing:
            raise SweepFileError(f"{path}: no {missing}; it is not a sweep file, delete it and rerun its sweep job")
        out.append(data)
    return sorted(out, key=lambda s: (s["sweep"], s["device"], s["backend"] == PRACTICAL, s["backend"]))


def _point_key(sweep: dict, p: dict) -> tuple:
    return sweep["sweep"], sweep["device"], p["axis"], p["value"]


def practical_figures(sweeps: list[dict], field: str = "train_samples_per_s") -> dict[tuple, float]:
    """(sweep, device, axis, value) -> the fused backend's figure there (samples/s by default)."""
    return {
        _point_key(s, p): p[field] for s in sweeps if s["backend"] == PRACTICAL for p in s["points"] if p.get(field)
    }


def _fraction(value: float | None, reference: float | None) -> float | None:
    return value / reference if value and reference else None


def summary_rows(sweeps: list[dict]) -> list[dict]:
    """One row per (sweep, backend, device, point), with the fraction of fused's figure there."""
    practical = practical_figures(sweeps)
    rows = []
    for s in sweeps:
        for p in s["points"]:
            t = (p.get("timings") or {}).get("train_samples_per_s") or {}
            rows.append(
                {
                    "sweep": s["sweep"],
                    "backend": s["backend"],
                    "mode": s.get("mode"),
                    "device": s["device"],
                    "axis": p["axis"],
                    "value": p["value"],
                    "batch_size": p["batch_size"],
                    "width": p["width"],
                    "hidden": "-".join(map(str, p.get("hidden") or [])),
                    "status": p["status"],
                    "train_samples_per_s": p.get("train_samples_per_s"),
                    "train_samples_per_s_q1": t.get("q1"),
                    "train_samples_per_s_q3": t.get("q3"),
                    "seconds_per_step": p.get("seconds_per_step"),
                    "gflops": p.get("gflops"),
                    "percent_of_ceiling": p.get("percent_of_ceiling"),
                    "fraction_of_fused": _fraction(p.get("train_samples_per_s"), practical.get(_point_key(s, p))),
                    "compile_seconds": p.get("compile_seconds"),
                    "cpu_per_wall": p.get("cpu_per_wall"),
                    "flags": "; ".join(p.get("flags") or []) or p.get("message", ""),
                    "fingerprint": (s.get("environment") or {}).get("fingerprint"),
                }
            )
    return rows


def not_a_floor(sweeps: list[dict]) -> list[dict]:
    """Every sweep point where a framework trained faster than fused, the fastest such backend each,
    largest ratio first, with both figures' share of the SGEMM ceiling (how near each is to what the
    machine can do): there fused is no floor (issue 25), and the report says so rather than quoting
    fractions of fused as if it were one."""
    practical = practical_figures(sweeps)
    practical_share = practical_figures(sweeps, "percent_of_ceiling")
    found: dict[tuple, dict] = {}
    for s in sweeps:
        if s["backend"] == PRACTICAL:
            continue
        for p in s["points"]:
            key = _point_key(s, p)
            ratio = _fraction(p.get("train_samples_per_s"), practical.get(key))
            if ratio and ratio > 1 and ratio > found.get(key, {}).get("ratio", 0):
                hidden = "-".join(map(str, p.get("hidden") or []))
                found[key] = {
                    "sweep": s["sweep"],
                    "device": s["device"],
                    "point": f"{p['axis']} {p['value']}",
                    "shape": f"hidden {hidden or 'none'}, batch {p['batch_size']}",
                    "backend": s["backend"],
                    "ratio": ratio,
                    # the measured reason: how near each is to the machine's SGEMM ceiling there
                    "percent_of_ceiling": p.get("percent_of_ceiling"),
                    "practical_percent_of_ceiling": practical_share.get(key),
                }
    return sorted(found.values(), key=lambda r: -r["ratio"])


def overhead_rows(sweeps: list[dict]) -> list[dict]:
    """One row per (sweep, backend, device): the fit of time per step against batch size, the batch
    at which half the machine ceiling is reached, and the best figure against both ceilings."""
    practical = practical_figures(sweeps)
    rows = []
    for s in sweeps:
        fit, best = s["fit"], s["fit"].get("best") or {}
        point = next((p for p in s["points"] if p["axis"] == best.get("axis") and p["value"] == best.get("value")), {})
        half = fit.get("half_ceiling_batch")
        rows.append(
            {
                "sweep": s["sweep"],
                "backend": s["backend"],
                "mode": s.get("mode"),
                "device": s["device"],
                "fixed_us_per_step": fit.get("fixed_us_per_step"),
                "us_per_sample": fit.get("us_per_sample"),
                "r2": fit.get("r2"),
                "half_ceiling_batch": half if half is not None else NEVER,
                "best_gflops": best.get("gflops"),
                "best_at": f"{best['axis']} {best['value']}" if best else None,
                "best_percent_of_ceiling": best.get("percent_of_ceiling"),
                "best_fraction_of_fused": _fraction(
                    point.get("train_samples_per_s"), practical.get(_point_key(s, point)) if point else None
                ),
                "ceiling_gflops": s.get("machine_ceiling_gflops"),
                "failed_points": sum(p["status"] != "ok" for p in s["points"]),
            }
        )
    return rows


def write_csvs(results_dir: str | Path, summary: str | Path, overheads: str | Path) -> tuple[int, int]:
    import pandas as pd

    sweeps = load_sweeps(results_dir)
    a, b = summary_rows(sweeps), overhead_rows(sweeps)
    for rows, path in ((a, summary), (b, overheads)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)
    return len(a), len(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.sweeps", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--summary", default=None, help="default: RESULTS/sweeps/summary.csv")
    ap.add_argument("--overheads", default=None, help="default: RESULTS/sweeps/overheads.csv")
    args = ap.parse_args(argv)
    summary = args.summary or str(Path(args.results) / "sweeps" / "summary.csv")
    overheads = args.overheads or str(Path(args.results) / "sweeps" / "overheads.csv")
    try:
        n, m = write_csvs(args.results, summary, overheads)
    except SweepFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {summary} ({n} points) and {overheads} ({m} fits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
