"""One training job: data in, a complete run result out (NumPy only, framework-neutral).

Order of work: prepare the data in NumPy; make the initial parameters and the batch
schedule once from the seed; train once recording per-epoch parameters (the run whose
metrics are reported, and time to target); repeat the training `repeats` times for
steady-state throughput; time inference on a fixed batch; compute metrics with
scikit-learn; compare with the document's figures and with the reference backend.
"""

from __future__ import annotations

import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import backends
import datasets
from backends.numpy_reference import activate, forward
from backends.spec import Spec, init_params, make_schedule
from datasets.preprocess import Standardizer, targets
from workflow.lib import metrics as M
from workflow.lib.catalogue import LOWER_IS_BETTER, Experiment
from workflow.lib.environment import fingerprint

SCHEMA_VERSION = 1
GRID = 60


@dataclass(frozen=True)
class JobConfig:
    threads: int = 1
    repeats: int = 3
    seed: int = 0
    inference_batch: int = 1024
    epochs_scale: float = 1.0


@dataclass
class Prepared:
    """The experiment's data after NumPy preprocessing, plus what undoes it for metrics."""

    ds: datasets.Dataset
    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray
    n_outputs: int
    x_scaler: Standardizer | None
    y_scaler: Standardizer | None

    def to_model_x(self, X: np.ndarray) -> np.ndarray:
        return (self.x_scaler.transform(X) if self.x_scaler else X).astype(np.float32)

    def to_original_y(self, out: np.ndarray) -> np.ndarray:
        return self.y_scaler.inverse(out) if self.y_scaler else out


def prepare(ds: datasets.Dataset, exp: Experiment) -> Prepared:
    pre = exp.preprocess
    x_scaler = Standardizer.fit(ds.X_train) if pre.get("standardize_x") else None
    regression = ds.task == "regression"
    y_scaler = Standardizer.fit(ds.y_train) if regression and pre.get("standardize_y") else None
    # A softmax head has one unit per class, also for two classes (sdls1's blobs2); a sigmoid or
    # linear head has one unit.
    n_outputs = ds.n_classes if exp.entry["head"] == "softmax" else 1
    y = y_scaler.transform(ds.y_train) if y_scaler else ds.y_train
    p = Prepared(ds, ds.X_train, ds.X_test, targets(y, ds.task, n_outputs), n_outputs, x_scaler, y_scaler)
    p.X_train, p.X_test = p.to_model_x(ds.X_train), p.to_model_x(ds.X_test)
    return p


def evaluate(prep: Prepared, out: np.ndarray, split: str) -> dict:
    ds = prep.ds
    y = ds.y_train if split == "train" else ds.y_test
    if ds.task == "regression":
        scale = float(prep.y_scaler.scale[0]) if prep.y_scaler else 1.0
        return M.regression(y, prep.to_original_y(out), loss_scale=scale)
    return M.classification(y, out, ds.task, ds.n_classes)


def run_job(
    exp: Experiment,
    backend_name: str,
    device: str,
    dataset_path: str | Path,
    cfg: JobConfig,
    reference: dict | None = None,
) -> dict:
    """Train one (experiment, backend, device) and return its run result. Never raises for a
    training failure: the result then has status "failed" and the message."""
    ds = datasets.load(dataset_path)
    prep = prepare(ds, exp)
    spec = exp.spec(n_inputs=prep.X_train.shape[1], n_outputs=prep.n_outputs, epochs_scale=cfg.epochs_scale)
    seed = exp.entry.get("seed", cfg.seed)
    result = _skeleton(exp, ds, backend_name, device, spec, seed, cfg, prep)
    backend = backends.get_backend(backend_name, threads=cfg.threads)
    result["framework"], result["mode"] = backend.framework, backend.mode
    # device_info may raise for a device the backend does not see: recorded as a failed run below
    result["environment"] = fingerprint(
        device, _safe(lambda: backend.device_info(device)) or {}, cfg.threads, spec.dtype
    )
    result["environment"]["thread_settings"] = backend.thread_settings()
    try:
        _train_and_measure(result, backend, spec, prep, seed, cfg, device, exp)
    except Exception as e:  # noqa: BLE001 - recorded in the result, the pipeline goes on
        result["status"] = "failed"
        result["message"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
    result["memory"] = {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_bytes": _safe(lambda: backend.peak_device_memory(device)),
    }
    result["parity"] = parity(result, reference) if reference and backend_name != backends.REFERENCE else None
    return result


def _skeleton(exp, ds, backend_name, device, spec: Spec, seed, cfg, prep) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": exp.name,
        "dataset": ds.name,
        "dataset_checksum": ds.meta.get("checksum"),
        "task": ds.task,
        "class_names": ds.meta.get("class_names"),
        "reconstructed_labels": bool(ds.meta.get("reconstructed_labels")),
        "stands_in_for": exp.entry.get("stands_in_for"),
        "backend": backend_name,
        "framework": None,
        "mode": None,
        "device": device,
        "spec": spec.to_dict(),
        "seed": seed,
        "threads": cfg.threads,
        "repeats": cfg.repeats,
        "preprocessing": {
            **exp.preprocess,
            "x_scaler": prep.x_scaler.to_dict() if prep.x_scaler else None,
            "y_scaler": prep.y_scaler.to_dict() if prep.y_scaler else None,
            "targets": "one-hot" if exp.entry["head"] == "softmax" else "column",
        },
        "status": "ok",
        "message": "",
        "metrics": {"train": None, "test": None},
        "loss_history": [],
        "metric_history": {},
        "reported": [dict(f) for f in exp.reported],
        "timings": {},
        "memory": {},
        "parity": None,
        "decision_grid": None,
        "environment": {},
        "mlflow": None,
    }


