"""One training job: data in, a complete run result out (NumPy only, framework-neutral).

Order of work, per seed: make the initial parameters and the batch schedule from the seed;
for a timed seed (the first, or all with time_all_seeds), time steady-state training and
inference in a timing slot first (measure.py), so the first epoch holds the compilation; then
train once, untimed, recording per-epoch parameters (the run whose metrics are reported, and
time to target); compute metrics with scikit-learn; compare with the document's figures and,
seed by seed, with the reference backend.
"""

from __future__ import annotations

import copy
import functools
import json
import resource
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import backends
import datasets
from backends.base import parity_spec
from backends.spec import Spec, init_params, make_schedule
from datasets.preprocess import Standardizer, targets
from reports import run_schema
from workflow.lib import metrics as M
from workflow.lib.catalogue import Experiment, within
from workflow.lib.curves import time_to_target
from workflow.lib.environment import fingerprint
from workflow.lib.measure import TimingConfig, measure, measure_compiled_first
from workflow.lib.parity import float32_error, parity, seed_spread

GRID = 60


class RunResult(dict):
    """A run result (the JSON of workflow/schemas/run_result.schema.yaml) that also holds, in this
    process only, the quality training's final parameters [W0, b0, ...] (None before training ends):
    MLflow logging stores them (workflow.lib.artifacts); no JSON writer sees the attribute."""

    weights: list[np.ndarray] | None = None


@dataclass(frozen=True)
class JobConfig:
    """What decides a job's result besides the experiment; the defaults live in the config schema."""

    threads: int
    repeats: int
    seeds: list[int]
    inference_batch: int
    epochs_scale: float
    min_repeat_seconds: float
    results: str = "results"
    ceiling_gflops: float | None = None  # results/machine.json's, when the calibration ran
    time_all_seeds: bool = False
    framework_warmup_seconds: float | None = None  # measure.warm_up's, paid once by the job's process

    def timing(self) -> TimingConfig:
        return TimingConfig(self.threads, self.repeats, self.min_repeat_seconds, self.inference_batch, self.results)


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
    references: dict[int, dict] | None = None,
) -> Iterator[dict]:
    """Train one (experiment, backend, device) once per seed of cfg.seeds, yielding each seed's run
    result as it is done. Never raises for a training failure: that result then has status
    "failed" and the message. references: the reference backend's results by seed, for parity
    (every seed the reference trained: after a kink crossing the final metrics face their spread)."""
    ds = datasets.load(dataset_path)
    prep = prepare(ds, exp)
    spec = exp.spec(n_inputs=prep.X_train.shape[1], n_outputs=prep.n_outputs, epochs_scale=cfg.epochs_scale)
    backend = backends.get_backend(backend_name, threads=cfg.threads)
    # One environment for every experiment and seed of the job (git, package metadata, the CPU: read once).
    # device_info may raise for a device the backend does not see: each seed's run is then recorded as failed.
    info = _safe(lambda: backend.device_info(device)) or {}
    key = json.dumps(info, sort_keys=True, default=str)
    environment = copy.deepcopy(_job_environment(device, key, cfg.threads, spec.dtype))
    environment["thread_settings"] = backend.thread_settings()
    keys = ("mse", "r2") if ds.task == "regression" else ("accuracy", "f1")
    spread = seed_spread(references or {}, keys)  # the reference's final test metrics over its seeds
    pace: dict | None = None  # the first timed seed's timings: the untimed seeds' time to target uses its pace
    for i, seed in enumerate(cfg.seeds):
        timed = cfg.time_all_seeds or i == 0
        result = RunResult(_skeleton(exp, ds, backend_name, device, spec, seed, cfg, prep))
        result["framework"], result["mode"] = backend.framework, backend.mode
        result["environment"] = copy.deepcopy(environment)
        try:
            _train_and_measure(result, backend, spec, prep, seed, cfg, device, exp, timed, pace)
        except Exception as e:  # noqa: BLE001 - recorded in the result, the pipeline goes on
            result["status"] = "failed"
            result["message"] = f"{type(e).__name__}: {e}"
            result["traceback"] = traceback.format_exc()
        if timed and pace is None and result["timings"].get("steady_epoch_seconds"):
            pace = {**result["timings"], "seed": seed}
        result["memory"] = {
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_device_bytes": _safe(lambda: backend.peak_device_memory(device)),
        }
        reference = (references or {}).get(seed)
        if reference and backend_name != backends.REFERENCE:
            result["parity"] = parity(result, _comparable_reference(reference, backend, spec, prep, seed), spread)
        yield result


@functools.cache
def _job_environment(device: str, info_json: str, threads: int, dtype: str) -> dict:
    """The fingerprint, once per job process and (device, threads, dtype): reading every installed
    distribution's metadata and git's status took 4.7% of the reference job's time when done per
    experiment (18 a job). Callers deep-copy it."""
    return fingerprint(device, json.loads(info_json), threads, dtype)


