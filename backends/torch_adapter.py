"""PyTorch adapter: an nn.Sequential of nn.Linear layers, NumPy in and out.

Variants (the one used is in TrainResult.extra["variant"]; thread_settings() names the CPU one):
- "eager" (mode eager): the tutorial loop. Per batch: gather X[idx], zero_grad, forward, loss,
  backward, torch.optim step (single-tensor kernels on CPU, foreach on CUDA), loss.item().
- "fused": the tuned eager loop. One index_select gathers the epoch's batches, torch.optim with
  fused=True, the loss summed on-tensor and read once per epoch. Fallback when compile fails.
- "scan" (mode compiled, CPU default): one torch.compile'd call per epoch. grad_and_value over
  functional_call(model) gives loss and gradients, the update is OptimizerSpec's formulas written
  out (torch.optim cannot run inside scan), torch._higher_order_ops.scan loops over the full
  batches and the last partial batch follows in the same graph. Inductor's cpp_wrapper puts
  scan's host loop in C++. Compiled once per process per (model, optimizer, shapes, threads).
- "cuda-graph" (mode compiled, GPU default): the step with torch.optim(capturable=True) captured
  once as a CUDA graph and replayed per full batch. Written for CUDA, not run on a GPU yet.

Measured on the 2-core dev VM (torch 2.13 CPU, 1 thread, float32; steady-state samples/s, median
of 6 = 3 processes x 2 train() calls; compile seconds with inductor's on-disk cache warm / cold):
                          2-4-2-1 tanh, Adam, B=32, n=1000   784-128-64-10 relu, SGD, B=100, n=8000
  eager                   126k                               129k
  fused                   191k                               125k
  compiled step per batch 404k (compile 2.8 s)               142k (2.8 s)
  scan, Python wrapper    709k (6.0 s)                       157k (4.2 s)
  scan, cpp_wrapper       1.57M (5.8 s; cold 15 s)           168k (3.9 s; cold 11.5 s)
Same machine and session, small MLP: jax (lax.scan) 4.5M, tensorflow 2.55M. The rest of torch's
gap is per-step tensor allocation in the compiled loop (malloc/free ~30% of a perf profile) and
ATen matmul dispatch on 2x4 matrices.

Same math as backends/numpy_reference.py: weights (in, out) in the spec, transposed into and out
of Linear.weight (out, in); losses from logits; Adam with eps outside sqrt(v_hat). In float64,
torch.optim's Adam/SGD agree with those formulas to rounding (not bit-for-bit: they use lerp and
fused multiply-adds), the written-out update bit-for-bit for SGD.
torch is imported lazily (`_torch()`), so this module imports without it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.spec import OptimizerSpec, Schedule, Spec, TrainResult

VARIANTS = ("eager", "fused", "scan", "cuda-graph")
_CPU_COMPILED_VARIANT = "scan"  # the fastest measured (module docstring)
_GPU_COMPILED_VARIANT = "cuda-graph"
_ACTIVATIONS = {"linear": "Identity", "relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}

_STATE: dict[str, Any] = {"interop_set": None}  # whether set_num_interop_threads(1) took effect
_COMPILED: dict[tuple, _Compiled] = {}  # compile key -> compiled epoch function (scan)
_GRAPHS: dict[tuple, _GraphStep] = {}  # compile key -> captured CUDA graph step
_PREDICT: dict[tuple, Any] = {}  # (sizes, activation, dtype, device) -> model that predict() loads params into


@cache
def _torch() -> Any:
    import torch

    return torch


def _setup(threads: int | None) -> Any:
    """Import torch and set its thread API from `threads` before first use."""
    torch = _torch()
    if threads:
        torch.set_num_threads(int(threads))
        if _STATE["interop_set"] is None:
            # Allowed once per process, and only before any inter-op parallel work.
            try:
                torch.set_num_interop_threads(1)
                _STATE["interop_set"] = True
            except RuntimeError:
                _STATE["interop_set"] = False
    return torch


def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version (Linux), or None where it cannot be read."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            first = f.readline()
    except OSError:
        return None
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else None


def _tdevice(device: str) -> str:
    return "cuda" if device == "gpu" else "cpu"


def _no_tf32(torch: Any) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


# ----------------------------------------------------------------------------- model and loss


def _build_model(torch: Any, spec: Spec, device: str, dtype: Any) -> Any:
    """nn.Sequential of Linear layers with spec.activation between them (the head stays in the loss)."""
    nn = torch.nn
    layers: list[Any] = []
    sizes = spec.layer_sizes
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        # skip_init: the spec's weights are loaded next; no RNG draw, no wasted init.
        layers.append(torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out, device=device, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(getattr(nn, _ACTIVATIONS[spec.activation])())
    return nn.Sequential(*layers)


def _to_torch_layout(torch: Any, params: list[np.ndarray], device: str, dtype: Any) -> list[Any]:
    """[W0 (in, out), b0, ...] -> [weight (out, in), bias, ...] tensors."""
    out = []
    for i, p in enumerate(params):
        a = np.asarray(p).T if i % 2 == 0 else np.asarray(p)
        out.append(_contiguous_strides(torch.tensor(np.ascontiguousarray(a), dtype=dtype, device=device)))
    return out


def _load(torch: Any, model: Any, params: list[np.ndarray]) -> None:
    with torch.no_grad():
        for t, p in zip(model.parameters(), _to_torch_layout(torch, params, "cpu", model[0].weight.dtype)):
            t.copy_(p)


def _export(tensors: list[Any], dtype: np.dtype) -> list[np.ndarray]:
    """[weight (out, in), bias, ...] -> NumPy [W (in, out), b, ...] of the spec's dtype."""
    out = []
    for i, t in enumerate(tensors):
        a = t.detach().cpu().numpy()
        out.append(np.ascontiguousarray(a.T if i % 2 == 0 else a, dtype=dtype))
    return out


