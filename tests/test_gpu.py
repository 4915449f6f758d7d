"""GPU paths: run where a backend sees a CUDA device, skipped with a message where none does."""

import numpy as np
import pytest

import backends
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule

REF = backends.get_backend(backends.REFERENCE)
# Backends with a CUDA path; the Keras ones host one backend per process (tests/test_keras.py runs them).
GPU_BACKENDS = [
    n for n in backends.names() if backends.gpu_capable(n) and backends.REGISTRY[n].module != "backends.keras_adapter"
]


def _gpu_backend(name):
    if not backends.is_available(name):
        pytest.skip(f"{name}: framework not installed")
    be = backends.get_backend(name, threads=1)
    if "gpu" not in be.devices():
        pytest.skip(f"{name} sees no CUDA device on this machine; GPU path not exercised here")
    return be


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_training_matches_the_reference(name):
    be = _gpu_backend(name)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.eye(3)[rng.integers(0, 3, 200)]
    spec = Spec(
        kind="mlp",
        n_inputs=4,
        n_outputs=3,
        hidden=(16, 8),
        activation="relu",
        head="softmax",
        epochs=5,
        batch_size=32,
        optimizer=OptimizerSpec("adam", learning_rate=0.01),
        dtype="float64",
    )
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    ref = REF.train(spec, X, Y, p0, sched)
    got = be.train(spec, X, Y, p0, sched, device="gpu")
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < 1e-9
    out = be.predict(spec, got.params, X, device="gpu")
    assert isinstance(out, np.ndarray) and out.shape == (200, 3)
    assert (be.peak_device_memory("gpu") or 0) > 0
    assert be.device_info("gpu").get("name")


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_missing_gpu_is_a_clear_error_not_a_crash(name):
    """Asking a backend that sees no GPU for one names the problem and the fix."""
    if not backends.is_available(name):
        pytest.skip(f"{name}: framework not installed")
    be = backends.get_backend(name, threads=1)
    if "gpu" in be.devices():
        pytest.skip(f"{name} sees a GPU here; the no-GPU path is exercised on CPU-only machines")
    spec = Spec(kind="logistic", n_inputs=2, n_outputs=1, head="sigmoid", epochs=1)
    X, Y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(backends.BackendError, match="no 'gpu' device"):
        be.train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 4, 0), device="gpu")


def test_plan_gpu_jobs_by_capability_and_auto_by_what_is_seen():
    """devices [gpu]: a gpu job for every backend with a CUDA path, planned without probing; [auto]:
    only where this machine sees a CUDA device; the NumPy reference never gets one."""
    from workflow.lib.plan import resolve_devices

    names = [n for n in ("numpy", "torch") if backends.is_available(n)]
    planned = resolve_devices(names, ["cpu", "gpu"])
    probed = resolve_devices(names, ["auto"])
    for name in names:
        sees_gpu = "gpu" in backends.get_backend(name).devices()
        assert ("gpu" in planned[name]["devices"]) == backends.gpu_capable(name)
        assert ("gpu" in probed[name]["devices"]) == (sees_gpu and backends.gpu_capable(name))
        assert "cpu" in planned[name]["devices"] and "cpu" in probed[name]["devices"]
        if "gpu" not in probed[name]["devices"]:
            assert "no gpu job" in probed[name]["reason"]
