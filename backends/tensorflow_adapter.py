"""TensorFlow adapter: tf.Variable parameters, tf.GradientTape, and the spec's own optimizer in tf ops.

Mode "compiled" (variant "tf.function-xla-epoch") runs a whole epoch as one tf.function (the step loop
lives in the graph, over the epoch's index tensor; the last partial batch is one more step in the same
function), compiled by XLA (jit_compile=True), which removes the per-op graph overhead that dominates small
models. Tracing and XLA compilation happen in epoch 0's call, inside its timing.
Mode "eager" (variant "eager-loop") is the per-batch eager Python loop a tutorial writes. Both share the
same forward and loss code; the eager loop applies each update with TensorFlow's fused optimizer kernel
(what TF's own optimizers run; a tutorial's Keras 3 Adam in an eager loop costs 12 ms a step on
moons-mlp's shape, this loop 2.0 ms). Layers add their bias with tf.nn.bias_add (as tf.keras' Dense
does): its gradient is one BiasAddGrad, where `+` costs four ops of broadcast bookkeeping a layer.

Keras' Adam puts epsilon elsewhere and folds the bias correction into the step size, so the update
is written here in the spec's (torch/optax) formulation; cross-entropies are taken from logits.
TensorFlow is imported lazily (inside methods), so this module imports without it.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np

from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.spec import Schedule, Spec, TrainResult

_DEVICE_NAMES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}
_VARIANTS = {"compiled": "tf.function-xla-epoch", "eager": "eager-loop"}


@functools.cache
def _tf() -> Any:
    """Import TensorFlow once, quietly; on GPUs turn memory growth on and TF32 off before first use."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the runtime was initialized before us; growth stays as it was
            warnings.warn("TensorFlow was initialized before the adapter; GPU memory growth not set", stacklevel=2)
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return tf


