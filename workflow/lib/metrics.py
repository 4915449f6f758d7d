"""Quality metrics, all from scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def labels_from_output(out: np.ndarray, task: str) -> np.ndarray:
    """Class labels from a sigmoid column (P(class 1) > 0.5) or softmax rows (argmax)."""
    if out.shape[1] == 1:
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1).astype(np.int64)


def classification(y: np.ndarray, out: np.ndarray, task: str, n_classes: int) -> dict:
    """accuracy, precision, recall, F1 (binary: of class 1; multiclass: macro), confusion matrix,
    and the cross-entropy loss of the predicted probabilities."""
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
    """One metric per epoch for the time-to-target curve (accuracy or mse), without the full report:
    the full classification report costs ~20 ms a call, over a thousand calls for an 800-epoch run."""
    if name == "accuracy":
        return float(skm.accuracy_score(y, labels_from_output(out, task)))
    if name == "mse":
        return float(
            skm.mean_squared_error(np.asarray(y, dtype=np.float64).ravel(), np.asarray(out, np.float64).ravel())
        )
    raise ValueError(f"time to target takes accuracy or mse, not {name!r}: set the catalogue entry's target metric")
