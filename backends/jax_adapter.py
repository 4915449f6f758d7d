"""JAX/Flax adapter: a flax.linen Dense stack trained with optax, NumPy in and out.

Both modes keep X and Y on the device and hand the step the batch's indices, so they differ
only in who runs the loop over batches:
- "compiled" (variant "jax.jit-scan-epoch"): one jitted call per epoch. lax.scan runs the full
  batches of the (n_full, B) index array, gathering each batch from X/Y inside, and the last
  partial batch (if the schedule keeps one) follows in the same call.
- "eager" (variant "jax.jit-step"): the per-batch Python loop of the Flax/optax tutorials: one call
  of a jitted train step per batch. (JAX without any jit dispatches every primitive from Python
  through its autodiff tracer, which measures the tracer rather than training; no tutorial trains
  that way.)
Every jitted function is compiled ahead of time inside epoch 0's timing (that compile's own
seconds are compile_seconds), and cached per model, device and shapes, so repeated trainings in
one process do not recompile. params and optimizer state are donated.

jax, flax and optax are imported lazily (`fw()`), so this module imports without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from backends import jax_runtime
from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.jax_runtime import THREADS, parse_xla_threads
from backends.spec import HEAD_LOSS, OptimizerSpec, Schedule, Spec, TrainResult

_COMPILED: dict[tuple, Any] = {}  # (what, model key, device, argument shapes) -> AOT-compiled function
_VARIANTS = {"compiled": "jax.jit-scan-epoch", "eager": "jax.jit-step"}


# ----------------------------------------------------------------------------- model and math
# A model key is (layer sizes, hidden activation, head, optimizer spec): all the traced math
# depends on; dtype and data shapes come from the arguments.


def _model_key(spec: Spec) -> tuple:
    return (tuple(spec.layer_sizes), spec.activation, spec.head, spec.optimizer)


@cache
def _model(sizes: tuple[int, ...], activation: str) -> Any:
    """A flax.linen Dense stack returning logits; kernels are (in, out) like the spec's weights."""
    nn, jnp = jax_runtime.fw()["nn"], jax_runtime.fw()["jnp"]
    act = {"linear": lambda z: z, "relu": nn.relu, "tanh": jnp.tanh, "sigmoid": nn.sigmoid}[activation]

    class DenseStack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, width in enumerate(sizes):
                x = nn.Dense(width, precision="highest", name=f"dense_{i}")(x)
                if i < len(sizes) - 1:
                    x = act(x)
            return x

    return DenseStack()


def _loss_fn(key: tuple) -> Callable:
    """Mean loss from logits, as numpy_reference.loss_and_dlogits defines it."""
    fw = jax_runtime.fw()
    jnp, optax = fw["jnp"], fw["optax"]
    sizes, activation, head, _ = key
    model = _model(sizes[1:], activation)
    per_element = {
        "mse": lambda z, y: (z - y) ** 2,
        "bce": optax.sigmoid_binary_cross_entropy,
        "cce": optax.softmax_cross_entropy,
    }[HEAD_LOSS[head]]

    def loss_fn(params, x, y):
        return jnp.mean(per_element(model.apply({"params": params}, x), y))

    return loss_fn


def _optimizer(o: OptimizerSpec) -> Any:
    """optax's Adam is the spec's formulation (eps outside sqrt(v_hat), eps_root 0; epsilon "hat" as a
    per-step eps schedule through inject_hyperparams); its SGD
    momentum trace is torch's buf = m * buf + g (nesterov off)."""
    optax, jnp = jax_runtime.fw()["optax"], jax_runtime.fw()["jnp"]
    if o.name == "adam" and o.epsilon == "hat":  # Keras' placement = the standard one with eps / sqrt(1-b2^t)
        eps_t = lambda count: o.eps / jnp.sqrt(1 - o.beta2 ** (count + 1))  # noqa: E731
        return optax.inject_hyperparams(optax.adam)(o.learning_rate, o.beta1, o.beta2, eps_t, 0.0, nesterov=False)
    if o.name == "adam":
        return optax.adam(o.learning_rate, b1=o.beta1, b2=o.beta2, eps=o.eps, eps_root=0.0, nesterov=False)
    return optax.sgd(o.learning_rate, momentum=o.momentum or None, nesterov=False)


