"""Parity: a run's loss curve and final metrics against the reference backend's, within bounds that
float32 numerics and ReLU kinks allow (docs/design.md, "Parity").

Before the first kink crossing (the first step where one of the reference's float64 ReLU
pre-activations lies within float32 rounding of zero) every correct float32 run follows the same
trajectory up to rounding: its curve may differ from the reference's by PARITY_FACTOR x the larger of
the reference's own float32-vs-float64 deviation and sqrt(steps) x eps. From that epoch on a correct
run may take the other side of that kink, and the curves part by what a crossing does: the reference
measures it in the same job, training float64 again with those pre-activations on the other side of
the kink, and the curve may differ by PARITY_FACTOR x that deviation (so far in training). The final
test metrics, once a crossing is possible, must lie within the reference's spread over the seeds.
"""

from __future__ import annotations

import numpy as np

from backends.numpy_reference import KinkWatch
from backends.spec import Spec

# The factor covers kernels that sum in other orders or fuse multiply-adds (measured on the CI config,
# AVX-512 Xeon: torch, XLA and TF float32 curves within 0.01-2.3x of the float32 term) and, after a
# crossing, which of the near-kink pre-activations a run happens to cross (the default run's
# mnist10k-mlp, 5 seeds, 2-core AMD EPYC, 2026-12-04: every backend within 4.4x of the crossing run's
# deviation so far, keras-torch at seed 0 the nearest; tests/test_parity.py runs 5 seeds at 1 epoch).
PARITY_FACTOR = 10.0
# A pre-activation z is within float32 rounding of zero when |z| <= KINK_TOLERANCE x eps x scale,
# scale = sum_i |a_i w_i| + |b|: a float32 dot's typical rounding error is about u x scale (u = eps/2).
KINK_TOLERANCE = 1.0
F32_EPS = float(np.finfo(np.float32).eps)


def float32_error(backend, spec: Spec, X, Y, p0, schedule, losses) -> dict:
    """The reference's own rounding error: its loss curve at the spec's precision against the same
    training in float64; with ReLU layers, where the first kink crossing can happen and, from there,
    how far a float64 training that crosses those kinks strays (the other backends' bounds)."""
    spec64 = Spec.from_dict({**spec.to_dict(), "dtype": "float64"})
    p64 = [p.astype(np.float64) for p in p0]
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    relu = spec.activation == "relu" and bool(spec.hidden)
    watch = KinkWatch(KINK_TOLERANCE * F32_EPS, until_first=True) if relu else None
    exact = backend.train(spec64, X64, Y64, p64, schedule, kinks=watch)
    exact_losses = np.asarray(exact.loss_history, dtype=np.float64)
    out = {
        "dtype": spec.dtype,
        "float64_loss_history": exact_losses.tolist(),
        "max_rel_deviation": max_rel(losses, exact_losses),
        "steps": schedule.steps_per_epoch * schedule.epochs,
        "kink_crossing_epoch": exact.extra.get("kink_crossing_epoch"),
        "kink_entries": exact.extra.get("kink_entries", 0),
        "kink_loss_deviation": None,
    }
    if out["kink_crossing_epoch"] is not None:
        # The reference's own rounding before any crossing (its whole-curve deviation may hold a
        # crossing of its own: 2.6e-3 at seed 1 of mnist10k-mlp, which hid a 1.01x learning rate).
        before = rel(np.asarray(losses), exact_losses)[: out["kink_crossing_epoch"] - 1]
        out["max_rel_deviation_before_kink"] = float(before.max()) if before.size else 0.0
        crossed = backend.train(spec64, X64, Y64, p64, schedule, kinks=KinkWatch(KINK_TOLERANCE * F32_EPS, flip=True))
        out["kink_loss_deviation"] = rel(np.asarray(crossed.loss_history), exact_losses).tolist()
        out["kink_entries"] = crossed.extra.get("kink_entries", 0)  # every step's, as the crossing run crossed them
    return out


def parity_bound(float32_error: dict | None, dtype: str) -> float | None:
    """The float32 bound: what rounding alone allows (the whole curve when no kink can be crossed): the
    reference's own float32-vs-float64 deviation before its first kink crossing, or sqrt(steps) x eps."""
    if not float32_error:
        return None
    eps = float(np.finfo(np.dtype(dtype)).eps)
    own = float32_error.get("max_rel_deviation_before_kink", float32_error["max_rel_deviation"])
    if dtype == "float64":
        own = float32_error["max_rel_deviation"]
    return float(PARITY_FACTOR * max(own, np.sqrt(float32_error["steps"]) * eps))


