"""The contract every backend adapter meets: NumPy in, NumPy out."""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from backends.spec import Schedule, Spec, TrainResult


class BackendError(RuntimeError):
    """A backend cannot do what was asked (unavailable framework, missing device...)."""


class Backend(ABC):
    """One framework in one mode. Subclasses import their framework lazily, inside methods.

    mode "compiled" is the framework's fastest idiomatic path; "eager" a plain per-batch loop; a
    subclass may name its own modes (the Keras adapter's "keras": Keras's fit decides the execution).
    parity_epsilon: the Adam epsilon placement the backend trains whatever the spec says (None: the
    spec's); the parity checks run the reference with it (parity_spec).
    """

    framework: str = ""
    modes: tuple[str, ...] = ("compiled", "eager")
    gpu_capable: bool = True  # it has a CUDA path; devices() says whether this machine offers one
    parity_epsilon: str | None = None

    def __init__(self, name: str, mode: str = "compiled", threads: int | None = None) -> None:
        if mode not in self.modes:
            raise BackendError(f"backend {name!r} has no mode {mode!r}; modes: {self.modes}")
        self.name = name
        self.mode = mode
        self.threads = threads
        if threads:
            set_thread_env(threads)

    @abstractmethod
    def devices(self) -> list[str]:
        """The devices this machine offers the framework: 'cpu', and 'gpu' where CUDA is seen."""

    @abstractmethod
    def train(
        self,
        spec: Spec,
        X: np.ndarray,
        Y: np.ndarray,
        init_params: list[np.ndarray],
        schedule: Schedule,
        device: str = "cpu",
        record_params: bool = False,
    ) -> TrainResult:
        """Train from init_params following schedule. Y is float targets of shape (n, n_outputs)."""

    @abstractmethod
    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        """Probabilities (sigmoid/softmax heads) or values (linear head), shape (n, n_outputs)."""

    def framework_model(self, spec: Spec, params: list[np.ndarray]) -> Any | None:
        """Optional: the framework's own model object built from the spec and NumPy params, on the
        CPU, computing what predict() returns (the head applied), for storing it with the framework's
        own tools (the workflow's MLflow logging calls it: mlflow.keras / mlflow.pytorch log_model).
        None where the adapter offers none (the default)."""
        return None

    def thread_settings(self) -> dict:
        """The thread counts in force, as the framework reports them."""
        return {"threads": self.threads}

    def replica_env(self) -> dict[str, str]:
        """Environment variables for this job's timing replicas (fresh processes that time the networks
        this process trained), from what this process found at start-up: a replica quotes no start-up
        or compile time, so a check whose answer this process already has need not run again there.
        Called once, in the job's process after its framework warm-up and before its first experiment:
        an adapter whose variables enter its compile cache's key sets the same in this process, so the
        replicas look up what this process compiles."""
        return {}

    def device_info(self, device: str) -> dict:
        """The accelerator's name (and driver) for the fingerprint; on CPU just {"device": "cpu"}:
        the workflow's fingerprint names the CPU itself."""
        return {"device": device}

    def peak_device_memory(self, device: str) -> int | None:
        """Peak accelerator memory in bytes since start, or None on CPU."""
        return None

    def check_device(self, device: str) -> None:
        if device not in self.devices():
            raise BackendError(
                f"backend {self.name!r} sees no {device!r} device on this machine "
                f"(it sees {self.devices()}); set devices: [cpu] or auto in the config"
            )


def parity_spec(backend: Backend, spec: Spec) -> Spec:
    """The spec the reference trains for comparison with `backend`'s run of `spec`: the same spec,
    except Adam's epsilon placement where the backend has a fixed one (the Keras backends: "hat")."""
    if backend.parity_epsilon is None or spec.optimizer.name != "adam":
        return spec
    return dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer, epsilon=backend.parity_epsilon))


def set_thread_env(threads: int) -> None:
    """Set the thread-count variables frameworks read at import (before any import).

    OMP/MKL/OpenBLAS and TF read theirs; XLA's CPU pools ignore XLA_FLAGS' thread count and size
    themselves from the CPU affinity at start-up, which the JAX adapter handles (see there)."""
    n = str(int(threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    # torch.compile's inductor compiles in a pool of worker processes sized to the CPUs; their CPU
    # time is not the job's (it showed as "foreign load" on the timed CPU): compile in-process.
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={n}"
        ).strip()


def check_x(spec: Spec, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != spec.n_inputs or len(X) == 0:
        raise BackendError(
            f"X has shape {X.shape}; the spec expects (n, {spec.n_inputs}) with n > 0: "
            "pass a non-empty 2-D feature array with one column per model input"
        )
    return X


def check_params(spec: Spec, params: list[np.ndarray]) -> None:
    got = [tuple(np.shape(p)) for p in params]
    if got != spec.param_shapes:
        raise BackendError(
            f"parameter shapes {got} do not match the spec's {spec.param_shapes} ([W (in, out), b, ...]); "
            "make them with backends.spec.init_params(spec, seed)"
        )


def check_inputs(
    spec: Spec, X: np.ndarray, Y: np.ndarray, params: list[np.ndarray], schedule: Schedule
) -> tuple[np.ndarray, np.ndarray]:
    """What every adapter's train() checks first, so bad input fails the same clear way everywhere."""
    X = check_x(spec, X)
    Y = np.asarray(Y)
    if Y.shape != (len(X), spec.n_outputs):
        raise BackendError(
            f"Y has shape {Y.shape}; train() takes float targets of shape ({len(X)}, {spec.n_outputs}): "
            "make them with datasets.preprocess.targets(y, task, n_outputs)"
        )
    check_params(spec, params)
    if schedule.n_samples != len(X):
        raise BackendError(
            f"the schedule orders {schedule.n_samples} samples but X has {len(X)}: "
            "make it with backends.spec.make_schedule(spec, len(X), seed)"
        )
    if schedule.steps_per_epoch == 0:
        raise BackendError(
            f"the schedule has no step per epoch (batch {schedule.batch_size} > {schedule.n_samples} samples "
            "with drop_last); lower batch_size or set drop_last false"
        )
    if spec.loss == "cce" and not np.allclose(Y.sum(axis=1), 1.0, atol=1e-6):
        raise BackendError(
            "categorical cross-entropy needs one-hot or probability rows in Y (each row summing to 1); "
            "encode labels with datasets.preprocess.targets(y, task, n_outputs)"
        )
    return X, Y