@cache
def _step_fn(key: tuple) -> tuple[Callable, Any]:
    """One optimizer step on the batch idx of X/Y: (params, opt_state, X, Y, idx) ->
    (params, opt_state, loss before the update); and the optax transformation."""
    fw = jax_runtime.fw()
    jax, optax = fw["jax"], fw["optax"]
    grad_fn = jax.value_and_grad(_loss_fn(key))
    tx = _optimizer(key[3])

    def step(params, opt_state, X, Y, idx):
        loss, grads = grad_fn(params, X[idx], Y[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, tx


@cache
def _epoch_fn(key: tuple) -> Callable:
    """The jitted epoch: scan over the full batches, then the last partial one; returns the
    sample-weighted sum of the batch losses."""
    fw = jax_runtime.fw()
    jax, jnp = fw["jax"], fw["jnp"]
    step, _ = _step_fn(key)

    def epoch(params, opt_state, X, Y, full, last):
        def body(carry, idx):
            p, s, loss = step(*carry, X, Y, idx)
            return (p, s), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), full)
        total = jnp.sum(losses) * full.shape[1]
        if last is not None:
            params, opt_state, loss = step(params, opt_state, X, Y, last)
            total = total + loss * last.shape[0]
        return params, opt_state, total

    return jax.jit(epoch, donate_argnums=(0, 1))


@cache
def _batch_step_fn(key: tuple) -> Callable:
    return jax_runtime.fw()["jax"].jit(_step_fn(key)[0], donate_argnums=(0, 1))


@cache
def _predict_fn(key: tuple) -> Callable:
    jax = jax_runtime.fw()["jax"]
    sizes, activation, head, _ = key
    model = _model(sizes[1:], activation)
    act = {"linear": lambda z: z, "sigmoid": jax.nn.sigmoid, "softmax": jax.nn.softmax}[head]
    return jax.jit(lambda params, X: act(model.apply({"params": params}, X)))


def _compiled(what: str, key: tuple, device: Any, jitted: Callable, args: tuple) -> tuple[Any, float]:
    """The AOT-compiled `jitted` for these argument shapes, and the seconds spent compiling it
    now (0 when cached). Calling it never retraces, whatever jax's config does later."""
    jax = jax_runtime.fw()["jax"]
    shapes = tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(args))
    treedef = str(jax.tree.structure(args))
    ckey = (what, key, str(device), treedef, shapes)
    if ckey in _COMPILED:
        return _COMPILED[ckey], 0.0
    t0 = time.perf_counter()
    fn = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    _COMPILED[ckey] = fn
    return fn, seconds


