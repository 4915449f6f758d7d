"""Figures of the sweeps, each with a one-line reading of what it shows (the report's caption).

Per sweep and device: samples/s against batch size (log-log), and achieved GFLOP/s against batch
size and against hidden width with the machine ceiling as a horizontal line (roofline-style).
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from reports.plots import color
from reports.sweeps import PRACTICAL

SIZE = (4.6, 3.1)


def _series(sweep: dict, axis: str, key: str) -> tuple[list[int], list[float]]:
    pts = [p for p in sweep["points"] if p["axis"] == axis and p.get(key)]
    pts.sort(key=lambda p: p["value"])
    return [p["value"] for p in pts], [p[key] for p in pts]


def _label(s: dict) -> str:
    return f"{s['backend']} ({s.get('mode') or '?'})"


def _axes(xlabel: str, ylabel: str, title: str):
    fig = Figure(figsize=SIZE)
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    return fig, ax


def _plot(ax, s: dict, x: list, y: list) -> None:
    style = {"linestyle": "--", "linewidth": 2.2} if s["backend"] == PRACTICAL else {}
    ax.plot(x, y, marker="o", markersize=3, color=color(s["backend"]), label=_label(s), **style)


def throughput_vs_batch(sweeps: list[dict]) -> tuple[Figure | None, str]:
    """samples/s against batch size, log-log, one line per backend (sweeps of one sweep and device)."""
    lines = [(s, *_series(s, "batch", "train_samples_per_s")) for s in sweeps]
    lines = [(s, x, y) for s, x, y in lines if len(x) >= 2]
    if not lines:
        return None, ""
    s0 = lines[0][0]
    fig, ax = _axes("batch size", "train samples/s", f"{s0['sweep']} ({s0['device']}): samples/s vs batch")
    for s, x, y in lines:
        _plot(ax, s, x, y)
    ax.legend(fontsize=7)
    gains = sorted((y[-1] / y[0], s["backend"]) for s, x, y in lines)
    x = lines[0][1]
    reading = (
        f"From batch {x[0]} to {x[-1]} samples/s grow {gains[0][0]:.1f}x ({gains[0][1]}) to {gains[-1][0]:.1f}x "
        f"({gains[-1][1]}): a line rising with slope 1 is a fixed cost per step dominating; a flat one is "
        "per-sample work."
    )
    return fig, reading


def gflops_vs(sweeps: list[dict], axis: str) -> tuple[Figure | None, str]:
    """Achieved GFLOP/s against batch size or hidden width, the machine ceiling as a horizontal line."""
    lines = [(s, *_series(s, axis, "gflops")) for s in sweeps]
    lines = [(s, x, y) for s, x, y in lines if len(x) >= 2]
    if not lines:
        return None, ""
    s0 = lines[0][0]
    what = "batch size" if axis == "batch" else "width of the first hidden layer"
    fig, ax = _axes(what, "achieved GFLOP/s", f"{s0['sweep']} ({s0['device']}): GFLOP/s vs {axis}")
    for s, x, y in lines:
        _plot(ax, s, x, y)
    ceiling = s0.get("machine_ceiling_gflops")
    if ceiling:
        ax.axhline(ceiling, color="black", linewidth=1, linestyle=":", label=f"SGEMM ceiling {ceiling:.3g}")
    ax.legend(fontsize=7)
    best_g, best_x, best_s = max((max(y), x[y.index(max(y))], s) for s, x, y in lines)
    share = f" = {100 * best_g / ceiling:.0f}% of the SGEMM ceiling (dotted)" if ceiling else ""
    reading = f"Best: {_label(best_s)} {best_g:.3g} GFLOP/s at {axis} {best_x}{share}"
    if axis == "width":
        ends = [(y[-1] / y[0], s["backend"]) for s, x, y in lines if y[0] > 0 and math.isfinite(y[-1] / y[0])]
        lo, hi = min(ends), max(ends)
        reading += f"; wider layers (more work per step) raise GFLOP/s {lo[0]:.1f}x ({lo[1]})"
        reading += f" to {hi[0]:.1f}x ({hi[1]})."
    else:
        reading += "; the gap between a line and the ceiling at small batches is per-step overhead, not arithmetic."
    return fig, reading


def sweep_figures(sweeps: list[dict]) -> list[tuple[Figure, str, str]]:
    """(figure, alt text, one-line reading) for every sweep and device, in the report's order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in sweeps:
        groups.setdefault((s["sweep"], s["device"]), []).append(s)
    out = []
    for (name, device), ss in groups.items():
        for fig, reading, alt in (
            (*throughput_vs_batch(ss), f"{name} {device}: samples/s vs batch size"),
            (*gflops_vs(ss, "batch"), f"{name} {device}: GFLOP/s vs batch size"),
            (*gflops_vs(ss, "width"), f"{name} {device}: GFLOP/s vs width"),
        ):
            if fig is not None:
                out.append((fig, alt, reading))
    return out