def _train_and_measure(result, backend, spec: Spec, prep: Prepared, seed, cfg: JobConfig, device, exp) -> None:
    backend.check_device(device)
    p0 = init_params(spec, seed)
    schedule = make_schedule(spec, len(prep.X_train), seed + 1)

    t0 = time.perf_counter()
    run = backend.train(spec, prep.X_train, prep.Y_train.astype(spec.dtype), p0, schedule, device, record_params=True)
    total = time.perf_counter() - t0
    losses = np.asarray(run.loss_history, dtype=np.float64)
    result["loss_history"] = [float(v) if np.isfinite(v) else None for v in losses]
    epoch_s = np.asarray(run.epoch_seconds, dtype=np.float64)
    timings = result["timings"]
    timings.update(
        compile_seconds=float(run.compile_seconds),
        first_epoch_seconds=float(epoch_s[0]),
        epoch_seconds=epoch_s.tolist(),
        total_train_seconds=total,
        samples_per_epoch=schedule.samples_per_epoch,
        steps_per_epoch=schedule.steps_per_epoch,
    )
    if not (np.all(np.isfinite(losses)) and all(np.all(np.isfinite(p)) for p in run.params)):
        # 1-based, like the loss curves' epoch axis
        bad = int(np.argmin(np.isfinite(losses))) + 1 if not np.all(np.isfinite(losses)) else len(losses)
        result["status"] = "diverged"
        lr = spec.optimizer.learning_rate
        result["message"] = f"loss became NaN/inf at epoch {bad}; lower the learning rate ({lr}) or standardize inputs"
        return

    train_out = backend.predict(spec, run.params, prep.X_train, device)
    test_out = backend.predict(spec, run.params, prep.X_test, device)
    result["metrics"] = {"train": evaluate(prep, train_out, "train"), "test": evaluate(prep, test_out, "test")}
    for fig in result["reported"]:
        _compare(fig, result["metrics"])

    target = exp.target()
    history, ttt = _time_to_target(spec, prep, run.param_history, epoch_s, target)
    result["metric_history"] = history
    timings["time_to_target"] = ttt

    throughputs = []
    for _ in range(cfg.repeats):
        rep = backend.train(spec, prep.X_train, prep.Y_train.astype(spec.dtype), p0, schedule, device)
        throughputs.append(steady_throughput(schedule, rep.epoch_seconds))
    timings["train_samples_per_s"] = M.summarize(throughputs)
    timings["inference_samples_per_s"] = {
        **M.summarize(_inference(backend, spec, run.params, prep.X_test, cfg, device)),
        "batch_size": cfg.inference_batch,
    }
    if prep.ds.X_train.shape[1] == 2:
        result["decision_grid"] = _decision_grid(backend, spec, run.params, prep, device)


def steady_throughput(schedule, epoch_seconds) -> float:
    """Samples per second over the epochs after the first (the first holds compilation/warm-up)."""
    secs = np.asarray(epoch_seconds, dtype=np.float64)
    steady = secs[1:] if len(secs) > 1 else secs
    return schedule.samples_per_epoch * len(steady) / float(steady.sum())


