"""Keras 3 adapter: the code the documents show, `Sequential` + `compile` + `fit`, on one Keras backend.

Registry names `keras-tensorflow`, `keras-jax`, `keras-torch` (mode "keras": Keras decides the
execution, as a user leaves it: `jit_compile="auto"`, i.e. XLA on TensorFlow and JAX, eager on torch).
Per train() call, as a tutorial writes it:
- a `keras.Sequential` of `Dense` layers (hidden activation from the spec) whose last layer returns
  logits, with the from_logits cross-entropies (the probability head with from_logits=False clips
  probabilities at 1e-7, which the reference does not, so only the logits head gives parity);
- our initial weights through `set_weights` (Dense kernels are (in, out) like the spec's);
- `compile(optimizer=keras.optimizers.Adam/SGD(our constants), loss=...)`;
- one `fit(dataset, epochs=E, shuffle=False)` over a `keras.utils.PyDataset` that serves our
  schedule's batches in our order (last partial batch as the schedule says); it records what it
  served and train() checks that against the schedule, so a reordering by Keras fails loudly.
Loss history: Keras's loss tracker is a Mean weighted by each batch's size, fed the loss before the
update, and reset every epoch, so `logs["loss"]` at epoch end is TrainResult's definition exactly.
Timing: epoch 0 runs from the fit() call (data adapter, tracing, compilation inside) to its
on_epoch_end; later epochs from on_epoch_begin to on_epoch_end (reading the loss syncs the device).
Adam: Keras's own, which adds eps to the bias-uncorrected sqrt(v) (OptimizerSpec epsilon "hat"),
whatever the spec's epsilon says; extra["adam_epsilon"] records it and `parity_epsilon` tells the
parity checks to compare against a reference run with epsilon "hat" (backends.base.parity_spec).
Keras's SGD momentum (m = mu m - lr g; w += m) is torch's (buf = mu buf + g; w -= lr buf) with m = -lr buf.
float64: `keras.config.set_floatx` is scoped to each call (Keras keeps the learning rate and the loss
tracker in floatx: left at float32 they round lr and the loss at 1e-8 relative), keras-jax runs with
jax_enable_x64, and the optimizer constants go in as float64 (_optimizer). Then keras-tensorflow matches
the reference to rounding (<= 5e-16 relative); keras-jax and keras-torch cannot: Keras's result_type
maps float64 to float32 outside TensorFlow, so ops.mean (per-sample MSE/BCE; jax <= 6.2e-8) and on
torch also ops.matmul (<= 3.6e-7) compute in float32 (measured bounds and cause: tests/test_keras.py).

Keras reads KERAS_BACKEND once, at its import, and one process hosts one Keras backend: this adapter
sets it before importing keras and raises a BackendError when keras was already imported with another
backend (importing TensorFlow imports keras too, with its default backend "tensorflow").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import backends
from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.spec import Schedule, Spec, TrainResult

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
_LOSSES = {"mse": "MeanSquaredError", "bce": "BinaryCrossentropy", "cce": "CategoricalCrossentropy"}
_PREDICT_MODELS: dict[tuple, Any] = {}


def loaded_keras_backend() -> str | None:
    """The backend of the keras already imported in this process, or None if keras is not imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.backend())
    except AttributeError:  # imported halfway: say what the environment asked for
        return os.environ.get("KERAS_BACKEND", "tensorflow")


def _import_keras(backend: str) -> Any:
    """keras on `backend`: set KERAS_BACKEND before the first import, refuse another backend after it."""
    loaded = loaded_keras_backend()
    if loaded is None:
        os.environ["KERAS_BACKEND"] = backend
    elif loaded != backend:
        raise BackendError(
            f"keras is already imported in this process with backend {loaded!r}, and Keras cannot switch to "
            f"{backend!r} after its import: run 'keras-{backend}' in its own process (as the pipeline does, one "
            "job per process), before anything imports keras or tensorflow"
        )
    import keras

    if keras.config.backend() != backend:  # e.g. a keras.json or a keras imported under another name
        raise BackendError(f"keras runs on {keras.config.backend()!r}, not {backend!r}; unset KERAS_BACKEND overrides")
    return keras