def _loss_fn(torch: Any, loss: str) -> Callable:
    """The mean loss from logits, as in numpy_reference.loss_and_dlogits."""
    F = torch.nn.functional
    if loss == "mse":
        return lambda z, y: F.mse_loss(z, y, reduction="mean")
    if loss == "bce":
        return lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="mean")
    if loss == "cce":  # probability targets: mean over rows of -sum(y * log_softmax(z))
        return lambda z, y: F.cross_entropy(z, y, reduction="mean")
    raise BackendError(f"unknown loss {loss!r}")


def _optimizer(torch: Any, params: Any, o: OptimizerSpec, **impl: bool) -> Any:
    """torch.optim with every constant explicit; impl picks foreach/fused/capturable."""
    if o.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=o.learning_rate,
            momentum=o.momentum,
            dampening=0.0,
            weight_decay=0.0,
            nesterov=False,
            maximize=False,
            **impl,
        )
    # torch.optim.Adam divides by sqrt(v_hat) + eps: the spec's formulation.
    return torch.optim.Adam(
        params,
        lr=o.learning_rate,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        weight_decay=0.0,
        amsgrad=False,
        maximize=False,
        **impl,
    )


# ----------------------------------------------------------------------------- functional step (scan)


def _init_state(torch: Any, o: OptimizerSpec, params: tuple) -> tuple:
    if o.name == "sgd":
        return (tuple(torch.zeros_like(p) for p in params),) if o.momentum else ()
    m = tuple(torch.zeros_like(p) for p in params)
    v = tuple(torch.zeros_like(p) for p in params)
    return m, v, torch.zeros((), dtype=params[0].dtype, device=params[0].device)


