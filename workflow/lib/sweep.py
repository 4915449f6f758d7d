"""Sweeps ("where the time goes"): one small spec trained at many batch sizes and hidden widths, each
point timed by workflow.lib.measure exactly as a run is, on synthetic data of the spec's shape.

From the batch sweep, a least-squares line of the time per step against the batch size: its intercept
is the fixed cost of a step (framework dispatch, kernel launches, the optimizer's update of every
parameter), its slope the marginal cost of one more sample. The line is fitted to relative residuals
(weights 1 / time), so the small batches, where the fixed cost shows, count as much as the large ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backends.spec import OptimizerSpec, Spec

MIN_ROWS = 512  # an epoch of synthetic data has at least this many rows (small batches: many steps)


class SweepError(ValueError):
    """A sweep that cannot run; the message names the problem and the fix."""


@dataclass(frozen=True)
class Point:
    """One sweep point: which axis it belongs to, the value swept, and the spec trained there."""

    axis: str  # "batch" or "width"
    value: int
    spec: Spec

    @property
    def batch_size(self) -> int:
        return int(self.spec.batch_size)

    @property
    def width(self) -> int:
        return int(self.spec.hidden[0])


def base_spec(entry: dict, epochs: int = 2) -> Spec:
    """The config's sweep spec (workflow/schemas/config.schema.yaml, sweeps.specs) as a Spec."""
    try:
        return Spec(
            kind="mlp",
            n_inputs=int(entry["inputs"]),
            n_outputs=int(entry["outputs"]),
            hidden=tuple(entry["hidden"]),
            activation=entry["activation"],
            head=entry["head"],
            epochs=epochs,
            batch_size=int(entry["batch_size"]),
            drop_last=False,
            shuffle=True,
            optimizer=OptimizerSpec(**entry["optimizer"]),
            dtype="float32",
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SweepError(f"sweep spec {entry!r} is not a valid dense spec ({e}); see sweeps.specs in the schema") from e


def scaled_hidden(hidden: tuple[int, ...], width: int) -> tuple[int, ...]:
    """Every hidden layer scaled by the same factor, the first one to `width` (each at least 1)."""
    return tuple(max(1, round(h * width / hidden[0])) for h in hidden)


def points(entry: dict, batch_sizes: list[int], widths: list[int]) -> list[Point]:
    """The batch sweep (the spec's widths) then the width sweep (the spec's batch size)."""
    spec = base_spec(entry)
    d = spec.to_dict()
    out = [Point("batch", int(b), Spec.from_dict({**d, "batch_size": int(b)})) for b in sorted(batch_sizes)]
    for w in sorted(widths):
        out.append(Point("width", int(w), Spec.from_dict({**d, "hidden": scaled_hidden(spec.hidden, int(w))})))
    return out


def rows_for(batch_size: int, steps_per_epoch: int) -> int:
    """Rows of synthetic data: whole batches only, `steps_per_epoch` of them or enough for MIN_ROWS."""
    b = int(batch_size)
    return b * max(int(steps_per_epoch), -(-MIN_ROWS // b))


def synthetic(spec: Spec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal X; Y random one-hot rows (softmax), random 0/1 (sigmoid) or normal (linear), seeded."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, spec.n_inputs), dtype=np.float32)
    if spec.head == "softmax":
        Y = np.eye(spec.n_outputs, dtype=np.float32)[rng.integers(0, spec.n_outputs, n)]
    elif spec.head == "sigmoid":
        Y = rng.integers(0, 2, (n, spec.n_outputs)).astype(np.float32)
    else:
        Y = rng.standard_normal((n, spec.n_outputs), dtype=np.float32)
    return X, Y


def fit_step_cost(batch_sizes, seconds_per_step) -> dict:
    """Least-squares line seconds_per_step = intercept + slope * batch (weights 1 / time: relative
    residuals). Returns the intercept in microseconds per step, the slope in microseconds per sample,
    the coefficient of determination, and the points used (finite, positive times only)."""
    b = np.asarray(batch_sizes, dtype=np.float64)
    t = np.asarray(seconds_per_step, dtype=np.float64)
    keep = np.isfinite(b) & np.isfinite(t) & (t > 0)
    b, t = b[keep], t[keep]
    if len(np.unique(b)) < 2:
        return {"fixed_us_per_step": None, "us_per_sample": None, "r2": None, "n_points": int(b.size)}
    slope, intercept = np.polyfit(b, t, 1, w=1 / t)
    pred = intercept + slope * b
    ss_res, ss_tot = float(np.sum(((t - pred) / t) ** 2)), float(np.sum(((t - t.mean()) / t) ** 2))
    return {
        "fixed_us_per_step": float(intercept * 1e6),
        "us_per_sample": float(slope * 1e6),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
        "n_points": int(b.size),
    }


def half_ceiling_batch(batch_sizes, gflops, ceiling: float | None) -> int | None:
    """The smallest swept batch size whose GFLOP/s reach half the machine ceiling; None if none does."""
    if not ceiling:
        return None
    for b, g in sorted(zip(batch_sizes, gflops)):
        if g is not None and np.isfinite(g) and g >= ceiling / 2:
            return int(b)
    return None


def summarize_points(rows: list[dict], ceiling: float | None) -> dict:
    """The fits of one job from its measured points (each {axis, value, batch_size, timings})."""
    batch = [r for r in rows if r["axis"] == "batch" and r.get("seconds_per_step")]
    fit = fit_step_cost([r["batch_size"] for r in batch], [r["seconds_per_step"] for r in batch])
    measured = [r for r in rows if r.get("gflops") is not None]
    best = max(measured, key=lambda r: r["gflops"], default=None)
    return {
        **fit,
        "half_ceiling_batch": half_ceiling_batch(
            [r["batch_size"] for r in batch], [r.get("gflops") for r in batch], ceiling
        ),
        "best": None if best is None else {k: best[k] for k in ("axis", "value", "gflops", "percent_of_ceiling")},
    }