class KerasBackend(Backend):
    framework = "keras"
    modes = ("keras",)
    parity_epsilon = "hat"  # Keras's Adam, whatever the spec says: parity runs compare with a "hat" reference

    def __init__(self, name: str, mode: str = "keras", threads: int | None = None) -> None:
        super().__init__(name, mode, threads)
        self.keras_backend = name.removeprefix("keras-")
        if self.keras_backend not in KERAS_BACKENDS:
            raise BackendError(f"backend {name!r}: no Keras backend {self.keras_backend!r}; use {KERAS_BACKENDS}")
        self._k: Any = None
        self._fw: Backend | None = None

    def _keras(self) -> Any:
        """keras, and the framework's own adapter (devices, threads, fingerprint), set up in that order:
        KERAS_BACKEND first (importing TensorFlow imports keras), then the framework's thread counts."""
        if self._k is None:
            loaded = loaded_keras_backend()
            if loaded not in (None, self.keras_backend):
                _import_keras(self.keras_backend)  # raises the clear error
            os.environ["KERAS_BACKEND"] = self.keras_backend
            self._fw = backends.get_backend(self.keras_backend, threads=self.threads)
            self._fw.thread_settings()  # each adapter applies its thread counts on first use
            self._k = _import_keras(self.keras_backend)
        return self._k

    def _framework(self) -> Backend:
        self._keras()
        assert self._fw is not None
        return self._fw

    def devices(self) -> list[str]:
        return self._framework().devices()

    def thread_settings(self) -> dict:
        return {**self._framework().thread_settings(), "keras_backend": self.keras_backend}

    def device_info(self, device: str) -> dict:
        return self._framework().device_info(device)

    def peak_device_memory(self, device: str) -> int | None:
        return self._framework().peak_device_memory(device)

    @contextlib.contextmanager
    def _scope(self, spec: Spec, device: str) -> Iterator[Any]:
        """floatx = the spec's dtype (64-bit JAX for float64), on the device; undone on exit."""
        keras = self._keras()
        before = keras.config.floatx()
        keras.config.set_floatx(spec.dtype)
        try:
            with contextlib.ExitStack() as stack:
                if self.keras_backend == "jax":
                    stack.enter_context(_jax_x64(spec.dtype == "float64"))
                if self.keras_backend != "torch":
                    stack.enter_context(keras.device(f"{device}:0"))
                elif (device == "gpu") != ("gpu" in self.devices()):
                    # Under keras.device() Keras-torch made variables whose .grad stays empty (measured:
                    # "No gradients provided"); without it Keras-torch uses CUDA wherever torch sees it.
                    raise BackendError(
                        "keras-torch runs on CUDA where torch sees it: hide the GPU "
                        "(CUDA_VISIBLE_DEVICES='') for a cpu run"
                    )
                yield keras
        finally:
            keras.config.set_floatx(before)

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
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        self.check_device(device)
        dt = np.dtype(spec.dtype)
        X, Y = np.asarray(X, dtype=dt), np.asarray(Y, dtype=dt)
        with self._scope(spec, device) as keras:
            model = _sequential(keras, spec)
            model.set_weights([np.asarray(p, dtype=dt) for p in init_params])
            model.compile(optimizer=_optimizer(keras, spec), loss=_loss(keras, spec))
            data = _dataset_class(keras)(X, Y, schedule)
            clock = _clock_class(keras)(data, record_params, dt)
            clock.start = time.perf_counter()
            model.fit(data, epochs=schedule.epochs, shuffle=False, verbose=0, callbacks=[clock])
            params = [np.array(w, dtype=dt) for w in model.get_weights()]
            jit_compile = model.jit_compile
        expected = [(e, i) for e in range(schedule.epochs) for i in range(schedule.steps_per_epoch)]
        if data.served != expected:
            raise BackendError(
                f"Keras fit asked for batches {data.served[:8]}... not our schedule's order {expected[:8]}"
            )
        seconds = np.asarray(clock.seconds, dtype=np.float64)
        steady = float(np.median(seconds[1:])) if len(seconds) > 1 else 0.0
        return TrainResult(
            params=params,
            loss_history=np.asarray(clock.losses, dtype=np.float64),
            epoch_seconds=seconds,
            # tracing and compilation happen inside epoch 0: estimated as its excess over the median later epoch
            compile_seconds=max(float(seconds[0]) - steady, 0.0),
            param_history=clock.history if record_params else None,
            extra={
                "variant": "keras-fit",
                "fallback": None,
                "mode": self.mode,
                "keras_backend": self.keras_backend,
                "jit_compile": bool(jit_compile),
                "adam_epsilon": "hat" if spec.optimizer.name == "adam" else None,
            },
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        X = check_x(spec, X)
        check_params(spec, params)
        self.check_device(device)
        dt = np.dtype(spec.dtype)
        with self._scope(spec, device) as keras:
            key = (tuple(spec.layer_sizes), spec.activation, spec.dtype, device)
            if key not in _PREDICT_MODELS:
                _PREDICT_MODELS[key] = _sequential(keras, spec)
            model = _PREDICT_MODELS[key]
            model.set_weights([np.asarray(p, dtype=dt) for p in params])
            logits = model(np.asarray(X, dtype=dt), training=False)
            head = {"linear": lambda z: z, "sigmoid": keras.ops.sigmoid, "softmax": keras.ops.softmax}[spec.head]
            return np.array(keras.ops.convert_to_numpy(head(logits)), dtype=dt)

    def framework_model(self, spec: Spec, params: list[np.ndarray]) -> Any:
        """A keras.Sequential with the head as its last layer's activation and params loaded: predict()'s
        output from model(X). Built with floatx at the spec's dtype, outside any device scope."""
        check_params(spec, params)
        keras = self._keras()
        before = keras.config.floatx()
        keras.config.set_floatx(spec.dtype)
        try:
            model = _sequential(keras, spec, head=spec.head)
            model.set_weights([np.asarray(p, dtype=spec.dtype) for p in params])
        finally:
            keras.config.set_floatx(before)
        return model


@contextlib.contextmanager
def _jax_x64(on: bool) -> Iterator[None]:
    """JAX's x64 switch set process-wide for the call rather than by the thread-local jax.enable_x64, so
    that any thread Keras may convert batches in sees it too (in the runs measured, Keras 3.15 read the
    PyDataset on the main thread; the float64 deviations of keras-jax come from Keras's float32 ops.mean)."""
    import jax

    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", on)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _sequential(keras: Any, spec: Spec, head: str | None = None) -> Any:
    """The spec's network; its last layer returns logits (the loss takes them, from_logits) unless a head
    activation is given (framework_model: the model a user loads predicts probabilities or values)."""
    layers = [keras.Input(shape=(spec.n_inputs,), dtype=spec.dtype)]
    layers += [keras.layers.Dense(h, activation=spec.activation) for h in spec.hidden]
    layers.append(keras.layers.Dense(spec.n_outputs, activation=head))
    return keras.Sequential(layers)


def _loss(keras: Any, spec: Spec) -> Any:
    cls = getattr(keras.losses, _LOSSES[spec.loss])
    return cls() if spec.loss == "mse" else cls(from_logits=True)


def _optimizer(keras: Any, spec: Spec) -> Any:
    """Keras's Adam or SGD with our constants. In float64 the betas, eps and momentum go in as NumPy
    float64 (a float subclass, so Keras accepts them): Keras casts them with ops.cast(beta, var.dtype),
    and on TensorFlow that converts a Python float to a float32 tensor first (tf.cast), so 0.9 became
    0.899999976 (measured: 1e-6 relative loss error on Adam, 2e-8 on SGD momentum). In float32 runs they
    stay the Python floats a user writes."""
    o = spec.optimizer
    c = np.float64 if spec.dtype == "float64" else float
    if o.name == "adam":
        return keras.optimizers.Adam(
            learning_rate=o.learning_rate, beta_1=c(o.beta1), beta_2=c(o.beta2), epsilon=c(o.eps), amsgrad=False
        )
    return keras.optimizers.SGD(learning_rate=o.learning_rate, momentum=c(o.momentum), nesterov=False)


_CLASSES: dict[str, type] = {}


def _dataset_class(keras: Any) -> type:
    """A PyDataset serving schedule.batches(epoch) in order. The epoch is fit's own, set by the clock
    callback's on_epoch_begin: Keras also reads batches outside the epochs (JAX's symbolic build,
    TensorFlow's shape inference), which are neither counted as epochs nor recorded as served."""
    if "dataset" not in _CLASSES:

        class ScheduleBatches(keras.utils.PyDataset):
            def __init__(self, X: np.ndarray, Y: np.ndarray, schedule: Schedule) -> None:
                super().__init__(workers=1, use_multiprocessing=False)
                self.X, self.Y, self.schedule = X, Y, schedule
                self.epoch: int | None = None  # None until fit's first epoch begins
                self.served: list[tuple[int, int]] = []

            def __len__(self) -> int:
                return self.schedule.steps_per_epoch

            def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
                if self.epoch is not None:
                    self.served.append((self.epoch, int(i)))
                idx = self.schedule.batches(self.epoch or 0)[i]
                return self.X[idx], self.Y[idx]

        _CLASSES["dataset"] = ScheduleBatches
    return _CLASSES["dataset"]


def _clock_class(keras: Any) -> type:
    """A callback keeping each epoch's seconds, its loss (logs["loss"], the tracker's epoch mean) and,
    if asked, the parameters after it (copied outside the timed spans)."""
    if "clock" not in _CLASSES:

        class EpochClock(keras.callbacks.Callback):
            def __init__(self, data: Any, record_params: bool, dtype: np.dtype) -> None:
                super().__init__()
                self.data, self.record, self.dtype = data, record_params, dtype
                self.start = 0.0
                self.seconds: list[float] = []
                self.losses: list[float] = []
                self.history: list[list[np.ndarray]] = []

            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                self.data.epoch = epoch
                if epoch > 0:
                    self.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                self.losses.append(float((logs or {})["loss"]))
                self.seconds.append(time.perf_counter() - self.start)
                if self.record:
                    self.history.append([np.array(w, dtype=self.dtype) for w in self.model.get_weights()])

        _CLASSES["clock"] = EpochClock
    return _CLASSES["clock"]
