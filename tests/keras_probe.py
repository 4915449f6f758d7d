"""Runs one Keras backend in this process (Keras hosts one backend per process) and prints JSON.

    python -m tests.keras_probe keras-jax [--dtype float64] [--epochs 5]

For every parity case: the backend's per-epoch losses and final parameters against the NumPy
reference trained on backends.base.parity_spec(backend, spec) (Adam epsilon "hat" for Keras), the
largest relative loss deviation, the largest parameter and prediction deviations, and the result's
extra and epoch_seconds. tests/test_keras.py runs it in a subprocess per backend.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import backends
from backends.base import parity_spec
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule

# (label, spec fields, optimizer): every spec kind, Adam and SGD (plain and momentum), a last partial
# batch (n=50, batch 8) and a full batch.
CASES: list[tuple[str, dict, OptimizerSpec]] = [
    ("linear-sgd", dict(kind="linear", head="linear"), OptimizerSpec("sgd", learning_rate=0.05)),
    ("logistic-adam", dict(kind="logistic", head="sigmoid"), OptimizerSpec("adam", learning_rate=0.01)),
    ("softmax-momentum", dict(kind="softmax", head="softmax"), OptimizerSpec("sgd", learning_rate=0.1, momentum=0.9)),
    ("softmax-adam", dict(kind="softmax", head="softmax"), OptimizerSpec("adam", learning_rate=0.01, eps=1e-3)),
    ("mlp-tanh-bce-adam", dict(kind="mlp", head="sigmoid", hidden=(8, 4), activation="tanh"), OptimizerSpec("adam")),
    ("mlp-relu-cce-adam", dict(kind="mlp", head="softmax", hidden=(5,), activation="relu"), OptimizerSpec("adam")),
    (
        "mlp-sigmoid-mse-momentum",
        dict(kind="mlp", head="linear", hidden=(4,), activation="sigmoid"),
        OptimizerSpec("sgd", learning_rate=0.05, momentum=0.5),
    ),
    (
        "mlp-linear-mse-fullbatch",
        dict(kind="mlp", head="linear", hidden=(3,), activation="linear", batch_size=None),
        OptimizerSpec("sgd", learning_rate=0.08),
    ),
]


def problem(head: str) -> tuple[np.ndarray, np.ndarray, int]:
    """50 samples of 3 features; targets for the head; the number of outputs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    if head == "linear":
        return X, X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(50, 1)), 1
    if head == "sigmoid":
        return X, (X[:, :1] + X[:, 1:2] > 0).astype(float), 1
    return X, np.eye(3)[rng.integers(0, 3, 50)], 3


def case_spec(fields: dict, opt: OptimizerSpec, dtype: str, epochs: int) -> Spec:
    fields = {"activation": "linear", "batch_size": 8, **fields}
    n_out = 3 if fields["head"] == "softmax" else 1
    return Spec(n_inputs=3, n_outputs=n_out, epochs=epochs, optimizer=opt, dtype=dtype, **fields)


def run(name: str, dtype: str, epochs: int) -> dict:
    be = backends.get_backend(name, threads=1)
    ref = backends.get_backend(backends.REFERENCE)
    out: dict = {"backend": name, "dtype": dtype, "thread_settings": be.thread_settings(), "cases": {}}
    for label, fields, opt in CASES:
        spec = case_spec(fields, opt, dtype, epochs)
        X, Y = problem(spec.head)[:2]
        X, Y = X.astype(dtype), Y.astype(dtype)
        p0, sched = init_params(spec, seed=1), make_schedule(spec, len(X), seed=2)
        want = ref.train(parity_spec(be, spec), X, Y, p0, sched)
        got = be.train(spec, X, Y, p0, sched, record_params=True)
        rel = np.abs(got.loss_history - want.loss_history) / np.abs(want.loss_history)
        pred = be.predict(spec, got.params, X)
        out["cases"][label] = {
            "loss": got.loss_history.tolist(),
            "reference_loss": want.loss_history.tolist(),
            "max_rel_loss": float(rel.max()),
            "max_param_diff": max(float(np.abs(a - b).max()) for a, b in zip(got.params, want.params)),
            "max_pred_diff": float(np.abs(pred - ref.predict(spec, want.params, X)).max()),
            "param_dtypes": sorted({str(p.dtype) for p in got.params}),
            "history_last_equals_params": all(np.array_equal(a, b) for a, b in zip(got.param_history[-1], got.params)),
            "epoch_seconds": got.epoch_seconds.tolist(),
            "extra": got.extra,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("backend")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.backend, args.dtype, args.epochs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
