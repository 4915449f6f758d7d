"""`fwbench compare THIS OTHER`: what moved between two results trees, in the terminal.

Every speed cell (experiment, backend-device timed in both trees) with its median samples/s in each,
the ratio this/other, the verdict of the measurement rules (workflow/lib/stats.py: "faster"/"slower"
only when the ratio of medians is beyond the factor AND Welch's t-test on the logs of the process
medians gives p < alpha; "not comparable" across environment fingerprints), its p-value and reason; then the quality
and parity cells that moved. --json prints the whole comparison (the rows of reports/compare.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from reports import compare
from reports.results import ResultsError, load_runs

EXIT_HELP = (
    "exit status 1 when a speed cell's verdict is 'slower' and this/other is below 1/THRESHOLD "
    "(default 1.0: every 'slower' verdict); with --any-change also a 'faster' verdict above THRESHOLD, "
    "a quality cell that moved or a parity cell that changed; 2 on bad input; else 0"
)


def verdict(row: dict) -> str:
    """The row's verdict; rows without one (before compare.py's rows carried it) are not comparable."""
    return row.get("verdict") or "not comparable"


def failures(c: dict, threshold: float, any_change: bool) -> list[str]:
    """The cells that make the exit status non-zero, one line each (see EXIT_HELP)."""
    out = []
    for r in c["speed"]:
        v, ratio = verdict(r), r.get("ratio")
        slow = v == "slower" and ratio is not None and ratio < 1 / threshold
        fast = any_change and v == "faster" and ratio is not None and ratio > threshold
        if slow or fast:
            out.append(f"{r['experiment']} {r['run']}: {v}, x{ratio:.3g}")
    if any_change:
        out += [f"{r['experiment']} {r['run']} {r['split']} {r['metric']}: moved" for r in c["quality"] if r["moved"]]
        out += [f"{r['experiment']} {r['run']}: parity changed" for r in c["parity"] if r["changed"]]
    return out


def _num(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def _machine_line(machine: dict) -> str:
    """Each machine reading in both trees, and which one the speed verdicts are per GFLOP/s of."""
    parts = []
    for name, m in machine.items():
        if m.get("ratio"):
            parts.append(f"{name}: this {m['this']:.1f} GFLOP/s, other {m['other']:.1f} GFLOP/s, x{m['ratio']:.3g}")
    if not parts:
        return "machine: no speed probe or ceiling in both trees (speed compared in samples/s)"
    return "machine " + "; ".join(parts)


def render(c: dict) -> str:
    head = ["experiment", "run", "this samples/s", "other samples/s", "this/other", "per GFLOP/s", "verdict", "p"]
    head.append("reason")
    speed = [head] + [
        [r["experiment"], r["run"], _num(r["this"]), _num(r["other"]), _num(r.get("samples_ratio", r["ratio"]))]
        + [_num(r["ratio"]) if r.get("basis") else "-", verdict(r)]
        + [_num(r.get("p_value"), 2), r.get("reason") or ("" if "verdict" in r else "no verdict in this comparison")]
        for r in c["speed"]
    ]
    parts = [
        f"like for like: {'yes' if c['like_for_like'] else 'no'} (fingerprints this "
        f"{', '.join(c['fingerprints']['this'])}; other {', '.join(c['fingerprints']['other'])})",
        _machine_line(c.get("machine") or {}),
        "",
        f"speed ({len(c['speed'])} cells timed in both):",
        table(speed) if c["speed"] else "  none",
    ]
    moved = [r for r in c["quality"] if r["moved"]]
    parts += ["", f"quality: {len(moved)} of {len(c['quality'])} cells moved beyond their seed spread"]
    if moved:
        rows = [["experiment", "run", "split", "metric", "this", "other", "delta"]]
        rows += [
            [r["experiment"], r["run"], r["split"], r["metric"], _num(r["this"]["value"], 4)]
            + [_num(r["other"]["value"], 4), _num(r["delta"], 3)]
            for r in moved
        ]
        parts.append(table(rows))
    changed = [r for r in c["parity"] if r["changed"]]
    parts.append(f"parity: {len(changed)} cells changed side of their bound")
    parts += [f"  {r['experiment']} {r['run']}" for r in changed]
    parts += [
        f"only in one tree or another status: {r['experiment']} {r['run']} {r['this']} / {r['other']}"
        for r in c["runs"]
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="fwbench compare",
        description=__doc__,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("this", help="a results directory (the one being judged)")
    ap.add_argument("other", help="the results directory to compare it with")
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON instead of tables")
    ap.add_argument("--threshold", type=float, default=1.0, help="the factor a cell must move by to fail (>= 1)")
    ap.add_argument("--any-change", action="store_true", help="fail on any change, not only a slowdown")
    ap.add_argument(
        "--basis",
        choices=["auto", "speed-probe", "ceiling", "samples"],
        default="auto",
        help="what speed is divided by before the verdict: auto (default) takes the speed probe read beside each"
        " process's timed section where both trees have it, else the calibrate ceiling, else samples/s as they are",
    )
    args = ap.parse_args(argv)
    if not (args.threshold >= 1 and math.isfinite(args.threshold)):
        print(f"error: --threshold {args.threshold} must be a factor of at least 1 (1.2 = 20%)", file=sys.stderr)
        return 2
    try:
        asked = args.basis.replace("-", " ")
        c = compare.compare(load_runs(Path(args.this)), load_runs(Path(args.other)), asked)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bad = failures(c, args.threshold, args.any_change)
    if args.json:
        print(json.dumps({**c, "failures": bad}, indent=1, sort_keys=True, default=str))
    else:
        print(render(c))
        print(f"\n{len(bad)} cells past the threshold" + "".join(f"\n  {b}" for b in bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
