"""Real run result files for the report and checker tests, made by training small models.

Every run is trained by the NumPy reference backend (backends.get_backend("numpy")); metrics
come from scikit-learn, timings from the clock, divergence and failure from what actually
happens (a huge learning rate overflows, the reference refuses a GPU). Runs filed under other
registry names (torch, jax...) are also trained by the reference: reports/ only reads files,
and this keeps the tests free of framework imports while giving the report several backends
to lay out. Their `framework`/`mode` follow the registry; their `environment.versions` say
what really trained them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)

import backends
from backends.base import BackendError
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
from datasets import build
from datasets.base import Dataset
from datasets.preprocess import targets

GRID = 40  # decision grid resolution of the fixture (the pipeline uses 60)


@dataclass
class Case:
    """One experiment of the fixture: a dataset, a spec, and the figures a document reports."""

    name: str
    dataset: Dataset
    spec: Spec
    reported: list[dict] = field(default_factory=list)


def cases(seed: int = 0) -> dict[str, Case]:
    moons = build("moons", seed=seed, n_samples=400)
    X, y = make_blobs(n_samples=300, centers=[(-2, 0), (2, 0.5), (0, 2.5)], cluster_std=0.8, random_state=seed)
    blobs = Dataset(
        "blobs3",
        X[:240],
        y[:240],
        X[240:],
        y[240:],
        meta={"source": "test fixture", "task": "multiclass", "class_names": ["a", "b", "c"], "seed": seed},
    )
    rng = np.random.default_rng(seed)
    Xr = rng.normal(size=(200, 2))
    yr = Xr @ np.array([1.5, -2.0]) + 0.1 * rng.normal(size=200)
    line = Dataset(
        "line", Xr[:160], yr[:160], Xr[160:], yr[160:], meta={"source": "test fixture", "task": "regression"}
    )
    adam = OptimizerSpec("adam", learning_rate=0.05)
    return {
        "moons-logistic": Case(
            "moons-logistic",
            moons,
            Spec("logistic", 2, 1, head="sigmoid", epochs=8, optimizer=adam),
            [_reported("accuracy", "train", 0.86, "adl1 §2.2", 0.03)],
        ),
        "moons-mlp": Case(
            "moons-mlp",
            moons,
            Spec("mlp", 2, 1, hidden=(8, 4), activation="tanh", head="sigmoid", epochs=25, optimizer=adam),
            [_reported("accuracy", "train", 1.0, "adl1 §3.1", 0.02, "100% on the training data")],
        ),
        "blobs3-softmax": Case(
            "blobs3-softmax",
            blobs,
            Spec("softmax", 2, 3, head="softmax", epochs=10, optimizer=adam),
            [_reported("accuracy", "test", 0.99, "test fixture", 0.02)],
        ),
        "line-linear": Case(
            "line-linear",
            line,
            Spec("linear", 2, 1, head="linear", epochs=40, batch_size=None, optimizer=OptimizerSpec("sgd", 0.2)),
            [_reported("mse", "test", 0.01, "test fixture", 0.01)],
        ),
        # learning rate far past 2/lambda_max: the loss overflows and the run really diverges
        "line-diverge": Case(
            "line-diverge",
            line,
            Spec("linear", 2, 1, head="linear", epochs=60, batch_size=None, optimizer=OptimizerSpec("sgd", 8.0)),
        ),
    }


def _reported(metric: str, split: str, value: float, source: str, tolerance: float, note: str = "") -> dict:
    return {"metric": metric, "split": split, "value": value, "source": source, "note": note, "tolerance": tolerance}


def _predict_metrics(task: str, spec: Spec, out: np.ndarray, y: np.ndarray) -> dict:
    """scikit-learn metrics of predictions `out` (probabilities or values) against labels y."""
    if task == "regression":
        pred = out[:, 0]
        mse = float(mean_squared_error(y, pred))
        return {"mse": mse, "mae": float(mean_absolute_error(y, pred)), "r2": float(r2_score(y, pred)), "loss": mse}
    k = max(spec.n_outputs, 2)
    if task == "binary":
        pred = (out[:, 0] >= 0.5).astype(int)
        proba = np.column_stack([1 - out[:, 0], out[:, 0]])
        avg = "binary"
    else:
        pred = out.argmax(axis=1)
        proba = out / out.sum(axis=1, keepdims=True)
        avg = "macro"
    labels = list(range(k))
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(
            precision_score(y, pred, average=avg, labels=labels if avg == "macro" else None, zero_division=0)
        ),
        "recall": float(recall_score(y, pred, average=avg, labels=labels if avg == "macro" else None, zero_division=0)),
        "f1": float(f1_score(y, pred, average=avg, labels=labels if avg == "macro" else None, zero_division=0)),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "loss": float(log_loss(y, np.clip(proba, 1e-7, 1), labels=labels)),
    }


def _spread(raw: list[float], **extra) -> dict:
    a = np.asarray(raw, dtype=float)
    return {
        "median": float(np.median(a)),
        "p20": float(np.percentile(a, 20)),
        "p80": float(np.percentile(a, 80)),
        "raw": [float(v) for v in a],
        **extra,
    }


def _environment(versions: dict, dtype: str, device: str, threads: int) -> dict:
    env = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "device_name": "cpu",
        "precision": {"dtype": dtype, "tf32": False},
        "git_commit": None,
    }
    key = json.dumps({k: env[k] for k in ("cpu", "threads", "versions", "precision")} | {"device": device})
    env["fingerprint"] = hashlib.sha256(key.encode()).hexdigest()[:8]
    return env


def _grid(spec: Spec, trainer, params, X: np.ndarray, task: str) -> dict | None:
    if X.shape[1] != 2:
        return None
    pad = 0.5
    xlim = [float(X[:, 0].min() - pad), float(X[:, 0].max() + pad)]
    ylim = [float(X[:, 1].min() - pad), float(X[:, 1].max() + pad)]
    xx, yy = np.meshgrid(np.linspace(*xlim, GRID), np.linspace(*ylim, GRID))
    out = trainer.predict(spec, params, np.column_stack([xx.ravel(), yy.ravel()]))
    grid = {"xlim": xlim, "ylim": ylim, "shape": [GRID, GRID], "classes": None, "proba": None}
    if task == "regression":
        return {**grid, "values": [float(v) for v in out[:, 0]]}
    if task == "binary":
        return {**grid, "classes": (out[:, 0] >= 0.5).astype(int).tolist(), "proba": [float(v) for v in out[:, 0]]}
    return {**grid, "classes": out.argmax(axis=1).tolist()}


def train_run(case: Case, backend: str, device: str = "cpu", seed: int = 0, reference: dict | None = None) -> dict:
    """Train `case` with the NumPy reference and return the run result dict (schema_version 1)."""
    ds, spec = case.dataset, case.spec
    task = ds.task
    entry = backends.REGISTRY[backend]
    trainer = backends.get_backend("numpy", threads=1)
    run = {
        "schema_version": 1,
        "experiment": case.name,
        "dataset": ds.name,
        "task": task,
        "class_names": ds.meta.get("class_names") or [],
        "reconstructed_labels": bool(ds.meta.get("reconstructed_labels", False)),
        "backend": backend,
        "framework": entry.requires[0],
        "mode": entry.mode,
        "device": device,
        "spec": spec.to_dict(),
        "seed": seed,
        "threads": 1,
        "repeats": 1,
        "preprocessing": {"standardize": False},
        "status": "ok",
        "message": "",
        "metrics": {"train": None, "test": None},
        "loss_history": [],
        "reported": [],
        "timings": None,
        "memory": {"peak_rss_mb": None, "peak_device_bytes": None},
        "parity": None,
        "decision_grid": None,
        "environment": _environment(trainer.versions(), spec.dtype, device, 1),
        "mlflow": {"run_id": None, "experiment_id": None, "tracking_uri": None},
    }
    Y = targets(ds.y_train, task, spec.n_outputs)
    t_start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            res = trainer.train(
                spec,
                ds.X_train,
                Y,
                init_params(spec, seed),
                make_schedule(spec, len(ds.X_train), seed),
                device=device,
                record_params=True,
            )
    except BackendError as e:
        run["status"], run["message"] = "failed", f"BackendError: {e}"
        return run
    run["loss_history"] = [float(v) for v in res.loss_history]
    bad = np.flatnonzero(~np.isfinite(res.loss_history))
    run["memory"]["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if bad.size:
        run["status"] = "diverged"
        run["message"] = f"training loss became non-finite at epoch {int(bad[0]) + 1} of {spec.epochs}"
        return run
    splits = {"train": (ds.X_train, ds.y_train), "test": (ds.X_test, ds.y_test)}
    run["metrics"] = {
        s: _predict_metrics(task, spec, trainer.predict(spec, res.params, X), y) for s, (X, y) in splits.items()
    }
    n = make_schedule(spec, len(ds.X_train), seed).samples_per_epoch
    secs = [float(s) for s in res.epoch_seconds]
    batch = np.resize(ds.X_test, (1024, ds.X_test.shape[1]))
    infer = []
    for _ in range(5):
        t0 = time.perf_counter()
        trainer.predict(spec, res.params, batch)
        infer.append(1024 / (time.perf_counter() - t0))
    run["timings"] = {
        "compile_seconds": float(res.compile_seconds),
        "first_epoch_seconds": secs[0],
        "epoch_seconds": secs,
        "train_samples_per_s": _spread([n / s for s in secs[1:]] or [n / secs[0]]),
        "inference_samples_per_s": _spread(infer, batch_size=1024),
        "time_to_target": None,
        "total_train_seconds": float(sum(secs)),
    }
    for rep in case.reported:
        measured = run["metrics"][rep["split"]][rep["metric"]]
        diff = measured - rep["value"]
        run["reported"].append(
            {**rep, "measured": measured, "difference": diff, "within_tolerance": abs(diff) <= rep["tolerance"]}
        )
    if case.reported:
        run["timings"]["time_to_target"] = _time_to_target(case, trainer, res, secs, t_start)
    if reference is not None and reference["status"] == "ok":
        ref = np.asarray(reference["loss_history"])
        dev = np.abs(np.asarray(run["loss_history"]) - ref) / np.maximum(np.abs(ref), 1e-12)
        key = "mse" if task == "regression" else "accuracy"
        run["parity"] = {
            "reference": backends.REFERENCE,
            "max_rel_loss_deviation": float(dev.max()),
            "final_metric_difference": {key: run["metrics"]["test"][key] - reference["metrics"]["test"][key]},
        }
    run["decision_grid"] = _grid(spec, trainer, res.params, ds.X_train, task)
    return run


def _time_to_target(case: Case, trainer, res, secs: list[float], t_start: float) -> dict:
    """Seconds of training until the first reported figure is first reached (epoch granularity)."""
    rep = case.reported[0]
    X, y = (
        (case.dataset.X_train, case.dataset.y_train)
        if rep["split"] == "train"
        else (case.dataset.X_test, case.dataset.y_test)
    )
    lower_is_better = rep["metric"] in ("mse", "mae", "loss")
    out = {
        "metric": rep["metric"],
        "split": rep["split"],
        "target": rep["value"],
        "reached": False,
        "seconds": None,
        "epochs": None,
    }
    for epoch, params in enumerate(res.param_history):
        value = _predict_metrics(case.dataset.task, case.spec, trainer.predict(case.spec, params, X), y)[rep["metric"]]
        if (value <= rep["value"]) if lower_is_better else (value >= rep["value"]):
            out.update(reached=True, seconds=float(sum(secs[: epoch + 1])), epochs=epoch + 1)
            break
    return out


def write_run(results_dir: str | Path, run: dict) -> Path:
    path = Path(results_dir) / "runs" / run["experiment"] / f"{run['backend']}-{run['device']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1))
    return path


def build_results(
    results_dir: str | Path,
    seed: int = 0,
    names: tuple[str, ...] = ("numpy", "torch", "jax-eager"),
    problems: bool = True,
) -> list[dict]:
    """Train every fixture case for every backend name and write the results tree.

    Also writes the moons dataset (.npz, .json, .png), config.json and devices.json (no GPU).
    With problems: a run that really diverges (line-diverge) and one that really fails (the
    reference asked for a GPU it does not have; devices.json then lists a GPU for it).
    """
    results_dir = Path(results_dir)
    runs = []
    for name, case in cases(seed).items():
        if name == "line-diverge" and not problems:
            continue
        ref = train_run(case, backends.REFERENCE, seed=seed)
        runs.append(ref)
        if name != "line-diverge":
            runs += [train_run(case, b, seed=seed, reference=ref) for b in names if b != backends.REFERENCE]
    if problems:
        runs.append(train_run(cases(seed)["moons-mlp"], backends.REFERENCE, device="gpu", seed=seed))
    for r in runs:
        write_run(results_dir, r)
    _write_side_files(results_dir, names, seed, problems)
    return runs


def _write_side_files(results_dir: Path, names: tuple[str, ...], seed: int, problems: bool) -> None:
    from matplotlib.figure import Figure

    moons = cases(seed)["moons-mlp"].dataset
    ddir = results_dir / "datasets"
    moons.save(ddir / "moons.npz", ddir / "moons.json")
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.scatter(moons.X_train[:, 0], moons.X_train[:, 1], c=moons.y_train, s=6, cmap="coolwarm")
    ax.set_title("moons (train)")
    fig.savefig(ddir / "moons.png", dpi=80)
    config = {"seed": seed, "backends": list(names), "devices": "auto", "experiments": list(cases(seed))}
    (results_dir / "config.json").write_text(json.dumps(config, indent=2))
    devices = {n: {"devices": ["cpu"], "reason": "no CUDA device seen on this machine"} for n in names}
    if problems:
        devices[backends.REFERENCE] = {"devices": ["cpu", "gpu"], "reason": ""}  # config forced a GPU job
    (results_dir / "devices.json").write_text(json.dumps(devices, indent=2))