def _update(torch: Any, o: OptimizerSpec, params: tuple, grads: tuple, state: tuple) -> tuple[tuple, tuple]:
    """One optimizer step written out, exactly OptimizerSpec's formulas; returns new tensors."""
    lr = o.learning_rate
    if o.name == "sgd":
        if o.momentum:
            bufs = tuple(o.momentum * b + g for b, g in zip(state[0], grads))
            return tuple(p - lr * b for p, b in zip(params, bufs)), (bufs,)
        return tuple(p - lr * g for p, g in zip(params, grads)), ()
    b1, b2 = o.beta1, o.beta2
    m, v, t = state
    t = t + 1
    m = tuple(b1 * mi + (1 - b1) * g for mi, g in zip(m, grads))
    v = tuple(b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads))
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    params = tuple(p - lr * (mi / bc1) / (torch.sqrt(vi / bc2) + o.eps) for p, mi, vi in zip(params, m, v))
    return params, (m, v, t)


def _make_epoch_fn(torch: Any, spec: Spec, model: Any, batch: int, n_full: int, tail: int) -> Callable:
    """A pure function (params, state, xs, ys, x_last, y_last) -> (params, state, loss sum) for one epoch."""
    from torch._higher_order_ops.scan import scan

    names = [n for n, _ in model.named_parameters()]
    loss_fn = _loss_fn(torch, spec.loss)
    o = spec.optimizer

    def loss_of(params: tuple, x: Any, y: Any) -> Any:
        return loss_fn(torch.func.functional_call(model, dict(zip(names, params)), (x,)), y)

    grad_and_loss = torch.func.grad_and_value(loss_of)

    def step(params: tuple, state: tuple, x: Any, y: Any) -> tuple:
        grads, loss = grad_and_loss(params, x, y)
        params, state = _update(torch, o, params, grads, state)
        return params, state, loss

    def body(carry: tuple, xy: tuple) -> tuple:
        params, state, loss = step(*carry, *xy)
        # scan needs the carry's metadata unchanged; a (1, k) result may come back with strides (1, 1).
        new = torch.utils._pytree.tree_map(_contiguous_strides, (params, state))
        return new, loss.clone()

    def epoch(params: tuple, state: tuple, xs: Any, ys: Any, x_last: Any, y_last: Any) -> tuple:
        total = torch.zeros((), dtype=xs.dtype, device=xs.device)
        if n_full == 1:  # full batch: no loop to scan
            params, state, loss = step(params, state, xs[0], ys[0])
            total = loss * batch
        elif n_full:
            (params, state), losses = scan(body, (params, state), (xs, ys))
            total = losses.sum() * batch
        if tail:
            params, state, loss = step(params, state, x_last, y_last)
            total = total + loss * tail
        return params, state, total

    return epoch


def _contiguous_strides(t: Any) -> Any:
    """t itself if it has row-major strides, else a row-major copy (size-1 dims included)."""
    want, strides = 1, []
    for size in reversed(t.shape):
        strides.insert(0, want)
        want *= size
    return t if tuple(t.stride()) == tuple(strides) else t.clone(memory_format=_torch().contiguous_format)


@dataclass
class _Compiled:
    """An epoch function and its compiled form, built on first use with the first options that work."""

    raw: Callable
    model: Any
    attempts: list[dict]
    fn: Callable | None = None
    options: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def build(self, torch: Any, args: tuple) -> float:
        """Compile with one throwaway call on args (the function is pure, so nothing changes);
        return the seconds it took. Raises the last error when no option set compiles."""
        from torch._dynamo.exc import BackendCompilerFailed
        from torch._inductor.exc import InductorError

        t0 = time.perf_counter()
        for options in self.attempts:
            fn = torch.compile(self.raw, fullgraph=True, dynamic=False, options=dict(options) or None)
            try:
                out = fn(*args)
            except (BackendCompilerFailed, InductorError) as e:
                self.failures.append(f"{options}: {_first_line(e)}")
                if options is self.attempts[-1]:
                    raise
                continue
            if args[2].device.type == "cuda":
                torch.cuda.synchronize()
            out[2].item()
            self.fn, self.options = fn, dict(options)
            break
        return time.perf_counter() - t0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _compiled_epoch(torch: Any, spec: Spec, device: str, batch: int, n_full: int, tail: int) -> _Compiled:
    """The epoch function for this spec and shapes, cached per process (compiled on first use)."""
    key = _key(spec, device, batch, n_full, tail, "scan")
    hit = _COMPILED.get(key)
    if hit is not None:
        return hit
    # One code object serves every spec/shape (closures), each a dynamo cache entry: room for many.
    dyn = torch._dynamo.config
    dyn.recompile_limit = max(dyn.recompile_limit, 256)
    dyn.accumulated_recompile_limit = max(dyn.accumulated_recompile_limit, 4096)
    model = _build_model(torch, spec, _tdevice(device), getattr(torch, spec.dtype))
    # cpp_wrapper: the host code (scan's loop included) in C++, not Python; measured faster per step.
    # It has codegen bugs on some graphs (seen: a full-batch linear MLP), hence the plain retry.
    attempts = [{"cpp_wrapper": True}, {}] if device == "cpu" else [{}]
    raw = _make_epoch_fn(torch, spec, model, batch, n_full, tail)
    _COMPILED[key] = entry = _Compiled(raw=raw, model=model, attempts=attempts)
    return entry