def _set_threads(tf: Any, threads: int) -> bool:
    """Set TF's own intra/inter-op pools; they can only change before the runtime starts."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
        return True
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != int(threads):
            warnings.warn(
                f"TensorFlow already runs with intra_op_parallelism_threads={current}, not {threads}: "
                "create the backend (or set TF_NUM_INTRAOP_THREADS) before TensorFlow runs anything",
                stacklevel=3,
            )
        return current == int(threads)


class _Model:
    """The variables (parameters, optimizer slots, step count) of one network shape on one device,
    and the training step written with tf ops. Reused across train() calls so traces are reused."""

    def __init__(self, tf: Any, spec: Spec, device: str, *, eager: bool) -> None:
        self.tf = tf
        self.dt = np.dtype(spec.dtype)
        self.tdt = tf.as_dtype(spec.dtype)
        self.activation, self.loss_name = spec.activation, spec.loss
        o = spec.optimizer
        self.opt = o.name
        self.hat = o.epsilon == "hat"
        c = self.dt.type
        self.device = _DEVICE_NAMES[device]
        # Constants computed in the spec's dtype as the reference computes them. Traced code embeds
        # them as Python floats (exact in that dtype, so converted without rounding); the eager loop
        # gets them as tensors once, instead of converting them again in every op.
        consts = {
            "one": c(1),
            "lr": c(o.learning_rate),
            "momentum": c(o.momentum),
            "b1": c(o.beta1),
            "b2": c(o.beta2),
            "eps": c(o.eps),
            "one_minus_b1": c(1) - c(o.beta1),
            "one_minus_b2": c(1) - c(o.beta2),
        }
        shapes = spec.param_shapes
        n_slots = 2 if o.name == "adam" else (1 if o.momentum != 0.0 else 0)

        def variables(prefix: str) -> list[Any]:
            return [tf.Variable(tf.zeros(s, self.tdt), name=f"{prefix}{i}") for i, s in enumerate(shapes)]

        with tf.device(self.device):
            self.k = SimpleNamespace(**{n: tf.constant(v, self.tdt) if eager else float(v) for n, v in consts.items()})
            self.params = variables("w")
            self.m = variables("m") if n_slots >= 1 else []  # Adam's first moment, or the momentum buffer
            self.v = variables("v") if n_slots == 2 else []
            self.t = tf.Variable(0, dtype=tf.int64, name="t")
        self.traces = 0
        self.eager, self.optimizer, self.steps = eager, o, 0  # steps: the eager update's count (t is the graph's)
        self.epoch = tf.function(self._epoch, jit_compile=True)  # used by mode compiled only

    def reset(self, init_params: list[np.ndarray]) -> None:
        for var, p in zip(self.params, init_params):
            var.assign(np.asarray(p, dtype=self.dt))
        for var in self.m + self.v:
            var.assign(self.tf.zeros_like(var))
        self.t.assign(0)
        self.steps = 0

    def export(self) -> list[np.ndarray]:
        """The parameters as fresh NumPy arrays (copies: later training must not change them)."""
        return [np.array(p.numpy(), dtype=self.dt) for p in self.params]

    def logits(self, x: Any) -> Any:
        tf = self.tf
        params = self.params
        n_layers = len(params) // 2
        h = x
        for i in range(n_layers):
            z = tf.nn.bias_add(tf.matmul(h, params[2 * i]), params[2 * i + 1])
            if i < n_layers - 1:
                h = _activate(tf, z, self.activation)
        return z

    def loss(self, z: Any, y: Any) -> Any:
        """The mean loss from logits, as numpy_reference.loss_and_dlogits defines it."""
        tf = self.tf
        if self.loss_name == "mse":
            return tf.reduce_mean(tf.square(z - y))
        if self.loss_name == "bce":
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z))
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z))

    def step(self, x: Any, y: Any) -> Any:
        """One mini-batch: the loss before the update, then the update."""
        with self.tf.GradientTape() as tape:
            loss = self.loss(self.logits(x), y)
        self.apply(tape.gradient(loss, self.params))
        return loss

    def apply(self, grads: list[Any]) -> None:
        """SGD (torch momentum) or Adam (either epsilon placement), in the reference's operation order."""
        if self.eager:
            self._apply_fused(grads)
            return
        tf, k = self.tf, self.k
        if self.opt == "sgd":
            for i, (p, g) in enumerate(zip(self.params, grads)):
                if self.m:
                    g = self.m[i].assign(k.momentum * self.m[i] + g)
                p.assign_sub(k.lr * g)
            return
        t = tf.cast(self.t.assign_add(1), self.tdt)
        c1 = k.one - tf.pow(tf.convert_to_tensor(k.b1, self.tdt), t)
        c2 = k.one - tf.pow(tf.convert_to_tensor(k.b2, self.tdt), t)
        for p, m, v, g in zip(self.params, self.m, self.v, grads):
            m_new = m.assign(k.b1 * m + k.one_minus_b1 * g)
            v_new = v.assign(k.b2 * v + k.one_minus_b2 * g * g)
            if self.hat:  # OptimizerSpec epsilon "hat": Keras' placement
                p.assign_sub(k.lr * tf.sqrt(c2) / c1 * m_new / (tf.sqrt(v_new) + k.eps))
            else:
                p.assign_sub(k.lr * (m_new / c1) / (tf.sqrt(v_new / c2) + k.eps))

    def _apply_fused(self, grads: list[Any]) -> None:
        """The eager loop's update: TensorFlow's own fused optimizer kernel per parameter (one op
        each, as TF's optimizers apply updates), not a dozen eager ops each (6.5 ms a step on
        moons-mlp; 2.7 ms fused). ResourceApplyAdam folds the bias correction into the step size
        (Keras' "hat" placement); the spec's standard placement is the same update with epsilon
        scaled by sqrt(1 - beta2^t): lr/c1 * m / (sqrt(v/c2) + eps) = lr*sqrt(c2)/c1 * m / (sqrt(v) + eps*sqrt(c2))."""
        raw, k, c = self.tf.raw_ops, self.k, self.dt.type
        if self.opt == "sgd":
            for i, (p, g) in enumerate(zip(self.params, grads)):
                if self.m:
                    raw.ResourceApplyMomentum(
                        var=p.handle, accum=self.m[i].handle, lr=k.lr, grad=g, momentum=k.momentum
                    )
                else:
                    raw.ResourceApplyGradientDescent(var=p.handle, alpha=k.lr, delta=g)
            return
        self.steps += 1
        o = self.optimizer
        b1p, b2p = c(o.beta1) ** self.steps, c(o.beta2) ** self.steps
        eps = c(o.eps) if self.hat else c(o.eps) * np.sqrt(c(1) - b2p)
        b1p, b2p, eps = (self.tf.constant(v, self.tdt) for v in (b1p, b2p, eps))
        for p, m, v, g in zip(self.params, self.m, self.v, grads):
            raw.ResourceApplyAdam(
                var=p.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                lr=k.lr, beta1=k.b1, beta2=k.b2, epsilon=eps, grad=g,
            )  # fmt: skip

    def _epoch(self, X: Any, Y: Any, idx: Any, last: Any) -> Any:
        """All steps of one epoch in the graph: idx (n_full, B) full batches, last the partial one or None.
        Returns the per-step losses."""
        tf = self.tf
        self.traces += 1  # runs at trace time only: counts (re)traces
        n_full = idx.shape[0]
        losses = tf.TensorArray(self.tdt, size=n_full)
        for i in tf.range(n_full):
            b = idx[i]
            losses = losses.write(i, self.step(tf.gather(X, b), tf.gather(Y, b)))
        out = losses.stack()
        if last is not None:
            out = tf.concat([out, tf.reshape(self.step(tf.gather(X, last), tf.gather(Y, last)), [1])], 0)
        return out


