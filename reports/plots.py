"""Matplotlib figures of the run results, as PNG bytes or files (Agg, no display needed).

Every function takes the run dicts of reports.results and returns a Figure, or None when the
runs hold nothing to draw (a failed run has no loss curve, a 10-D dataset no decision grid).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from reports.png import save  # noqa: E402
from reports.results import (  # noqa: E402
    labels_in_order,
    num,
    reference_name,
    run_label,
    sort_key,
    speedup_vs_slowest,
    timing,
)
from reports.seeds import timed_runs  # noqa: E402

BACKEND_COLORS = {
    "numpy": "#333333",
    "torch": "#d9480f",
    "torch-eager": "#f08c5a",
    "tensorflow": "#e6a100",
    "tensorflow-eager": "#f5cf5c",
    "jax": "#3b5bdb",
    "jax-eager": "#8ea2f0",
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]
CLASS_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974"]


def color(backend: str) -> str:
    if backend in BACKEND_COLORS:
        return BACKEND_COLORS[backend]
    extra = ["#2b8a3e", "#862e9c", "#0b7285", "#5c940d", "#a61e4d"]
    return extra[sum(map(ord, backend)) % len(extra)]


def describe(run: dict) -> str:
    """'torch (compiled, cpu)': the backend with its mode and device, for legends and axes."""
    return f"{run['backend']} ({run.get('mode') or '?'}, {run['device']})"


def _losses(run: dict) -> np.ndarray:
    vals = [num(v) for v in run.get("loss_history") or []]
    a = np.array([np.nan if v is None else v for v in vals], dtype=float)
    a[~np.isfinite(a) | (a <= 0)] = np.nan  # log axis: zero/negative/inf points are left out
    return a


def loss_curves(runs: list[dict]) -> Figure | None:
    """The per-epoch training loss of every run of one experiment, overlaid, log y."""
    curves = [(r, _losses(r)) for r in sorted(runs, key=sort_key)]
    curves = [(r, a) for r, a in curves if np.isfinite(a).any()]
    if not curves:
        return None
    fig = Figure(figsize=(5.4, 3.3))
    ax = fig.subplots()
    reference = reference_name(runs)
    n_epochs = max(len(a) for _, a in curves)
    every = max(n_epochs // 8, 1)
    for i, (r, a) in enumerate(curves):
        ref = r["backend"] == reference
        # coincident curves (that is the point of parity) stay tellable apart by staggered markers
        ax.plot(
            np.arange(1, len(a) + 1),
            a,
            color=color(r["backend"]),
            lw=5.0 if ref else 1.4,
            alpha=0.35 if ref else 0.95,
            ls="--" if r["device"] == "gpu" else "-",
            marker=None if ref else MARKERS[i % len(MARKERS)],
            markevery=(i % every, every),
            markersize=4,
            label=describe(r) + (" [reference]" if ref else "") + ("" if r["status"] == "ok" else f" [{r['status']}]"),
            zorder=1 if ref else 2,
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title(f"{runs[0]['experiment']}: loss per epoch", fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    return fig


def _grid(run: dict) -> dict | None:
    """The run's decision grid as arrays: kind 'proba' (binary), 'classes' (multiclass) or 'values' (regression)."""
    g = run.get("decision_grid")
    if run["status"] != "ok" or not isinstance(g, dict):
        return None
    try:
        ny, nx = (int(v) for v in g["shape"])
        extent = [float(g["xlim"][0]), float(g["xlim"][1]), float(g["ylim"][0]), float(g["ylim"][1])]
        for kind in ("proba", "classes", "values"):
            if g.get(kind) is not None:
                z = np.array([np.nan if v is None else v for v in g[kind]], dtype=float).reshape(ny, nx)
                return {"kind": kind, "z": z, "extent": extent}
    except (KeyError, TypeError, ValueError):
        pass  # a malformed grid is drawn as "no grid", never guessed at
    return None


def dataset_points(results_dir: str | Path, dataset: str, limit: int = 600) -> tuple[np.ndarray, np.ndarray] | None:
    """Training points of a 2-D dataset from results/datasets/{dataset}.npz (subsampled), if present."""
    path = Path(results_dir) / "datasets" / f"{dataset}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            X, y = np.asarray(z["X_train"], dtype=float), np.asarray(z["y_train"])
    except (OSError, ValueError, KeyError):
        return None
    if X.ndim != 2 or X.shape[1] != 2:
        return None
    if len(X) > limit:
        idx = np.random.default_rng(0).choice(len(X), size=limit, replace=False)
        X, y = X[idx], y[idx]
    return X, y


def _points_fit(points: tuple[np.ndarray, np.ndarray], extent: list[float]) -> bool:
    """The grid is drawn in the model's input space; overlay the raw points only if they lie in it."""
    X = points[0]
    inside = (X[:, 0] >= extent[0]) & (X[:, 0] <= extent[1]) & (X[:, 1] >= extent[2]) & (X[:, 1] <= extent[3])
    return bool(inside.mean() >= 0.9)