def _key(spec: Spec, device: str, batch: int, n_full: int, tail: int, variant: str) -> tuple:
    """What a compiled function is specialised on. Inductor's CPU kernels bake in the thread count."""
    model = (tuple(spec.layer_sizes), spec.activation, spec.loss, spec.optimizer, spec.dtype)
    return (variant, model, device, batch, n_full, tail, _torch().get_num_threads())


# ----------------------------------------------------------------------------- CUDA graph step


@dataclass
class _GraphStep:
    """A captured full-batch train step: copy a batch into x/y, replay graph; loss_sum accumulates."""

    model: Any
    opt: Any
    graph: Any
    x: Any
    y: Any
    loss_sum: Any
    init_state: Callable[[], None]


def _capture(torch: Any, spec: Spec, batch: int) -> _GraphStep:
    """Warm up the train step on a side stream, then capture it (PyTorch's whole-network capture recipe)."""
    dev, dt = "cuda", getattr(torch, spec.dtype)
    model = _build_model(torch, spec, dev, dt)
    with torch.no_grad():  # skip_init left memory uninitialised; the warm-up steps need numbers
        for p in model.parameters():
            p.zero_()
    opt = _optimizer(torch, model.parameters(), spec.optimizer, foreach=True, **_capturable(spec))
    loss_fn = _loss_fn(torch, spec.loss)
    x = torch.zeros((batch, spec.n_inputs), dtype=dt, device=dev)
    y = torch.zeros((batch, spec.n_outputs), dtype=dt, device=dev)
    loss_sum = torch.zeros((), dtype=dt, device=dev)

    def step() -> None:
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach())

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # builds optimizer state and warms cuBLAS/allocator outside the capture
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()

    def init_state() -> None:
        """Zero the optimizer state in place (the graph holds its addresses)."""
        for group in opt.param_groups:
            for p in group["params"]:
                for v in opt.state[p].values():
                    if torch.is_tensor(v):
                        v.zero_()

    return _GraphStep(model, opt, graph, x, y, loss_sum, init_state)


def _capturable(spec: Spec) -> dict:
    return {"capturable": True} if spec.optimizer.name == "adam" else {}


# ----------------------------------------------------------------------------- the backend