def _compare(fig: dict, metrics: dict) -> None:
    measured = (metrics.get(fig["split"]) or {}).get(fig["metric"])
    fig["measured"] = measured
    if fig.get("value") is None or measured is None:
        fig["difference"], fig["within_tolerance"] = None, None
        return
    fig["difference"] = measured - fig["value"]
    tol = fig.get("tolerance")
    fig["within_tolerance"] = None if tol is None else bool(abs(fig["difference"]) <= tol)


def _time_to_target(spec, prep: Prepared, param_history, epoch_s, target) -> tuple[dict, dict | None]:
    """Per-epoch train/test accuracy (or MSE) from the recorded parameters, evaluated in NumPy,
    and the wall seconds from the start of training to the first epoch that meets the target."""
    metric = (target or {}).get("metric") or ("mse" if prep.ds.task == "regression" else "accuracy")
    history: dict[str, list[float]] = {f"train_{metric}": [], f"test_{metric}": []}
    for params in param_history or []:
        for split, X in (("train", prep.X_train), ("test", prep.X_test)):
            zs, _ = forward(spec, [p.astype(np.float64) for p in params], X.astype(np.float64))
            m = evaluate(prep, activate(zs[-1], spec.head), split).get(metric)
            history[f"{split}_{metric}"].append(m)
    if target is None:
        return history, None
    series = history.get(f"{target['split']}_{target['metric']}", [])
    goal = {"metric": target["metric"], "split": target["split"], "target": target["value"]}
    lower = target["metric"] in LOWER_IS_BETTER
    cum = np.cumsum(epoch_s)
    for e, v in enumerate(series):
        if v is not None and (v <= target["value"] if lower else v >= target["value"]):
            return history, {**goal, "reached": True, "epochs": e + 1, "seconds": float(cum[e])}
    best = (min if lower else max)((v for v in series if v is not None), default=None)
    return history, {**goal, "reached": False, "epochs": None, "seconds": None, "best": best}


def _inference(backend, spec, params, X, cfg: JobConfig, device) -> list[float]:
    reps = int(np.ceil(cfg.inference_batch / len(X)))
    batch = np.tile(X, (reps, 1))[: cfg.inference_batch]
    backend.predict(spec, params, batch, device)  # warm-up (compilation)
    out = []
    for _ in range(max(cfg.repeats, 5)):
        t0 = time.perf_counter()
        backend.predict(spec, params, batch, device)
        out.append(len(batch) / (time.perf_counter() - t0))
    return out


def _decision_grid(backend, spec, params, prep: Prepared, device) -> dict:
    X = np.vstack([prep.ds.X_train, prep.ds.X_test])
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32)
    out = backend.predict(spec, params, prep.to_model_x(pts), device)
    if prep.ds.task == "regression":
        return {
            "xlim": [float(xs[0]), float(xs[-1])],
            "ylim": [float(ys[0]), float(ys[-1])],
            "shape": [GRID, GRID],
            "classes": None,
            "values": np.round(prep.to_original_y(out)[:, 0], 4).tolist(),
            "proba": None,
        }
    return {
        "xlim": [float(xs[0]), float(xs[-1])],
        "ylim": [float(ys[0]), float(ys[-1])],
        "shape": [GRID, GRID],
        "classes": M.labels_from_output(out, prep.ds.task).tolist(),
        "proba": np.round(out[:, -1], 4).tolist() if prep.ds.task == "binary" else None,  # P(class 1)
    }


def parity(result: dict, reference: dict) -> dict:
    """How far this run's loss curve and final metrics are from the reference's."""
    out = {"reference": reference.get("backend"), "max_rel_loss_deviation": None, "final_metric_difference": {}}
    if reference.get("status") != "ok" or result["status"] != "ok":
        out["note"] = "not comparable: reference or run not ok"
        return out
    a = np.asarray(result["loss_history"], dtype=np.float64)
    b = np.asarray(reference["loss_history"], dtype=np.float64)
    if a.shape == b.shape and a.size:
        out["max_rel_loss_deviation"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
    keys = ("mse", "r2") if result["task"] == "regression" else ("accuracy", "f1")
    for split in ("train", "test"):
        for k in keys:
            mine = (result["metrics"].get(split) or {}).get(k)
            ref = (reference["metrics"].get(split) or {}).get(k)
            if mine is not None and ref is not None:
                out["final_metric_difference"][f"{split}_{k}"] = mine - ref
    return out


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an optional measurement
        return None
