"""The History section's figures: each figure of an experiment over commits, one line per like-for-like
series (backend, device, fingerprint), change points marked (reports/history.py finds them)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from reports import history as hist  # noqa: E402
from reports.plots import MARKERS, color  # noqa: E402


def history_figure(history: dict, experiment: str, figure: str = "train_samples_per_s") -> Figure | None:
    """`figure` of one experiment against commit order (x: the store's parents, oldest left), log y for
    samples/s; each series a line, each confirmed step a dashed line with its ratio."""
    found = [s for s in hist.series(history) if s["experiment"] == experiment]
    found = [s for s in found if any(figure in p["figures"] for p in s["points"])]
    if not found:
        return None
    parents = history.get("parents") or []
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.subplots()
    fps = sorted({s["like"] for s in found})
    for s in found:
        pts, values, _ = hist.figure_series(s, figure)
        style = "-" if fps.index(s["like"]) == 0 else ":"
        label = f"{s['backend']} ({s['device']})" + ("" if len(fps) == 1 else f" [{s['fingerprint']}]")
        marker = MARKERS[fps.index(s["like"]) % len(MARKERS)]
        ax.plot([p["order"] for p in pts], values, style, marker=marker, color=color(s["backend"]), label=label)
        for c in hist.steps_of(s, figure):
            x = pts[c["index"]]["order"] - 0.5
            ax.axvline(x, color=color(s["backend"]), linestyle="--", linewidth=1)
            ax.annotate(f"×{c['ratio']:.2g}", (x, values[c["index"]]), fontsize=8, color=color(s["backend"]))
    ax.set_xticks(range(len(parents)), [hist.short(p["commit"])[:7] for p in parents], rotation=45, fontsize=7)
    if figure == "train_samples_per_s":
        ax.set_yscale("log")
    ax.set_xlabel("commit (oldest left)")
    ax.set_ylabel(hist.FIGURES[figure][0])
    ax.set_title(f"{experiment}: {hist.FIGURES[figure][0]} over commits", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