def decision_boundaries(
    runs: list[dict], points: tuple[np.ndarray, np.ndarray] | None = None, max_cols: int = 7
) -> Figure | None:
    """Decision regions of the runs of one 2-D dataset: a row per experiment, a column per run.

    Binary: P(class 1) with the 0.5 contour; multiclass: the predicted class; regression: the
    predicted value. Training points are overlaid when they lie in the grid's plane.
    """
    cells = [(r, g) for r in sorted(runs, key=sort_key) if (g := _grid(r)) is not None]
    if not cells:
        return None
    experiments = sorted({r["experiment"] for r, _ in cells})
    labels = labels_in_order([r for r, _ in cells])
    ncols = min(len(labels), max_cols)
    rows_per_exp = math.ceil(len(labels) / ncols)
    nrows = len(experiments) * rows_per_exp
    fig = Figure(figsize=(2.1 * ncols + 0.4, 2.15 * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    class_grids = [g["z"] for _, g in cells if g["kind"] == "classes"]
    n_classes = int(max(np.nanmax(z) for z in class_grids)) + 1 if class_grids else 2
    cmap = ListedColormap(CLASS_COLORS[: min(max(n_classes, 2), len(CLASS_COLORS))])
    for r, g in cells:
        i, j = experiments.index(r["experiment"]), labels.index(run_label(r))
        ax = axes[i * rows_per_exp + j // ncols, j % ncols]
        ax.set_axis_on()
        z, extent = g["z"], g["extent"]
        common = {"origin": "lower", "extent": extent, "aspect": "auto"}
        if g["kind"] == "proba":
            ax.imshow(z, cmap="RdBu_r", vmin=0, vmax=1, **common)
            if np.nanmin(z) < 0.5 < np.nanmax(z):
                xs, ys = np.linspace(*extent[:2], z.shape[1]), np.linspace(*extent[2:], z.shape[0])
                ax.contour(xs, ys, z, levels=[0.5], colors="k", linewidths=1.0)
        elif g["kind"] == "classes":
            ax.imshow(z, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, alpha=0.75, interpolation="nearest", **common)
        else:
            ax.imshow(z, cmap="viridis", **common)
        if points is not None and _points_fit(points, extent):
            X, y = points
            if g["kind"] == "values":
                ax.scatter(
                    X[:, 0],
                    X[:, 1],
                    c=y,
                    cmap="viridis",
                    vmin=np.nanmin(z),
                    vmax=np.nanmax(z),
                    s=14,
                    edgecolors="w",
                    linewidths=0.6,
                )
            else:
                cls = np.clip(np.asarray(y, dtype=int), 0, len(CLASS_COLORS) - 1)
                ax.scatter(X[:, 0], X[:, 1], c=[CLASS_COLORS[c] for c in cls], s=5, edgecolors="k", linewidths=0.2)
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(run_label(r), fontsize=8)
        if j % ncols == 0:
            ax.set_ylabel(r["experiment"], fontsize=9)
    title = "predicted value" if all(g["kind"] == "values" for _, g in cells) else "decision regions"
    fig.suptitle(f"{cells[0][0]['dataset']}: {title}", fontsize=11)
    fig.tight_layout()
    return fig


def confusion_matrices(runs: list[dict], max_cols: int = 6) -> Figure | None:
    """Train and test confusion matrices of every ok run of one experiment (row-normalized colour, counts)."""
    panels = []
    for r in sorted(runs, key=sort_key):
        if r["status"] != "ok":
            continue
        for split in ("train", "test"):
            cm = ((r.get("metrics") or {}).get(split) or {}).get("confusion_matrix")
            if cm:
                panels.append((r, split, np.asarray(cm, dtype=float)))
    if not panels:
        return None
    k = panels[0][2].shape[0]
    ncols = min(len(panels), max_cols)
    nrows = math.ceil(len(panels) / ncols)
    size = 1.9 if k <= 4 else 2.6
    fig = Figure(figsize=(size * ncols + 0.3, size * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    names = panels[0][0].get("class_names") or [str(i) for i in range(k)]
    for n, (r, split, cm) in enumerate(panels):
        ax = axes[n // ncols, n % ncols]
        ax.set_axis_on()
        rows = cm.sum(axis=1, keepdims=True)
        ax.imshow(np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
        if k <= 10:
            fs = 9 if k <= 4 else 6
            for (i, j), v in np.ndenumerate(cm):
                frac = v / rows[i, 0] if rows[i, 0] else 0
                ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=fs, color="w" if frac > 0.6 else "k")
        ticks = list(range(k)) if k <= 10 else []
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels([names[t] for t in ticks] if len(names) == k else ticks, fontsize=7)
        ax.set_yticklabels([names[t] for t in ticks] if len(names) == k else ticks, fontsize=7)
        ax.set_title(f"{run_label(r)} · {split}", fontsize=8)
        if n % ncols == 0:
            ax.set_ylabel("true", fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
    fig.suptitle(f"{panels[0][0]['experiment']}: confusion matrices", fontsize=11)
    fig.tight_layout()
    return fig


def throughput_bars(runs: list[dict]) -> Figure | None:
    """Train and inference samples/s per run of one experiment: median bars, quartile whiskers, speed-up labels."""
    ok = [r for r in sorted(runs, key=sort_key) if r["status"] == "ok"]
    kinds = [k for k in ("train", "inference") if speedup_vs_slowest(ok, k)]
    if not kinds:
        return None
    fig = Figure(figsize=(5.0, (0.32 * len(ok) + 1.1) * len(kinds) + 0.3))
    axes = fig.subplots(len(kinds), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds):
        speed = speedup_vs_slowest(ok, kind)
        rows = [r for r in ok if run_label(r) in speed][::-1]  # first run on top
        med = np.array([num(timing(r, f"{kind}_samples_per_s", "median")) for r in rows])
        lo = np.array([num(timing(r, f"{kind}_samples_per_s", "q1")) for r in rows], dtype=float)
        hi = np.array([num(timing(r, f"{kind}_samples_per_s", "q3")) for r in rows], dtype=float)
        lo = np.where(np.isfinite(lo), lo, med)
        hi = np.where(np.isfinite(hi), hi, med)
        err = np.vstack([np.clip(med - lo, 0, None), np.clip(hi - med, 0, None)])
        y = np.arange(len(rows))
        ax.barh(y, med, xerr=err, color=[color(r["backend"]) for r in rows], capsize=3, error_kw={"lw": 1})
        ax.set_yticks(y)
        ax.set_yticklabels([describe(r) for r in rows], fontsize=9)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        log = med.max() / med.min() > 30
        if log:
            ax.set_xscale("log")
        top = hi.max()
        for yi, r, h in zip(y, rows, hi):
            ax.text(
                h * (1.08 if log else 1.0) + (0 if log else 0.02 * top),
                yi,
                f"×{speed[run_label(r)]:.1f}",
                va="center",
                fontsize=9,
            )
        ax.set_xlim(right=top * (4 if log else 1.18))
        ax.set_xlabel(f"{kind} samples/s (median, quartiles)", fontsize=9)
        ax.grid(True, axis="x", alpha=0.25)
        ax.set_title(f"{kind}: speed-up vs slowest", fontsize=10)
    fig.suptitle(f"{ok[0]['experiment']}: throughput", fontsize=11)
    fig.tight_layout()
    return fig


def by_experiment(runs: list[dict]) -> dict[str, list[dict]]:
    """The timed training of each job (one curve per backend-device), by experiment."""
    out: dict[str, list[dict]] = {}
    for r in sorted(timed_runs(runs), key=sort_key):
        out.setdefault(r["experiment"], []).append(r)
    return out


def by_dataset(runs: list[dict]) -> dict[str, list[dict]]:
    """The timed training of each job, by dataset."""
    out: dict[str, list[dict]] = {}
    for r in sorted(timed_runs(runs), key=sort_key):
        out.setdefault(r["dataset"], []).append(r)
    return out


def write_figures(
    runs: list[dict],
    out_dir: str | Path,
    results_dir: str | Path | None = None,
    rendered: dict[str, bytes] | None = None,
    kinds: tuple[str, ...] = ("loss", "confusion", "throughput"),
) -> list[Path]:
    """Every figure as out_dir/{kind}-{experiment or dataset}.png (for snakemake --report); returns the
    paths. `rendered`: PNGs already drawn for the report page, by file name, written as they are.
    `kinds`: the per-experiment figures to draw (the decision boundaries are drawn for every 2-D dataset)."""
    out_dir = Path(out_dir)
    rendered = rendered or {}
    written = []

    def put(name: str, make) -> None:
        path = out_dir / name
        if name in rendered:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rendered[name])
            written.append(path)
        elif (fig := make()) is not None:
            written.append(save(fig, path))

    for exp, rs in by_experiment(runs).items():
        for kind, make in (("loss", loss_curves), ("confusion", confusion_matrices), ("throughput", throughput_bars)):
            if kind in kinds:
                put(f"{kind}-{exp}.png", lambda make=make, rs=rs: make(rs))
    for ds, rs in by_dataset(runs).items():
        points = (lambda ds=ds: dataset_points(results_dir, ds)) if results_dir else (lambda: None)
        put(f"decision-{ds}.png", lambda rs=rs, points=points: decision_boundaries(rs, points()))
    return written
