"""The framework-neutral description of a training job.

Everything a backend needs to reproduce the same math is here, made once in NumPy:
the model spec (layers, activations, loss), the optimizer with every constant explicit,
the initial parameters and the batch schedule. Backends never choose a default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
HEADS = ("linear", "sigmoid", "softmax")
KINDS = ("linear", "logistic", "softmax", "mlp")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
EPSILON_PLACEMENTS = ("standard", "hat")  # where Adam adds eps (OptimizerSpec)

# The loss each head pairs with. Cross-entropies are computed from logits in every backend.
HEAD_LOSS = {"linear": "mse", "sigmoid": "bce", "softmax": "cce"}


@dataclass(frozen=True)
class OptimizerSpec:
    """SGD (optionally with momentum) or Adam in the Adam paper's formulation.

    Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; then, by `epsilon`:
    "standard" (torch/optax placement): m_hat = m / (1-b1^t); v_hat = v / (1-b2^t);
      w -= lr * m_hat / (sqrt(v_hat) + eps)
    "hat" (Keras/TF placement, the paper's "epsilon hat"): lr_t = lr * sqrt(1-b2^t) / (1-b1^t);
      w -= lr_t * m / (sqrt(v) + eps), i.e. eps added to the bias-uncorrected sqrt(v), which is
      "standard" with eps / sqrt(1-b2^t) in place of eps (a larger effective eps in early steps).
    SGD with momentum (torch placement): buf = momentum * buf + g; w -= lr * buf.
    """

    name: str = "adam"
    learning_rate: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7
    momentum: float = 0.0
    epsilon: str = "standard"

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; use one of {OPTIMIZERS}")
        if self.epsilon not in EPSILON_PLACEMENTS:
            raise ValueError(
                f"unknown Adam epsilon placement {self.epsilon!r}; use one of {EPSILON_PLACEMENTS} "
                "('standard': eps added to sqrt(v_hat), torch/optax; 'hat': eps added to sqrt(v), Keras)"
            )


@dataclass(frozen=True)
class Spec:
    """A dense network: n_inputs -> hidden... -> n_outputs, with its loss and training constants.

    kind is the catalogue's name for the shape (linear/logistic/softmax have no hidden layer).
    batch_size None means full batch. drop_last says whether a last partial batch is skipped.
    """

    kind: str
    n_inputs: int
    n_outputs: int
    hidden: tuple[int, ...] = ()
    activation: str = "tanh"
    head: str = "sigmoid"
    epochs: int = 10
    batch_size: int | None = 32
    drop_last: bool = False
    shuffle: bool = True
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    dtype: str = "float32"
    init: str = "glorot_uniform"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown spec kind {self.kind!r}; use one of {KINDS}")
        if self.kind != "mlp" and self.hidden:
            raise ValueError(f"spec kind {self.kind!r} has no hidden layers; use kind 'mlp'")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; use one of {ACTIVATIONS}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; use one of {HEADS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use one of {DTYPES}")
        if self.init != "glorot_uniform":
            raise ValueError(f"unknown init {self.init!r}; only 'glorot_uniform' is implemented")
        if isinstance(self.optimizer, dict):  # built from YAML/JSON
            object.__setattr__(self, "optimizer", OptimizerSpec(**self.optimizer))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def loss(self) -> str:
        return HEAD_LOSS[self.head]

    @property
    def layer_sizes(self) -> list[int]:
        return [self.n_inputs, *self.hidden, self.n_outputs]

    @property
    def activations(self) -> list[str]:
        """Activation after each dense layer; the last one is the head (applied to logits)."""
        return [self.activation] * len(self.hidden) + [self.head]

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """[(in, out), (out,), ...]: the shapes of [W0, b0, W1, b1, ...]."""
        sizes = self.layer_sizes
        return [shape for a, b in zip(sizes[:-1], sizes[1:]) for shape in ((a, b), (b,))]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Spec:
        d = dict(d)
        d["optimizer"] = OptimizerSpec(**d.get("optimizer", {}))
        d["hidden"] = tuple(d.get("hidden", ()))
        return cls(**d)


def init_params(spec: Spec, seed: int) -> list[np.ndarray]:
    """Glorot-uniform weights (in, out) and zero biases, as [W0, b0, W1, b1, ...]."""
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    sizes = spec.layer_sizes
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(spec.dtype))
        params.append(np.zeros(fan_out, dtype=spec.dtype))
    return params


@dataclass(frozen=True)
class Schedule:
    """Which sample indices form each step of each epoch, made once from the seed.

    orders[e] is the permutation of epoch e. Steps are consecutive slices of batch_size;
    the remainder forms a last partial batch unless drop_last.
    """

    orders: np.ndarray  # (epochs, n) int64
    batch_size: int
    drop_last: bool

    @property
    def epochs(self) -> int:
        return int(self.orders.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.orders.shape[1])

    @property
    def n_full(self) -> int:
        return self.n_samples // self.batch_size

    @property
    def remainder(self) -> int:
        return 0 if self.drop_last else self.n_samples % self.batch_size

    @property
    def samples_per_epoch(self) -> int:
        return self.n_full * self.batch_size + self.remainder

    @property
    def steps_per_epoch(self) -> int:
        return self.n_full + (1 if self.remainder else 0)

    def full_batches(self, epoch: int) -> np.ndarray:
        """(n_full, batch_size) indices of the full batches of this epoch."""
        k = self.n_full * self.batch_size
        return self.orders[epoch, :k].reshape(self.n_full, self.batch_size)

    def last_batch(self, epoch: int) -> np.ndarray | None:
        """Indices of the last partial batch, or None when there is none (or it is dropped)."""
        if not self.remainder:
            return None
        return self.orders[epoch, self.n_full * self.batch_size :]

    def batches(self, epoch: int) -> list[np.ndarray]:
        out = list(self.full_batches(epoch))
        last = self.last_batch(epoch)
        if last is not None:
            out.append(last)
        return out


def make_schedule(spec: Spec, n_samples: int, seed: int) -> Schedule:
    rng = np.random.default_rng(seed)
    if spec.shuffle:
        orders = np.stack([rng.permutation(n_samples) for _ in range(spec.epochs)])
    else:
        orders = np.tile(np.arange(n_samples), (spec.epochs, 1))
    batch = spec.batch_size or n_samples
    if batch > n_samples:
        batch = n_samples
    return Schedule(orders=orders.astype(np.int64), batch_size=int(batch), drop_last=spec.drop_last)


@dataclass
class TrainResult:
    """What a backend returns: NumPy only, so nothing downstream branches on the framework.

    loss_history[e] is the sample-weighted mean of the mini-batch losses of epoch e, each
    computed before its update. epoch_seconds[0] includes all compilation and warm-up work of
    the training (none runs outside the epoch timings); the backend synchronizes the device at
    every timing boundary. compile_seconds is the backend's own explicit compile time, a part of
    epoch_seconds[0] it measured apart (an ahead-of-time compile, a CUDA graph capture); 0 where
    compilation happens lazily inside the first call or nothing compiles. param_history, when
    asked for, holds the parameters after each epoch (for time-to-target). extra["variant"] names
    the code path that ran; extra["fallback"] is None, or why the intended path failed and that
    one ran instead.
    """

    params: list[np.ndarray]
    loss_history: np.ndarray
    epoch_seconds: np.ndarray
    compile_seconds: float = 0.0
    param_history: list[list[np.ndarray]] | None = None
    extra: dict = field(default_factory=dict)