def epoch_bounds(float32_error: dict | None, dtype: str, epochs: int) -> list[float] | None:
    """Each epoch's bound: the float32 bound before the first kink crossing, from its epoch on
    PARITY_FACTOR x the larger of the float32 term and the crossing run's largest deviation so far."""
    bound = parity_bound(float32_error, dtype)
    if bound is None:
        return None
    first, crossing = float32_error.get("kink_crossing_epoch"), float32_error.get("kink_loss_deviation")
    if first is None or crossing is None or dtype == "float64":
        return [bound] * epochs
    so_far = np.maximum.accumulate(np.asarray(crossing, dtype=np.float64))
    last = len(so_far) - 1  # a curve longer than the record keeps its largest deviation so far
    return [bound if e + 1 < first else max(bound, PARITY_FACTOR * float(so_far[min(e, last)])) for e in range(epochs)]


def seed_spread(references: dict[int, dict], keys: tuple[str, ...]) -> dict[str, float]:
    """Max minus min over the reference's seeds of each final test metric (at least two seeds)."""
    out = {}
    for k in keys:
        values = [
            (r.get("metrics") or {}).get("test", {}).get(k) for r in references.values() if r.get("status") == "ok"
        ]
        values = [v for v in values if v is not None]
        if len(values) >= 2:
            out[f"test_{k}"] = max(values) - min(values)
    return out


def parity(result: dict, reference: dict, spread: dict[str, float] | None = None) -> dict:
    """How far this run's loss curve and final metrics are from the reference's, and the bounds
    (module docstring). spread: seed_spread of the reference's runs of this experiment."""
    out = {"reference": reference.get("backend"), "max_rel_loss_deviation": None, "final_metric_difference": {}}
    out["formulation"] = reference.get("formulation", "as the spec")
    f32 = reference.get("float32_error")
    out["bound"] = parity_bound(f32, result["spec"]["dtype"])
    out["kink_crossing_epoch"] = (f32 or {}).get("kink_crossing_epoch")
    out["bound_rule"] = (
        f"{PARITY_FACTOR:g} x max(reference float32-vs-float64 deviation, sqrt(steps) x machine epsilon) before the "
        f"first kink crossing; from it, {PARITY_FACTOR:g} x the kink-crossing run's deviation so far, and the final "
        "test metrics within the reference's seed spread"
    )
    if reference.get("status") != "ok" or result["status"] != "ok":
        out["note"] = "not comparable: reference or run not ok"
        return out
    a = np.asarray(result["loss_history"], dtype=np.float64)
    b = np.asarray(reference["loss_history"], dtype=np.float64)
    keys = ("mse", "r2") if result["task"] == "regression" else ("accuracy", "f1")
    for split in ("train", "test"):
        for k in keys:
            mine = (result["metrics"].get(split) or {}).get(k)
            ref = (reference["metrics"].get(split) or {}).get(k)
            if mine is not None and ref is not None:
                out["final_metric_difference"][f"{split}_{k}"] = mine - ref
    bounds = epoch_bounds(f32, result["spec"]["dtype"], len(b))
    if not (a.shape == b.shape and a.size) or bounds is None:
        return out
    deviation = rel(a, b)
    out["max_rel_loss_deviation"] = float(deviation.max())
    worst = int(np.argmax(deviation / np.asarray(bounds)))
    out["worst_epoch"] = {"epoch": worst + 1, "deviation": float(deviation[worst]), "bound": bounds[worst]}
    verdicts = [bool(np.all(deviation <= np.asarray(bounds)))]
    if out["kink_crossing_epoch"] is not None and spread:
        out["seed_spread"] = dict(spread)
        out["within_seed_spread"] = all(abs(out["final_metric_difference"][m]) <= s for m, s in spread.items())
        verdicts.append(out["within_seed_spread"])
    out["within_bound"] = all(verdicts)
    if not verdicts[0]:
        w = out["worst_epoch"]
        result["flags"].append(
            f"parity: loss curve {w['deviation']:.2e} from the reference at epoch {w['epoch']}, beyond its bound "
            f"{w['bound']:.2e} (first kink crossing: epoch {out['kink_crossing_epoch']})"
        )
    if out.get("within_seed_spread") is False:
        result["flags"].append(
            f"parity: final test metrics {out['final_metric_difference']} beyond the reference's seed spread {spread}"
        )
    return out


def rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-12)


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(rel(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))))
