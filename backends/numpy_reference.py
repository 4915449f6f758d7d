"""The NumPy reference backend: forward, loss, backward and optimizer written out by hand.

It is the oracle of the parity tests: predict, measure, feedback, adjust, step by step.
"""

from __future__ import annotations

import time

import numpy as np

from backends.base import Backend, check_inputs, check_params, check_x
from backends.spec import Schedule, Spec, TrainResult


def activate(z: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))  # over the last axis: rows, or a stack of them
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(z: np.ndarray, a: np.ndarray, name: str) -> np.ndarray:
    """d act(z) / dz, given z and a = act(z)."""
    if name == "linear":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    raise ValueError(f"unknown activation {name!r}")


def sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only, so no overflow for large |z|
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)


def forward(spec: Spec, params: list[np.ndarray], X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-activations zs and activations acts (acts[0] = X); the last z is the logits."""
    acts, zs = [X], []
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = acts[-1] @ params[2 * i] + params[2 * i + 1]
        zs.append(z)
        if i < n_layers - 1:
            acts.append(activate(z, spec.activation))
    return zs, acts


def loss_and_dlogits(loss: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean loss from logits z, and its gradient with respect to z."""
    n = z.shape[0]
    if loss == "mse":
        d = z - y
        return float(np.mean(d * d)), 2 * d / d.size
    if loss == "bce":
        softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
        return float(np.mean(softplus - y * z)), (sigmoid(z) - y) / z.size
    if loss == "cce":
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
        return float(np.mean(lse[:, 0] - (y * z).sum(axis=1))), (activate(z, "softmax") - y) / n
    raise ValueError(f"unknown loss {loss!r}")


def gradients(
    spec: Spec, params: list[np.ndarray], X: np.ndarray, Y: np.ndarray, kinks: KinkWatch | None = None
) -> tuple[float, list[np.ndarray]]:
    zs, acts = forward(spec, params, X)
    loss, dz = loss_and_dlogits(spec.loss, zs[-1], Y)
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    for i in reversed(range(len(zs))):
        grads[2 * i] = acts[i].T @ dz
        grads[2 * i + 1] = dz.sum(axis=0)
        if i > 0:
            da = dz @ params[2 * i].T
            slope = activation_grad(zs[i - 1], acts[i], spec.activation)
            if kinks is not None and spec.activation == "relu":
                slope = kinks.watch(zs[i - 1], acts[i - 1], params[2 * (i - 1)], params[2 * i - 1], slope)
            dz = da * slope
    return loss, grads


class KinkWatch:
    """Finds the ReLU pre-activations within float32 rounding of zero, where a float32 run may
    legitimately take the other side of the kink: |z| <= tolerance x scale, scale = sum_i |a_i w_i| + |b|
    (the dot's terms). With tolerance float32's eps: the typical rounding error of a float32 dot of
    n terms of random sign is about u x sqrt(sum of the partial sums' squares) ~ u x scale (u = eps/2),
    so this is about two of its standard deviations. With flip, those entries take the other side
    (their ReLU slope 0 <-> 1): the trajectory a crossing leads to, whose distance from the plain one
    measures what crossings can do to the loss curve (workflow/lib/parity.py)."""

    def __init__(self, tolerance: float, flip: bool = False, until_first: bool = False) -> None:
        self.tolerance, self.flip, self.until_first = tolerance, flip, until_first
        self.step, self.first_step, self.entries = 0, None, 0

    def watch(self, z: np.ndarray, a: np.ndarray, w: np.ndarray, b: np.ndarray, slope: np.ndarray) -> np.ndarray:
        if self.until_first and self.first_step is not None and self.first_step < self.step:
            return slope  # only the first crossing's step was asked for: the scale costs a second matmul
        scale = np.abs(a) @ np.abs(w) + np.abs(b)
        near = np.abs(z) <= self.tolerance * scale
        count = int(near.sum())
        if count:
            self.entries += count
            self.first_step = self.step if self.first_step is None else self.first_step
            if self.flip:
                slope = np.where(near, 1 - slope, slope)
        return slope


class Optimizer:
    """SGD with momentum and Adam exactly as OptimizerSpec states them."""

    def __init__(self, spec: Spec, params: list[np.ndarray]) -> None:
        self.o = spec.optimizer
        self.dt = np.dtype(spec.dtype)
        self.t = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        o, dt = self.o, self.dt
        self.t += 1
        lr = dt.type(o.learning_rate)
        for i, (p, g) in enumerate(zip(params, grads)):
            if o.name == "sgd":
                if o.momentum:
                    self.m[i] = dt.type(o.momentum) * self.m[i] + g
                    g = self.m[i]
                p -= lr * g
            else:
                b1, b2 = dt.type(o.beta1), dt.type(o.beta2)
                self.m[i] = b1 * self.m[i] + (1 - b1) * g
                self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
                c1, c2 = 1 - b1**self.t, 1 - b2**self.t
                if o.epsilon == "hat":  # Keras: bias correction folded into the step size
                    p -= lr * np.sqrt(c2) / c1 * self.m[i] / (np.sqrt(self.v[i]) + dt.type(o.eps))
                else:
                    p -= lr * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + dt.type(o.eps))


class NumpyBackend(Backend):
    framework = "numpy"
    modes = ("eager",)
    gpu_capable = False

    def devices(self) -> list[str]:
        return ["cpu"]

    def train(
        self,
        spec: Spec,
        X: np.ndarray,
        Y: np.ndarray,
        init_params: list[np.ndarray],
        schedule: Schedule,
        device: str = "cpu",
        record_params: bool = False,
        kinks: KinkWatch | None = None,
    ) -> TrainResult:
        """kinks: watch (and with its flip, cross) the ReLU kinks within float32 rounding; extra then
        holds "kink_crossing_epoch" (1-based, of the first such pre-activation; None: none) and
        "kink_entries" (how many over the training; with until_first, up to the first crossing's step)."""
        self.check_device(device)
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        dt = np.dtype(spec.dtype)
        X, Y = X.astype(dt), Y.astype(dt)
        params = [p.astype(dt).copy() for p in init_params]
        opt = Optimizer(spec, params)
        losses, seconds, history = [], [], []
        for epoch in range(schedule.epochs):
            t0 = time.perf_counter()
            total, count = 0.0, 0
            for idx in schedule.batches(epoch):
                loss, grads = gradients(spec, params, X[idx], Y[idx], kinks)
                opt.step(params, grads)
                if kinks is not None:
                    kinks.step += 1
                total += loss * len(idx)
                count += len(idx)
            seconds.append(time.perf_counter() - t0)
            losses.append(total / count)
            if record_params:
                history.append([p.copy() for p in params])
        return TrainResult(
            params=params,
            loss_history=np.asarray(losses),
            epoch_seconds=np.asarray(seconds),
            compile_seconds=0.0,
            param_history=history if record_params else None,
            extra={"variant": "numpy", "fallback": None, **_kink_record(kinks, schedule)},
        )

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        self.check_device(device)
        check_params(spec, params)
        X = check_x(spec, X)
        dt = np.dtype(spec.dtype)
        zs, _ = forward(spec, [p.astype(dt) for p in params], X.astype(dt))
        return activate(zs[-1], spec.head)


def _kink_record(kinks: KinkWatch | None, schedule: Schedule) -> dict:
    if kinks is None:
        return {}
    first = None if kinks.first_step is None else kinks.first_step // schedule.steps_per_epoch + 1
    return {"kink_crossing_epoch": first, "kink_entries": kinks.entries}
