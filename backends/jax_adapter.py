"""JAX/Flax adapter: a flax.linen Dense stack trained with optax, NumPy in and out.

mode "compiled": one jitted call per epoch. Inside it, lax.scan runs the full batches of the
(n_full, B) index array, gathering each batch from the device-resident X/Y, and the last
partial batch (if the schedule keeps one) follows in the same call. The call is compiled ahead
of time (so its compile time is measured apart from the epochs) and cached per spec, device
and shapes, so repeated trainings reuse it. params and optimizer state are donated.
mode "eager": the per-batch Python loop without jit: every operation is dispatched on its own.

jax, flax and optax are imported lazily (`_fw()`), so this module imports without them.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import threading
import time
from functools import cache
from typing import Any

import numpy as np

from backends.base import Backend, BackendError
from backends.spec import HEAD_LOSS, OptimizerSpec, Schedule, Spec, TrainResult

_LOCK = threading.Lock()
_FW: dict[str, Any] = {}  # the imported modules, filled once by _fw()
_THREADS: dict[str, Any] = {}  # what XLA started with, recorded at first use
# (model key, device, arg shapes) -> AOT-compiled epoch function
_COMPILED: dict[tuple, Any] = {}


def _fw() -> dict[str, Any]:
    """Import jax, flax.linen and optax once, setting first what XLA reads when it starts."""
    with _LOCK:
        if _FW:
            return _FW
        # Read by the GPU client when it starts: allocate on demand so peak memory is meaningful.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        started_before = False
        if "jax" in sys.modules:
            try:
                from jax._src import xla_bridge

                started_before = bool(xla_bridge.backends_are_initialized())
            except (ImportError, AttributeError):  # private API moved: say we cannot tell
                started_before = None
        import flax.linen as nn
        import jax
        import jax.numpy as jnp
        import optax

        # No TF32 on GPU: every f32 matmul at full precision (no effect on CPU).
        jax.config.update("jax_default_matmul_precision", "highest")
        _THREADS.update(
            xla_flags=os.environ.get("XLA_FLAGS", ""),
            xla_client_started_before_adapter=started_before,
        )
        _FW.update(jax=jax, jnp=jnp, nn=nn, optax=optax)
        return _FW


def _enable_x64_if(dtype: str) -> None:
    """float64 needs jax_enable_x64 (process-global). Every array we make is cast to spec.dtype
    explicitly, so later float32 runs stay float32."""
    jax = _fw()["jax"]
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def _parse_xla_threads(flags: str) -> dict[str, Any]:
    out: dict[str, Any] = {"xla_cpu_multi_thread_eigen": None, "intra_op_parallelism_threads": None}
    for tok in flags.split():
        key, _, val = tok.lstrip("-").partition("=")
        if key == "xla_cpu_multi_thread_eigen":
            out[key] = val.lower() != "false"
        elif key == "intra_op_parallelism_threads":
            out[key] = int(val)
    return out


# ----------------------------------------------------------------------------- model and math


@cache
def _model(sizes: tuple[int, ...], activation: str) -> Any:
    """A flax.linen Dense stack; kernels (in, out) as in the spec, precision 'highest' (no TF32)."""
    nn, jnp = _fw()["nn"], _fw()["jnp"]
    act = {"linear": lambda z: z, "relu": nn.relu, "tanh": jnp.tanh, "sigmoid": nn.sigmoid}[activation]

    class DenseStack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, width in enumerate(sizes):
                x = nn.Dense(width, precision="highest", name=f"dense_{i}")(x)
                if i < len(sizes) - 1:
                    x = act(x)
            return x  # logits

    return DenseStack()


def _model_key(spec: Spec) -> tuple:
    """Everything the traced math depends on (the data's shapes come separately):
    (layer sizes, hidden activation, head, optimizer spec)."""
    return (tuple(spec.layer_sizes), spec.activation, spec.head, spec.optimizer)


def _loss_fn(key: tuple):
    """Mean loss from logits, exactly as numpy_reference.loss_and_dlogits defines it."""
    fw = _fw()
    jnp, optax = fw["jnp"], fw["optax"]
    sizes, activation, head, _ = key
    model = _model(sizes[1:], activation)
    per_sample = {
        "mse": lambda z, y: (z - y) ** 2,
        "bce": optax.sigmoid_binary_cross_entropy,
        "cce": optax.softmax_cross_entropy,
    }[HEAD_LOSS[head]]

    def loss_fn(params, x, y):
        return jnp.mean(per_sample(model.apply({"params": params}, x), y))

    return loss_fn


def _optimizer(o: OptimizerSpec):
    """optax's Adam is the spec's formulation (eps outside sqrt(v_hat), eps_root 0); its SGD
    momentum trace is torch's buf = m * buf + g (nesterov off)."""
    optax = _fw()["optax"]
    if o.name == "adam":
        return optax.adam(o.learning_rate, b1=o.beta1, b2=o.beta2, eps=o.eps, eps_root=0.0, nesterov=False)
    return optax.sgd(o.learning_rate, momentum=o.momentum or None, nesterov=False)


def _head(name: str):
    jax = _fw()["jax"]
    return {"linear": lambda z: z, "sigmoid": jax.nn.sigmoid, "softmax": lambda z: jax.nn.softmax(z, axis=-1)}[name]


@cache
def _step_fn(key: tuple):
    """One optimizer step on one batch: (params, opt_state, x, y) -> (params, opt_state, loss)."""
    fw = _fw()
    jax, optax = fw["jax"], fw["optax"]
    grad_fn = jax.value_and_grad(_loss_fn(key))
    tx = _optimizer(key[3])

    def step(params, opt_state, x, y):
        loss, grads = grad_fn(params, x, y)  # loss before the update
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, tx


@cache
def _epoch_fn(key: tuple):
    """The jitted epoch: scan over the full batches, then the last partial one; returns the
    sample-weighted sum of the batch losses."""
    fw = _fw()
    jax, jnp = fw["jax"], fw["jnp"]
    step, _ = _step_fn(key)

    def epoch(params, opt_state, X, Y, full, last):
        def body(carry, idx):
            p, s = carry
            p, s, loss = step(p, s, X[idx], Y[idx])
            return (p, s), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), full)
        total = jnp.sum(losses) * full.shape[1]
        if last is not None:
            params, opt_state, loss = step(params, opt_state, X[last], Y[last])
            total = total + loss * last.shape[0]
        return params, opt_state, total

    return jax.jit(epoch, donate_argnums=(0, 1))