def _to_tree(params: list[np.ndarray], dtype: np.dtype, device: Any) -> dict:
    """[W0, b0, W1, b1, ...] (in, out) -> flax params {dense_i: {kernel, bias}} on device."""
    tree = {
        f"dense_{i}": {"kernel": np.asarray(params[2 * i], dtype=dtype), "bias": np.asarray(params[2 * i + 1], dtype)}
        for i in range(len(params) // 2)
    }
    return jax_runtime.fw()["jax"].device_put(tree, device)


def _from_tree(tree: dict, dtype: np.dtype) -> list[np.ndarray]:
    """flax params -> [W0, b0, ...] as NumPy copies (copies: the device buffers get donated)."""
    out: list[np.ndarray] = []
    for i in range(len(tree)):
        layer = tree[f"dense_{i}"]
        out += [np.array(layer["kernel"], dtype=dtype), np.array(layer["bias"], dtype=dtype)]
    return out


# ----------------------------------------------------------------------------- the backend


class JaxBackend(Backend):
    framework = "jax"

    def _jax(self) -> Any:
        return jax_runtime.fw(self.threads)["jax"]

    def _gpus(self) -> list:
        try:
            return [d for d in self._jax().devices("gpu") if d.platform == "gpu"]
        except RuntimeError:  # no CUDA backend (CPU-only jaxlib, or JAX_PLATFORMS=cpu)
            return []

    def _device(self, device: str) -> Any:
        self.check_device(device)
        return self._gpus()[0] if device == "gpu" else self._jax().devices("cpu")[0]

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._gpus() else [])

    def thread_settings(self) -> dict:
        """What XLA started with: the CPU count its CPU pools were sized from (the threads in
        force), and XLA_FLAGS as it read them (recorded, though jaxlib 0.10.2 does not obey
        their thread flags)."""
        self._jax()
        flags = THREADS.get("xla_flags", "")
        return {
            "threads": self.threads,
            "xla_cpu_pool_threads": THREADS.get("xla_cpu_pool_threads"),
            "xla_flags": flags,
            **parse_xla_threads(flags),
            "xla_client_started_before_adapter": THREADS.get("xla_client_started_before_adapter"),
        }

    def device_info(self, device: str) -> dict:
        d = self._device(device)
        if device == "cpu":
            return {"device": device}
        info: dict[str, Any] = {"device": device, "name": d.device_kind}
        info["compute_capability"] = getattr(d, "compute_capability", None)
        try:
            from jax.extend.backend import get_backend

            info["platform_version"] = get_backend("gpu").platform_version  # CUDA version string
        except (ImportError, RuntimeError, AttributeError):
            pass
        try:
            from jax._src.lib import cuda_versions  # the CUDA plugin's version probes (private)

            v = int(cuda_versions.cuda_driver_get_version())
            info["driver"] = f"CUDA driver API {v // 1000}.{v % 1000 // 10}"
        except (ImportError, AttributeError, RuntimeError, TypeError, ValueError):
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
        check_inputs(spec, X, Y, init_params, schedule)
        # 64-bit types only inside a float64 run (scoped, not process-global), so float32 runs
        # trace the same whatever ran before them.
        with self._jax().enable_x64(spec.dtype == "float64"):
            return self._train(spec, X, Y, init_params, schedule, dev, record_params)

    def _train(self, spec, X, Y, init_params, schedule: Schedule, dev, record_params: bool) -> TrainResult:
        jax = self._jax()
        dt = np.dtype(spec.dtype)
        key = _model_key(spec)
        Xd = jax.device_put(np.asarray(X, dtype=dt), dev)
        Yd = jax.device_put(np.asarray(Y, dtype=dt), dev)
        params = _to_tree(init_params, dt, dev)
        opt_state = jax.device_put(_step_fn(key)[1].init(params), dev)
        eager = self.mode == "eager"

        losses, seconds, history = [], [], []
        fns, compile_seconds = None, 0.0
        # The indices go to the device before the clock starts (int32: XLA's index type): all
        # epochs at once for the compiled mode, each epoch's before it for the eager loop.
        indices = self._indices(schedule, 0, schedule.epochs, dev) if not eager else None
        for e in range(schedule.epochs):
            batches = indices[e] if not eager else self._indices(schedule, e, e + 1, dev)[0]
            t0 = time.perf_counter()
            if fns is None:  # epoch 0 includes the compile (its own seconds are compile_seconds)
                fns, compile_seconds = self._compile(key, dev, (params, opt_state, Xd, Yd), batches)
            if not eager:
                params, opt_state, total = fns[0](params, opt_state, Xd, Yd, *batches)
                jax.block_until_ready((params, opt_state, total))
                seconds.append(time.perf_counter() - t0)
                losses.append(float(total) / schedule.samples_per_epoch)
            else:
                batch_losses = []
                for i, idx in enumerate(batches):
                    params, opt_state, loss = fns[i >= schedule.n_full](params, opt_state, Xd, Yd, idx)
                    batch_losses.append(loss)
                jax.block_until_ready((params, opt_state, batch_losses))
                seconds.append(time.perf_counter() - t0)
                total = sum(float(b) * len(i) for b, i in zip(batch_losses, batches))
                losses.append(total / schedule.samples_per_epoch)
            if record_params:
                history.append(_from_tree(params, dt))
        return self._result(spec, params, losses, seconds, compile_seconds, history if record_params else None)

    def _indices(self, schedule: Schedule, start: int, stop: int, dev: Any) -> list[list]:
        """Per epoch: [full (n_full, B), last or None] (compiled) or every batch's indices (eager)."""
        out = []
        for e in range(start, stop):
            full, last = schedule.full_batches(e).astype(np.int32), schedule.last_batch(e)
            last = None if last is None else last.astype(np.int32)
            out.append([*full, *([] if last is None else [last])] if self.mode == "eager" else [full, last])
        return self._jax().block_until_ready(self._jax().device_put(out, dev))

    def _compile(self, key: tuple, dev: Any, state: tuple, batches: list) -> tuple[list, float]:
        """compiled: [epoch function]; eager: [step on a full batch, step on the last batch]."""
        if self.mode == "compiled":
            fn, seconds = _compiled("epoch", key, dev, _epoch_fn(key), (*state, *batches))
            return [fn], seconds
        fn, seconds = _compiled("step", key, dev, _batch_step_fn(key), (*state, batches[0]))
        fn_last, more = _compiled("step", key, dev, _batch_step_fn(key), (*state, batches[-1]))
        return [fn, fn_last], seconds + more

    def _result(self, spec, params, losses, seconds, compile_seconds, history) -> TrainResult:
        dt = np.dtype(spec.dtype)
        leaves = self._jax().tree.leaves(params)
        if any(leaf.dtype != dt for leaf in leaves):  # a dtype slip (say x64 leaking into float32) shows here
            raise BackendError(f"jax trained in {sorted({str(leaf.dtype) for leaf in leaves})}, not {spec.dtype}")
        return TrainResult(
            params=_from_tree(params, dt),
            loss_history=np.asarray(losses, dtype=np.float64),
            epoch_seconds=np.asarray(seconds, dtype=np.float64),
            compile_seconds=float(compile_seconds),
            param_history=history,
            extra={"variant": _VARIANTS[self.mode], "fallback": None},
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        dev = self._device(device)
        X = check_x(spec, X)
        check_params(spec, params)
        jax = self._jax()
        dt = np.dtype(spec.dtype)
        with jax.enable_x64(spec.dtype == "float64"):
            out = _predict_fn(_model_key(spec))(_to_tree(params, dt, dev), jax.device_put(X.astype(dt), dev))
            return np.array(out, dtype=dt)