class TorchBackend(Backend):
    framework = "torch"

    def __init__(self, name: str, mode: str = "compiled", threads: int | None = None, variant: str | None = None):
        super().__init__(name, mode, threads)
        if variant is not None and variant not in VARIANTS:
            raise BackendError(f"unknown torch variant {variant!r}; use one of {VARIANTS} (or None for the mode's)")
        if mode == "eager" and variant not in (None, "eager"):
            raise BackendError(f"mode 'eager' is the plain loop; variant {variant!r} belongs to mode 'compiled'")
        self._variant = variant

    # -- environment

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if _torch().cuda.is_available() else ["cpu"]

    def versions(self) -> dict[str, str]:
        torch = _torch()
        out = {"torch": torch.__version__, "python": platform.python_version()}
        if torch.version.cuda:
            out["cuda"] = str(torch.version.cuda)
        try:
            out["numpy"] = importlib.metadata.version("numpy")
        except importlib.metadata.PackageNotFoundError:
            pass
        return out

    def variant(self, device: str = "cpu") -> str:
        """The variant train() uses on this device."""
        if self._variant:
            return self._variant
        if self.mode == "eager":
            return "eager"
        return _GPU_COMPILED_VARIANT if device == "gpu" else _CPU_COMPILED_VARIANT

    def thread_settings(self) -> dict:
        torch = _setup(self.threads)
        return {
            "threads": self.threads,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "interop_set_by_adapter": _STATE["interop_set"],
            "variant": self.variant("cpu"),
        }

    def device_info(self, device: str) -> dict:
        self.check_device(device)
        if device != "gpu":
            return {"device": device, "name": platform.processor() or platform.machine()}
        torch = _torch()
        props = torch.cuda.get_device_properties(0)
        return {
            "device": device,
            "name": torch.cuda.get_device_name(0),
            "compute_capability": "{}.{}".format(*torch.cuda.get_device_capability(0)),
            "total_memory": int(props.total_memory),
            "cuda_runtime": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()),
            "driver": _nvidia_driver(),
        }

    def peak_device_memory(self, device: str) -> int | None:
        if device != "gpu" or "gpu" not in self.devices():
            return None
        return int(_torch().cuda.max_memory_allocated())

    # -- training

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
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        if spec.optimizer.name == "adam" and spec.optimizer.epsilon != "standard":
            raise BackendError(
                f"backend {self.name!r} trains Adam with epsilon 'standard' only (torch.optim's placement), not "
                f"{spec.optimizer.epsilon!r}: use epsilon 'standard', or a backend with 'hat' (numpy, tensorflow, jax)"
            )
        torch = _setup(self.threads)
        if device == "gpu":
            _no_tf32(torch)
        variant = self.variant(device)
        if variant == "cuda-graph" and device != "gpu":
            raise BackendError("variant 'cuda-graph' needs device 'gpu'; use 'scan' or 'fused' on cpu")
        dt, dev = getattr(torch, spec.dtype), _tdevice(device)
        job = _Job(
            spec=spec,
            X=torch.as_tensor(X, dtype=dt).to(dev),
            Y=torch.as_tensor(Y, dtype=dt).to(dev),
            orders=torch.as_tensor(schedule.orders, dtype=torch.int64).to(dev),
            init_params=init_params,
            schedule=schedule,
            device=device,
            log=_Log(torch, device, record_params),
            extra={"variant": variant},
        )
        run = {"eager": _train_eager, "fused": _train_fused, "scan": _train_scan, "cuda-graph": _train_cuda_graph}
        result = run[variant](torch, job)
        result.extra.update(job.extra)
        return result

    # -- inference

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        self.check_device(device)
        check_params(spec, params)
        X = check_x(spec, X)
        torch = _setup(self.threads)
        if device == "gpu":
            _no_tf32(torch)
        dt, dev = getattr(torch, spec.dtype), _tdevice(device)
        key = (tuple(spec.layer_sizes), spec.activation, spec.dtype, device)
        model = _PREDICT.get(key)
        if model is None:
            model = _PREDICT[key] = _build_model(torch, spec, dev, dt)
        _load(torch, model, params)
        with torch.inference_mode():
            z = model(torch.as_tensor(X, dtype=dt).to(dev))
            if spec.head == "sigmoid":
                z = torch.sigmoid(z)
            elif spec.head == "softmax":
                z = torch.softmax(z, dim=1)
            return z.cpu().numpy().astype(spec.dtype, copy=False)


# ----------------------------------------------------------------------------- training loops


@dataclass
class _Job:
    """One train() call: the data on the device, the schedule, and where results go."""

    spec: Spec
    X: Any  # tensor (n, d)
    Y: Any  # tensor (n, n_outputs)
    orders: Any  # tensor (epochs, n) of sample indices
    init_params: list[np.ndarray]
    schedule: Schedule
    device: str
    log: _Log
    extra: dict

    def batches(self, epoch: int) -> tuple:
        """(xs, ys) of the full batches, (n_full, B, .), and the last partial batch (or None, None)."""
        s = self.schedule
        return _gather(self.X, self.Y, self.orders[epoch], s.batch_size, s.n_full, s.remainder)

    def sizes(self) -> list[int]:
        s = self.schedule
        return [s.batch_size] * s.n_full + ([s.remainder] if s.remainder else [])


