"""The Keras backends (Sequential + compile + fit), each in its own process: Keras hosts one backend per
process, chosen by KERAS_BACKEND at its import (tests/keras_probe.py runs one and prints JSON)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
from backends.base import parity_spec
from backends.keras_adapter import KerasBackend
from backends.spec import OptimizerSpec, Spec
from tests.keras_probe import CASES

ROOT = Path(__file__).resolve().parents[1]
KERAS = ["keras-tensorflow", "keras-jax", "keras-torch"]

# Largest relative per-epoch loss deviation from the float64 reference over 5 epochs.
# keras-tensorflow computes in float64 throughout: the suite's 1e-9 (measured <= 5e-16).
# keras-jax and keras-torch do not, because of Keras itself: keras.backend.result_type maps float64 to
# float32 on every backend but TensorFlow (BIT64_TO_BIT32_DTYPE in keras/src/backend/common/dtypes.py,
# "to be aligned with JAX's default"), and the ops that take their compute dtype from it round to float32:
# - keras-jax: ops.mean, which the MSE and BCE losses use per sample (the mean over the output axis),
#   so those losses and their gradients carry float32 rounding (measured <= 6.2e-8); CCE sums per
#   sample and stays float64 (measured <= 3.3e-16);
# - keras-torch: also ops.matmul, so every Dense layer computes in float32 (measured <= 3.6e-7).
BOUND = {
    ("keras-tensorflow", "mse"): 1e-9,
    ("keras-tensorflow", "bce"): 1e-9,
    ("keras-tensorflow", "cce"): 1e-9,
    ("keras-jax", "mse"): 3e-7,  # float32 ops.mean per sample, see above
    ("keras-jax", "bce"): 3e-7,  # float32 ops.mean per sample, see above
    ("keras-jax", "cce"): 1e-9,
    ("keras-torch", "mse"): 2e-6,  # float32 matmul and mean, see above
    ("keras-torch", "bce"): 2e-6,
    ("keras-torch", "cce"): 2e-6,
}
LOSS_OF = {label: {"linear": "mse", "sigmoid": "bce", "softmax": "cce"}[fields["head"]] for label, fields, _ in CASES}


def _probe(name: str, *args: str) -> dict:
    if not backends.is_available(name):
        pytest.skip(f"backend {name!r} unavailable: its framework is not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.keras_probe", name, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=KERAS)
def float64_run(request):
    return _probe(request.param)


def test_float64_parity_with_the_hat_reference(float64_run):
    name = float64_run["backend"]
    bad = {
        label: c["max_rel_loss"]
        for label, c in float64_run["cases"].items()
        if not c["max_rel_loss"] < BOUND[name, LOSS_OF[label]]
    }
    assert not bad, f"{name} deviates from the reference beyond its bound: {bad}"
    for label, c in float64_run["cases"].items():
        bound = BOUND[name, LOSS_OF[label]]
        assert c["max_param_diff"] < 100 * bound and c["max_pred_diff"] < 100 * bound, (label, c)


def test_result_contract(float64_run):
    name = float64_run["backend"]
    assert float64_run["thread_settings"]["keras_backend"] == name.removeprefix("keras-")
    for label, c in float64_run["cases"].items():
        assert c["param_dtypes"] == ["float64"], label
        assert c["history_last_equals_params"], label
        assert len(c["epoch_seconds"]) == 5 and min(c["epoch_seconds"]) > 0, label
        assert c["extra"]["variant"] == "keras-fit" and c["extra"]["fallback"] is None
        assert c["extra"]["adam_epsilon"] == ("hat" if "adam" in label else None)
        assert c["extra"]["keras_backend"] == name.removeprefix("keras-")


def test_second_keras_backend_in_one_process_is_a_clear_error():
    code = (
        "import backends\n"
        "backends.get_backend('keras-jax').thread_settings()\n"
        "try:\n"
        "    backends.get_backend('keras-torch').thread_settings()\n"
        "except backends.BackendError as e:\n"
        "    print('ERR', e)\n"
    )
    if not (backends.is_available("keras-jax") and backends.is_available("keras-torch")):
        pytest.skip("keras-jax or keras-torch unavailable")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("KERAS_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert "ERR keras is already imported in this process with backend 'jax'" in out.stdout, out.stderr[-2000:]
    assert "run 'keras-torch' in its own process" in out.stdout


def test_parity_spec_swaps_adam_epsilon_only_for_keras():
    adam = Spec(kind="logistic", n_inputs=2, n_outputs=1, optimizer=OptimizerSpec("adam"))
    sgd = Spec(kind="logistic", n_inputs=2, n_outputs=1, optimizer=OptimizerSpec("sgd", momentum=0.9))
    keras_be = KerasBackend("keras-jax", "keras")  # constructing it imports nothing
    assert parity_spec(keras_be, adam).optimizer.epsilon == "hat"
    assert parity_spec(keras_be, adam).optimizer.eps == adam.optimizer.eps
    assert parity_spec(keras_be, sgd) == sgd
    assert parity_spec(backends.get_backend("numpy"), adam) == adam


def test_unknown_keras_backend_is_a_clear_error():
    with pytest.raises(backends.BackendError, match="no Keras backend 'mxnet'"):
        KerasBackend("keras-mxnet", "keras")


def test_cases_cover_every_spec_kind_and_optimizer():
    kinds = {fields["kind"] for _, fields, _ in CASES}
    assert kinds == {"linear", "logistic", "softmax", "mlp"}
    assert {o.name for _, _, o in CASES} == {"adam", "sgd"}
    assert np.any([o.momentum for _, _, o in CASES])