def time_only(exp: Experiment, backend, device: str, dataset_path: str | Path, cfg: JobConfig) -> dict:
    """The first seed's timings of one experiment in a timing replica (a fresh process started by the
    training job once its own work is done: one more independent sample of what a rerun gives). The
    network is compiled first, untimed and outside the slot: a replica's compile time is not quoted
    (the job's own, cold, is), and the slot is the run's one serial resource."""
    prep = prepare(datasets.load(dataset_path), exp)
    spec = exp.spec(n_inputs=prep.X_train.shape[1], n_outputs=prep.n_outputs, epochs_scale=cfg.epochs_scale)
    backend.check_device(device)
    seed = cfg.seeds[0]
    Y = prep.Y_train.astype(spec.dtype)
    return measure_compiled_first(
        backend, spec, prep.X_train, Y, init_params(spec, seed), seed + 1, device, cfg.timing(), cfg.ceiling_gflops
    )


def _comparable_reference(reference: dict, backend, spec: Spec, prep: Prepared, seed: int) -> dict:
    """The reference job's result, or, for a backend with its own fixed formulation (Keras's Adam:
    epsilon "hat"), the reference's loss curve for that formulation, trained here in NumPy."""
    pspec = parity_spec(backend, spec)
    if pspec == spec or reference.get("status") != "ok":
        return reference
    ref = backends.get_backend(backends.REFERENCE, threads=backend.threads)
    Y = prep.Y_train.astype(spec.dtype)
    schedule = make_schedule(spec, len(prep.X_train), seed + 1)
    run = ref.train(pspec, prep.X_train, Y, init_params(spec, seed), schedule)
    epsilon = pspec.optimizer.epsilon
    return {**reference, "loss_history": run.loss_history.tolist(), "formulation": f"adam epsilon {epsilon}"}


def _skeleton(exp, ds, backend_name, device, spec: Spec, seed, cfg, prep) -> dict:
    return {
        "schema_version": run_schema.version(),
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
        "flags": [],
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


def _train_and_measure(
    result, backend, spec: Spec, prep: Prepared, seed, cfg: JobConfig, device, exp, timed: bool, pace: dict | None
) -> None:
    """A timed seed is timed (measure.py) before its quality training; an untimed seed's time to
    target takes the timed seed's compile time and steady epoch (pace), when that seed finished."""
    result["timings"] = {"timed": timed}  # what a failure below leaves
    backend.check_device(device)
    p0 = init_params(spec, seed)
    Y = prep.Y_train.astype(spec.dtype)
    if timed:
        # Timed first; for the first seed in a fresh process, so the first epoch holds the compilation.
        timings = measure(backend, spec, prep.X_train, Y, p0, seed + 1, device, cfg.timing(), cfg.ceiling_gflops)
        timings["timed"] = True
        timings["framework_warmup_seconds"] = cfg.framework_warmup_seconds
    else:
        timings = {"timed": False, "variant": pace.get("variant"), "flags": []}
    result["timings"] = timings
    result["flags"] = list(timings["flags"])

    # The quality training: untimed (on the untimed CPUs), recording per-epoch parameters.
    schedule = make_schedule(spec, len(prep.X_train), seed + 1)
    started = time.time()
    run = backend.train(spec, prep.X_train, Y, p0, schedule, device, record_params=True)
    # Wall-clock start and end of the training the metrics come from: the MLflow run spans them, and
    # its per-epoch points are timestamped at start + the epochs' seconds so far.
    ended, seconds = time.time(), np.asarray(run.epoch_seconds, dtype=np.float64).tolist()
    timings["training_wall"] = {"start": started, "end": ended, "epoch_seconds": seconds}
    result.weights = run.params
    quality_variant = run.extra.get("variant")
    if timings.get("variant") and quality_variant and quality_variant not in timings["variant"]:
        result["flags"].append(f"variant changed: timed {timings['variant']}, quality run {quality_variant}")
    losses = np.asarray(run.loss_history, dtype=np.float64)
    result["loss_history"] = [float(v) if np.isfinite(v) else None for v in losses]
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

    history, ttt = time_to_target(spec, prep, run.param_history, timings if timed else pace, exp.target())
    if ttt and not timed:
        ttt["pace_from_seed"] = (pace or {}).get("seed")
    result["metric_history"] = history
    timings["time_to_target"] = ttt
    if backend.name == backends.REFERENCE:
        result["float32_error"] = float32_error(backend, spec, prep.X_train, Y, p0, schedule, losses)
    if prep.ds.X_train.shape[1] == 2:
        result["decision_grid"] = _decision_grid(backend, spec, run.params, prep, device)


def _compare(fig: dict, metrics: dict) -> None:
    measured = (metrics.get(fig["split"]) or {}).get(fig["metric"])
    fig["measured"] = measured
    if fig.get("value") is None or measured is None:
        fig["difference"], fig["within_tolerance"] = None, None
        return
    fig["difference"] = measured - fig["value"]
    tol = fig.get("tolerance")
    fig["within_tolerance"] = None if tol is None else within(measured, fig["value"], tol)


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


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an optional measurement
        return None