def _train_eager(torch: Any, job: _Job) -> TrainResult:
    """The tutorial loop: per batch gather, zero_grad, forward, loss, backward, step, .item()."""
    spec, log = job.spec, job.log
    model = _build_model(torch, spec, job.X.device, job.X.dtype)
    _load(torch, model, job.init_params)
    # foreach as torch's own default: single-tensor kernels on CPU, foreach on CUDA.
    opt = _optimizer(torch, model.parameters(), spec.optimizer, foreach=job.device == "gpu")
    loss_fn = _loss_fn(torch, spec.loss)
    for epoch in range(job.schedule.epochs):
        log.start()
        total = 0.0
        for idx in job.schedule.batches(epoch):
            i = torch.from_numpy(idx).to(job.X.device)
            xb, yb = job.X[i], job.Y[i]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log.stop(total / job.schedule.samples_per_epoch, lambda: list(model.parameters()))
    return log.result(list(model.parameters()), spec)


def _train_fused(torch: Any, job: _Job) -> TrainResult:
    """The tuned eager loop: epoch batches gathered at once, fused optimizer, loss summed on-tensor."""
    spec, log = job.spec, job.log
    model = _build_model(torch, spec, job.X.device, job.X.dtype)
    _load(torch, model, job.init_params)
    opt = _optimizer(torch, model.parameters(), spec.optimizer, fused=True)
    loss_fn = _loss_fn(torch, spec.loss)
    for epoch in range(job.schedule.epochs):
        log.start()
        xs, ys, x_last, y_last = job.batches(epoch)
        total = torch.zeros((), dtype=job.X.dtype, device=job.X.device)
        for i, size in enumerate(job.sizes()):
            xb, yb = (xs[i], ys[i]) if i < len(xs) else (x_last, y_last)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.detach() * size
        log.stop(_sync(torch, job.device, total) / job.schedule.samples_per_epoch, lambda: list(model.parameters()))
    return log.result(list(model.parameters()), spec)


def _train_scan(torch: Any, job: _Job) -> TrainResult:
    """One compiled call per epoch (see the module docstring)."""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import InductorError

    spec, s, log = job.spec, job.schedule, job.log
    try:
        entry = _compiled_epoch(torch, spec, job.device, s.batch_size, s.n_full, s.remainder)
    except ImportError as e:  # scan is a prototype op: a torch without it trains the fused loop
        return _fallback(torch, job, [_first_line(e)])
    params = tuple(_to_torch_layout(torch, job.init_params, job.X.device, job.X.dtype))
    state = _init_state(torch, spec.optimizer, params)
    compile_s = 0.0
    for epoch in range(s.epochs):
        log.start()
        batches = job.batches(epoch)
        if entry.fn is None:
            try:
                if len(entry.failures) < len(entry.attempts):
                    compile_s = entry.build(torch, (params, state, *batches))
            except (BackendCompilerFailed, InductorError):
                pass
            if entry.fn is None:
                return _fallback(torch, job, entry.failures)
        params, state, total = entry.fn(params, state, *batches)
        log.stop(_sync(torch, job.device, total) / s.samples_per_epoch, lambda p=params: list(p))
    job.extra["inductor_options"] = dict(entry.options)
    if entry.failures:
        job.extra["compile_failures"] = list(entry.failures)
    return log.result(list(params), spec, compile_s)


