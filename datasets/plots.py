"""Pictures of a dataset: a scatter of the 2-D sets, price plots of the hotel regressions,
a grid of MNIST digits. Matplotlib's object API on the Agg canvas: no display, no pyplot
global state, so it is safe beside other plotting code in the same process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datasets.base import Dataset, DatasetError

CMAP = "tab10"


def _title(ds: Dataset) -> str:
    t = f"{ds.name} ({ds.meta.get('source', '?')}): {ds.meta['n_train']} train, {ds.meta['n_test']} test"
    if ds.meta.get("reconstructed_labels"):
        t += "\nlabels reconstructed by a documented rule"
    return t


def _axis_names(ds: Dataset) -> list[str]:
    return ds.meta.get("feature_names") or [f"x{i}" for i in range(ds.X_train.shape[1])]


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def scatter(ds: Dataset, path: str | Path) -> Path:
    """One PNG of a dataset with 1 or 2 features: classes by colour, train 'o', test 'x'.

    Regression sets plot the target against the first feature (price vs distance), coloured
    by the second feature where there is one (rating).
    """
    n_features = ds.X_train.shape[1]
    if n_features > 2:
        raise DatasetError(f"scatter: dataset {ds.name!r} has {n_features} features; it draws 1-D or 2-D data only")
    names = _axis_names(ds)
    fig = _figure((7, 5.5))
    ax = fig.subplots()
    if ds.task == "regression":
        color = None
        if n_features == 2:
            lo = min(ds.X_train[:, 1].min(), ds.X_test[:, 1].min())
            hi = max(ds.X_train[:, 1].max(), ds.X_test[:, 1].max())
            color = dict(cmap="viridis", vmin=lo, vmax=hi)
        for X, y, marker, label in ((ds.X_train, ds.y_train, "o", "train"), (ds.X_test, ds.y_test, "X", "test")):
            kw = dict(c=X[:, 1], **color) if color else dict(c="C0" if label == "train" else "C3")
            sc = ax.scatter(X[:, 0], y, marker=marker, s=60, edgecolors="k", label=label, **kw)
        if color:
            fig.colorbar(sc, ax=ax, label=names[1])
        ax.set_xlabel(names[0])
        ax.set_ylabel(ds.meta.get("target_name", "y"))
    else:
        class_names = ds.meta.get("class_names") or [str(c) for c in np.unique(ds.y_train)]
        X = ds.X_train if n_features == 2 else np.c_[ds.X_train, np.zeros(len(ds.X_train))]
        Xt = ds.X_test if n_features == 2 else np.c_[ds.X_test, np.zeros(len(ds.X_test))]
        small = len(ds.y_train) < 100
        for k, cname in enumerate(class_names):
            color = colormaps[CMAP](k % 10)
            m = ds.y_train == k
            ax.scatter(X[m, 0], X[m, 1], s=60 if small else 8, color=color, alpha=0.8, label=f"{cname} (train)")
            m = ds.y_test == k
            ax.scatter(
                Xt[m, 0], Xt[m, 1], s=80 if small else 18, color=color, marker="x", linewidths=1.5,
                label=f"{cname} (test)",
            )  # fmt: skip
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1] if n_features == 2 else "")
    ax.legend(fontsize=8, loc="best", ncols=2)
    ax.set_title(_title(ds), fontsize=10)
    return _save(fig, path)


def sample_grid(ds: Dataset, path: str | Path, rows: int = 4, cols: int = 8) -> Path:
    """A grid of the first rows*cols training images (28x28), each titled with its label."""
    side = int(round(np.sqrt(ds.X_train.shape[1])))
    if side * side != ds.X_train.shape[1]:
        raise DatasetError(f"sample_grid: dataset {ds.name!r} has {ds.X_train.shape[1]} features, not square images")
    n = min(rows * cols, len(ds.X_train))
    fig = _figure((cols * 1.2, rows * 1.4))
    axes = fig.subplots(rows, cols)
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < n:
            ax.imshow(ds.X_train[i].reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"label {ds.y_train[i]}", fontsize=8)
    fig.suptitle(_title(ds) + f"\nfirst {n} training images", fontsize=10)
    return _save(fig, path)


def plot(ds: Dataset, path: str | Path) -> Path:
    """The dataset's picture: a sample grid for image data, else a scatter."""
    if ds.X_train.shape[1] > 2:
        return sample_grid(ds, path)
    return scatter(ds, path)