@cache
def _predict_fn(key: tuple, jit: bool):
    sizes, activation, head_name, _ = key
    model = _model(sizes[1:], activation)
    head = _head(head_name)

    def predict(params, X):
        return head(model.apply({"params": params}, X))

    return _fw()["jax"].jit(predict) if jit else predict


def _to_tree(params: list[np.ndarray], dtype: np.dtype, device: Any) -> dict:
    """[W0, b0, W1, b1, ...] (in, out) -> flax params {dense_i: {kernel, bias}} on device."""
    jax = _fw()["jax"]
    tree = {
        f"dense_{i}": {"kernel": np.asarray(params[2 * i], dtype=dtype), "bias": np.asarray(params[2 * i + 1], dtype)}
        for i in range(len(params) // 2)
    }
    return jax.device_put(tree, device)


def _from_tree(tree: dict, dtype: np.dtype) -> list[np.ndarray]:
    """flax params -> [W0, b0, ...] as NumPy copies of spec.dtype (copies: buffers get donated)."""
    out: list[np.ndarray] = []
    for i in range(len(tree)):
        layer = tree[f"dense_{i}"]
        out += [np.array(layer["kernel"], dtype=dtype), np.array(layer["bias"], dtype=dtype)]
    return out


def _check_inputs(spec: Spec, X: np.ndarray, Y: np.ndarray, init_params: list[np.ndarray], schedule: Schedule) -> None:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or X.shape[1] != spec.n_inputs:
        raise ValueError(
            f"X has shape {X.shape}, the spec expects (n, {spec.n_inputs}); pass a 2-D feature matrix "
            f"with spec.n_inputs columns"
        )
    if Y.ndim != 2 or Y.shape != (X.shape[0], spec.n_outputs):
        raise ValueError(
            f"Y has shape {Y.shape}, the spec expects ({X.shape[0]}, {spec.n_outputs}); make float targets "
            f"with datasets.preprocess.targets(y, task, n_outputs) (one-hot for softmax, a column otherwise)"
        )
    if schedule.n_samples != X.shape[0]:
        raise ValueError(
            f"the schedule orders {schedule.n_samples} samples but X has {X.shape[0]}; "
            f"make it with make_schedule(spec, len(X), seed)"
        )
    sizes = spec.layer_sizes
    want = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]
    got = [tuple(np.shape(p)) for p in init_params]
    if got != want:
        raise ValueError(
            f"init_params shapes {got} do not match the spec's layers {sizes} (weights (in, out), biases (out,)): "
            f"expected {want}; make them with init_params(spec, seed)"
        )