def _fallback(torch: Any, job: _Job, failures: list[str]) -> TrainResult:
    """torch.compile could not build the epoch (no C++ compiler, say): train with the fused loop, say so."""
    warnings.warn(
        f"torch.compile failed ({failures[-1]}); the torch backend falls back to variant 'fused'. "
        "Inductor needs a working C++ compiler (g++) on CPU for the compiled variant.",
        RuntimeWarning,
        stacklevel=4,
    )
    job.extra.update(variant="fused", fallback_from="scan", compile_failures=list(failures))
    job.log = _Log(torch, job.device, job.log.record)  # epoch 0 of the failed attempt is not a result
    return _train_fused(torch, job)


def _train_cuda_graph(torch: Any, job: _Job) -> TrainResult:
    """Full batches by replaying a captured step; the last partial batch eagerly through the same optimizer."""
    spec, s, log = job.spec, job.schedule, job.log
    key = _key(spec, job.device, s.batch_size, 0, 0, "cuda-graph")
    loss_fn = _loss_fn(torch, spec.loss)
    compile_s = 0.0
    log.start()  # epoch 0's clock runs from before the capture: epoch 0 includes it
    g = _GRAPHS.get(key)
    if g is None:
        t0 = time.perf_counter()
        g = _GRAPHS[key] = _capture(torch, spec, s.batch_size)
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - t0
    _load(torch, g.model, job.init_params)  # reset in place: the graph replays on these very tensors
    g.init_state()
    params = list(g.model.parameters())
    for epoch in range(s.epochs):
        if epoch:
            log.start()
        xs, ys, x_last, y_last = job.batches(epoch)
        g.loss_sum.zero_()
        for i in range(s.n_full):
            g.x.copy_(xs[i])
            g.y.copy_(ys[i])
            g.graph.replay()
        total = g.loss_sum * s.batch_size
        if s.remainder:
            g.opt.zero_grad(set_to_none=True)
            loss = loss_fn(g.model(x_last), y_last)
            loss.backward()
            g.opt.step()
            total = total + loss.detach() * s.remainder
        log.stop(_sync(torch, job.device, total) / s.samples_per_epoch, lambda: params)
    return log.result(params, spec, compile_s)


# ----------------------------------------------------------------------------- helpers


def _gather(Xt: Any, Yt: Any, order: Any, B: int, n_full: int, tail: int) -> tuple:
    """The epoch's full batches as (n_full, B, .) tensors via one index_select, and the last partial batch."""
    k = n_full * B
    xs = Xt.index_select(0, order[:k]).view(n_full, B, -1)
    ys = Yt.index_select(0, order[:k]).view(n_full, B, -1)
    if not tail:
        return xs, ys, None, None
    last = order[k : k + tail]
    return xs, ys, Xt.index_select(0, last), Yt.index_select(0, last)


def _sync(torch: Any, device: str, value: Any) -> float:
    """Wait for the device, then read a scalar: the timing boundary."""
    if device == "gpu":
        torch.cuda.synchronize()
    return float(value.item())


class _Log:
    """Per-epoch timings, losses and (optionally) parameter snapshots."""

    def __init__(self, torch: Any, device: str, record_params: bool) -> None:
        self.torch, self.device, self.record = torch, device, record_params
        self.seconds: list[float] = []
        self.losses: list[float] = []
        self.history: list[list[Any]] = []
        self.t0 = 0.0

    def start(self) -> None:
        if self.device == "gpu":
            self.torch.cuda.synchronize()
        self.t0 = time.perf_counter()

    def stop(self, loss: float, params: Callable[[], list[Any]]) -> None:
        """Call after the epoch loss was read (the read synchronizes the device)."""
        if self.device == "gpu":
            self.torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self.t0)
        self.losses.append(loss)
        if self.record:
            self.history.append([t.detach().clone() for t in params()])

    def result(self, params: list[Any], spec: Spec, compile_seconds: float = 0.0) -> TrainResult:
        dt = np.dtype(spec.dtype)
        return TrainResult(
            params=_export(params, dt),
            loss_history=np.asarray(self.losses, dtype=np.float64),
            epoch_seconds=np.asarray(self.seconds, dtype=np.float64),
            compile_seconds=float(compile_seconds),
            param_history=[_export(p, dt) for p in self.history] if self.record else None,
        )
