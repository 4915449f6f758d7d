"""Quality metrics from scikit-learn; the per-epoch curves in NumPy (history_metric says why)."""

from __future__ import annotations

import numpy as np


def labels_from_output(out: np.ndarray, task: str) -> np.ndarray:
    """Class labels from a sigmoid column (P(class 1) > 0.5) or softmax rows (argmax)."""
    if out.shape[1] == 1:
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1).astype(np.int64)


def classification(y: np.ndarray, out: np.ndarray, task: str, n_classes: int) -> dict:
    """accuracy, precision, recall, F1 (binary: of class 1; multiclass: macro), confusion matrix,
    and the cross-entropy loss of the predicted probabilities."""
    from sklearn import metrics as skm  # here, not at import: a timing replica never evaluates (1 s of imports)

    pred = labels_from_output(out, task)
    labels = list(range(n_classes))
    average = "binary" if task == "binary" else "macro"
    p, r, f, _ = skm.precision_recall_fscore_support(
        y, pred, labels=labels if average == "macro" else None, average=average, zero_division=0
    )
    proba = np.column_stack([1 - out[:, 0], out[:, 0]]) if out.shape[1] == 1 else out
    proba = np.clip(proba.astype(np.float64), 1e-15, 1)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "loss": float(skm.log_loss(y, proba / proba.sum(axis=1, keepdims=True), labels=labels)),
        "n": int(len(y)),
    }


def regression(y: np.ndarray, pred: np.ndarray, loss_scale: float = 1.0) -> dict:
    """MSE, MAE, R2 in the target's original units; loss is the MSE in training units."""
    from sklearn import metrics as skm

    y, pred = np.asarray(y, dtype=np.float64).ravel(), np.asarray(pred, dtype=np.float64).ravel()
    mse = float(skm.mean_squared_error(y, pred))
    return {
        "mse": mse,
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None,
        "loss": mse / loss_scale**2,
        "n": int(len(y)),
    }


def history_metric(name: str, y: np.ndarray, out: np.ndarray, task: str) -> float:
    """One metric per epoch for the time-to-target curve: accuracy (the share of matching labels) or
    mse (the mean squared error), written in NumPy. scikit-learn's own input checks (type_of_target)
    cost about 1 ms a call, and a job evaluates every epoch of every seed on both splits: 58,000
    calls and 52 s of the reference job's 175 s in the default run. tests/test_metrics.py holds it
    equal to accuracy_score and mean_squared_error."""
    if name == "accuracy":
        return float(np.mean(np.asarray(y).ravel() == labels_from_output(out, task)))
    if name == "mse":
        diff = np.asarray(y, dtype=np.float64).ravel() - np.asarray(out, np.float64).ravel()
        return float(np.mean(diff * diff))
    raise ValueError(f"time to target takes accuracy or mse, not {name!r}: set the catalogue entry's target metric")