class JaxBackend(Backend):
    framework = "jax"

    # ------------------------------------------------------------------ environment

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._gpus() else [])

    def _gpus(self) -> list:
        jax = _fw()["jax"]
        try:
            return [d for d in jax.devices("gpu") if d.platform == "gpu"]
        except RuntimeError:  # no CUDA backend (CPU-only jaxlib, or JAX_PLATFORMS=cpu)
            return []

    def _device(self, device: str) -> Any:
        self.check_device(device)
        jax = _fw()["jax"]
        return self._gpus()[0] if device == "gpu" else jax.devices("cpu")[0]

    def versions(self) -> dict[str, str]:
        out = {"python": platform.python_version()}
        for pkg in ("jax", "jaxlib", "flax", "optax", "jax-cuda12-plugin", "jax-cuda13-plugin"):
            try:
                out[pkg] = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                if pkg in ("jax", "jaxlib", "flax", "optax"):
                    out[pkg] = "not installed"
        return out

    def thread_settings(self) -> dict:
        """XLA has no run-time thread API: it reads XLA_FLAGS once, when its client starts
        (set_thread_env writes them before that). Report what it started with."""
        jax = _fw()["jax"]
        jax.devices("cpu")  # make sure the client has started, with the flags recorded
        flags = _THREADS.get("xla_flags", "")
        return {
            "threads": self.threads,
            "xla_flags": flags,
            **_parse_xla_threads(flags),
            "xla_client_started_before_adapter": _THREADS.get("xla_client_started_before_adapter"),
            "cpu_count": os.cpu_count(),
        }

    def device_info(self, device: str) -> dict:
        d = self._device(device)
        info: dict[str, Any] = {"device": device, "platform": d.platform, "name": d.device_kind}
        if device == "cpu":
            info["name"] = platform.processor() or platform.machine()
            return info
        info["compute_capability"] = getattr(d, "compute_capability", None)
        try:
            from jax.extend.backend import get_backend

            info["platform_version"] = get_backend("gpu").platform_version  # CUDA / driver versions
        except (ImportError, RuntimeError, AttributeError):
            pass
        stats = d.memory_stats() or {}
        if "bytes_limit" in stats:
            info["memory_bytes"] = int(stats["bytes_limit"])
        return info

    def peak_device_memory(self, device: str) -> int | None:
        if device != "gpu":
            return None
        stats = self._device(device).memory_stats() or {}
        return int(stats["peak_bytes_in_use"]) if "peak_bytes_in_use" in stats else None

    # ------------------------------------------------------------------ training

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
        dev = self._device(device)
        _check_inputs(spec, X, Y, init_params, schedule)
        _enable_x64_if(spec.dtype)  # before any float64 array reaches jax
        jax = _fw()["jax"]
        dt = np.dtype(spec.dtype)
        Xd = jax.device_put(np.asarray(X, dtype=dt), dev)
        Yd = jax.device_put(np.asarray(Y, dtype=dt), dev)
        params = _to_tree(init_params, dt, dev)
        key = _model_key(spec)
        _, tx = _step_fn(key)
        opt_state = jax.device_put(tx.init(params), dev)
        if self.mode == "compiled":
            return self._train_compiled(spec, key, dev, Xd, Yd, params, opt_state, schedule, record_params)
        return self._train_eager(spec, key, dev, Xd, Yd, params, opt_state, schedule, record_params)

    def _train_compiled(self, spec, key, dev, Xd, Yd, params, opt_state, schedule: Schedule, record_params):
        jax = _fw()["jax"]
        dt = np.dtype(spec.dtype)
        # Every epoch's indices go to the device before the clock starts (int32: XLA's native index).
        full = jax.device_put([schedule.full_batches(e).astype(np.int32) for e in range(schedule.epochs)], dev)
        last_np = [schedule.last_batch(e) for e in range(schedule.epochs)]
        last = (
            [None] * schedule.epochs
            if last_np[0] is None
            else jax.device_put([a.astype(np.int32) for a in last_np], dev)
        )
        args = (params, opt_state, Xd, Yd, full[0], last[0])
        ckey = (key, str(dev), last[0] is None, *((a.shape, str(a.dtype)) for a in jax.tree.leaves(args)))
        losses, seconds, history = [], [], []
        compile_seconds = 0.0
        cache_hit = ckey in _COMPILED
        for e in range(schedule.epochs):
            t0 = time.perf_counter()
            if e == 0 and not cache_hit:  # epoch 0 includes the compile, also reported apart
                _COMPILED[ckey] = _epoch_fn(key).lower(*args).compile()
                compile_seconds = time.perf_counter() - t0
            params, opt_state, total = _COMPILED[ckey](params, opt_state, Xd, Yd, full[e], last[e])
            jax.block_until_ready((params, opt_state, total))
            seconds.append(time.perf_counter() - t0)
            losses.append(float(total) / schedule.samples_per_epoch)
            if record_params:
                history.append(_from_tree(params, dt))
        return self._result(
            spec, params, losses, seconds, compile_seconds, history if record_params else None, cache_hit
        )

    def _train_eager(self, spec, key, dev, Xd, Yd, params, opt_state, schedule: Schedule, record_params):
        """The tutorial loop: per batch, gather, value_and_grad, optax update; no jit anywhere."""
        jax = _fw()["jax"]
        dt = np.dtype(spec.dtype)
        step, _ = _step_fn(key)
        losses, seconds, history = [], [], []
        for e in range(schedule.epochs):
            batches = [idx.astype(np.int32) for idx in schedule.batches(e)]
            t0 = time.perf_counter()
            batch_losses = []
            for idx in batches:
                params, opt_state, loss = step(params, opt_state, Xd[idx], Yd[idx])
                batch_losses.append(loss)
            jax.block_until_ready((params, opt_state, batch_losses))
            seconds.append(time.perf_counter() - t0)
            losses.append(sum(float(b) * len(i) for b, i in zip(batch_losses, batches)) / schedule.samples_per_epoch)
            if record_params:
                history.append(_from_tree(params, dt))
        return self._result(spec, params, losses, seconds, 0.0, history if record_params else None, None)

    def _result(self, spec, params, losses, seconds, compile_seconds, history, cache_hit) -> TrainResult:
        dt = np.dtype(spec.dtype)
        out = _from_tree(params, dt)
        leaves = _fw()["jax"].tree.leaves(params)
        if any(leaf.dtype != dt for leaf in leaves):  # x64 leaking into a float32 run would show here
            raise BackendError(f"jax trained in {[str(leaf.dtype) for leaf in leaves]}, not {spec.dtype}")
        return TrainResult(
            params=out,
            loss_history=np.asarray(losses, dtype=np.float64),
            epoch_seconds=np.asarray(seconds, dtype=np.float64),
            compile_seconds=float(compile_seconds),
            param_history=history,
            extra={"mode": self.mode, "compile_cache_hit": cache_hit},
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        dev = self._device(device)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != spec.n_inputs:
            raise ValueError(f"X has shape {X.shape}, the spec expects (n, {spec.n_inputs}); pass a 2-D feature matrix")
        _enable_x64_if(spec.dtype)
        jax = _fw()["jax"]
        dt = np.dtype(spec.dtype)
        fn = _predict_fn(_model_key(spec), self.mode == "compiled")
        out = fn(_to_tree(params, dt, dev), jax.device_put(X.astype(dt), dev))
        return np.array(out, dtype=dt)