def _activate(tf: Any, z: Any, name: str) -> Any:
    if name == "linear":
        return z
    if name == "relu":
        return tf.nn.relu(z)
    if name == "tanh":
        return tf.tanh(z)
    if name == "sigmoid":
        return tf.sigmoid(z)
    if name == "softmax":
        return tf.nn.softmax(z, axis=-1)
    raise BackendError(f"unknown activation {name!r}")


def _forward(tf: Any, params: list[Any], x: Any, activation: str, head: str) -> Any:
    n_layers = len(params) // 2
    h = x
    for i in range(n_layers):
        z = tf.nn.bias_add(tf.matmul(h, params[2 * i]), params[2 * i + 1])
        h = _activate(tf, z, activation if i < n_layers - 1 else head)
    return h


# Models and compiled predict functions, shared by every backend instance in the process, so repeated
# train()/predict() calls with the same spec reuse their traces (and XLA executables).
_MODELS: dict[tuple, _Model] = {}
_PREDICTORS: dict[tuple, Any] = {}


class TensorFlowBackend(Backend):
    framework = "tensorflow"
    modes = ("compiled", "eager")

    def __init__(self, name: str, mode: str = "compiled", threads: int | None = None) -> None:
        super().__init__(name, mode, threads)
        self._threads_applied: bool | None = None  # set on first use of TensorFlow

    def _tf(self) -> Any:
        """TensorFlow, with this backend's thread counts set before the runtime starts (where still possible)."""
        tf = _tf()
        if self.threads and self._threads_applied is None:
            self._threads_applied = _set_threads(tf, self.threads)
        return tf

    def devices(self) -> list[str]:
        tf = self._tf()
        return ["cpu"] + (["gpu"] if tf.config.list_physical_devices("GPU") else [])

    def thread_settings(self) -> dict:
        tf = self._tf()
        return {
            "threads": self.threads,
            "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "applied": bool(self._threads_applied),
        }

    def device_info(self, device: str) -> dict:
        self.check_device(device)
        tf = self._tf()
        if device == "cpu":
            return {"device": "cpu"}
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        cc = details.get("compute_capability")
        return {
            "device": "gpu",
            "name": details.get("device_name", "unknown GPU"),
            "compute_capability": ".".join(map(str, cc)) if cc else None,
            "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
        }

    def peak_device_memory(self, device: str) -> int | None:
        if device != "gpu":
            return None
        self.check_device(device)
        return int(self._tf().config.experimental.get_memory_info("GPU:0")["peak"])

    def _model(self, spec: Spec, device: str) -> _Model:
        o = spec.optimizer
        key = (self.mode, device, spec.dtype, tuple(spec.layer_sizes), spec.activation, spec.head, o)
        if key not in _MODELS:
            _MODELS[key] = _Model(self._tf(), spec, device, eager=self.mode == "eager")
        return _MODELS[key]

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
        self.check_device(device)
        check_inputs(spec, X, Y, init_params, schedule)
        tf = self._tf()
        dt = np.dtype(spec.dtype)
        model = self._model(spec, device)
        model.reset(init_params)
        traces_before = model.traces
        with tf.device(model.device):
            Xt = tf.identity(tf.convert_to_tensor(np.asarray(X, dtype=dt)))
            Yt = tf.identity(tf.convert_to_tensor(np.asarray(Y, dtype=dt)))
        weights = [schedule.batch_size] * schedule.n_full + ([schedule.remainder] if schedule.remainder else [])
        losses, seconds, history = [], [], []
        for epoch in range(schedule.epochs):
            t0 = time.perf_counter()
            with tf.device(model.device):
                if self.mode == "compiled":
                    last = schedule.last_batch(epoch)
                    step_losses = model.epoch(
                        Xt,
                        Yt,
                        tf.convert_to_tensor(schedule.full_batches(epoch)),
                        None if last is None else tf.convert_to_tensor(last),
                    )
                else:
                    step_losses = []
                    for idx in schedule.batches(epoch):
                        step_losses.append(model.step(tf.gather(Xt, idx), tf.gather(Yt, idx)))
                    step_losses = tf.stack(step_losses)
                values = step_losses.numpy()  # reading back synchronizes the device
            seconds.append(time.perf_counter() - t0)
            total = 0.0
            for loss, w in zip(values, weights):
                total += float(loss) * w
            losses.append(total / schedule.samples_per_epoch)
            if record_params:
                history.append(model.export())
        # Tracing and XLA compilation run lazily inside epoch 0's call: no explicit compile time to report.
        return TrainResult(
            params=model.export(),
            loss_history=np.asarray(losses, dtype=np.float64),
            epoch_seconds=np.asarray(seconds),
            compile_seconds=0.0,
            param_history=history if record_params else None,
            extra={"variant": _VARIANTS[self.mode], "fallback": None, "traces": model.traces - traces_before},
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        self.check_device(device)
        check_params(spec, params)
        X = check_x(spec, X)
        tf = self._tf()
        dt = np.dtype(spec.dtype)
        with tf.device(_DEVICE_NAMES[device]):
            ps = [tf.convert_to_tensor(np.asarray(p, dtype=dt)) for p in params]
            x = tf.convert_to_tensor(np.asarray(X, dtype=dt))
            if self.mode == "eager":
                return _forward(tf, ps, x, spec.activation, spec.head).numpy()
            return self._predictor(spec, device)(ps, x).numpy()

    def _predictor(self, spec: Spec, device: str) -> Any:
        key = (device, spec.activation, spec.head)
        if key not in _PREDICTORS:
            tf = self._tf()
            act, head = spec.activation, spec.head
            _PREDICTORS[key] = tf.function(
                lambda ps, x: _forward(tf, ps, x, act, head), jit_compile=True, reduce_retracing=True
            )
        return _PREDICTORS[key]
