"""Adam's epsilon placement: "standard" (torch/optax) and "hat" (Keras), in the spec, the reference
and the adapters that implement it (the others refuse it with a clear error)."""

import numpy as np
import pytest

import backends
from backends.numpy_reference import Optimizer
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule


def _spec(epsilon: str, dtype: str = "float64") -> Spec:
    # eps 1e-3 makes the two placements differ by ~10% in the loss over 5 epochs, so a backend
    # that ignored the option could not pass.
    opt = OptimizerSpec("adam", learning_rate=0.01, eps=1e-3, epsilon=epsilon)
    return Spec(
        kind="mlp", n_inputs=3, n_outputs=1, hidden=(8, 4), activation="tanh", head="sigmoid", epochs=5, batch_size=8,
        optimizer=opt, dtype=dtype,
    )  # fmt: skip


def _problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    return X, (X[:, :1] + X[:, 1:2] > 0).astype(float)


def test_unknown_epsilon_placement_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Adam epsilon placement 'keras'.*'standard'.*'hat'"):
        OptimizerSpec("adam", epsilon="keras")
    assert OptimizerSpec().epsilon == "standard"
    assert Spec.from_dict(_spec("hat").to_dict()).optimizer.epsilon == "hat"


def test_reference_hat_is_keras_formula():
    """Three steps of the reference against Keras 3's Adam written out independently."""
    spec = _spec("hat")
    o = spec.optimizer
    rng = np.random.default_rng(3)
    w = [rng.normal(size=(4, 2))]
    opt = Optimizer(spec, w)
    w_keras, m, v = w[0].copy(), np.zeros((4, 2)), np.zeros((4, 2))
    for t in range(1, 4):
        g = rng.normal(size=(4, 2)) * 10.0**-t  # small gradients: where the placements differ most
        opt.step(w, [g])
        lr_t = o.learning_rate * np.sqrt(1 - o.beta2**t) / (1 - o.beta1**t)
        m += (g - m) * (1 - o.beta1)
        v += (g * g - v) * (1 - o.beta2)
        w_keras -= lr_t * m / (np.sqrt(v) + o.eps)
    np.testing.assert_allclose(w[0], w_keras, rtol=1e-13, atol=0)


def test_hat_and_standard_differ_in_the_reference():
    X, Y = _problem()
    ref = backends.get_backend("numpy")
    hat, std = _spec("hat"), _spec("standard")
    p0, sched = init_params(hat, 1), make_schedule(hat, len(X), 2)
    a, b = ref.train(hat, X, Y, p0, sched), ref.train(std, X, Y, p0, sched)
    assert np.abs(a.loss_history / b.loss_history - 1).max() > 1e-3


@pytest.mark.parametrize("name", ["tensorflow", "tensorflow-eager", "jax", "jax-eager"])
def test_hat_float64_parity(name):
    if not backends.is_available(name):
        pytest.skip(f"backend {name!r} unavailable: its framework is not installed")
    X, Y = _problem()
    spec = _spec("hat")
    p0, sched = init_params(spec, 1), make_schedule(spec, len(X), 2)
    ref = backends.get_backend("numpy").train(spec, X, Y, p0, sched)
    got = backends.get_backend(name, threads=1).train(spec, X, Y, p0, sched)
    rel = np.abs(got.loss_history - ref.loss_history) / np.abs(ref.loss_history)
    assert rel.max() < 1e-9, f"{name} deviates from the epsilon-hat reference by {rel.max():.3g}"
    for a, b in zip(got.params, ref.params):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ["torch", "torch-eager", "torch-idiomatic"])
def test_torch_refuses_hat_clearly(name):
    if not backends.is_available(name):
        pytest.skip(f"backend {name!r} unavailable: its framework is not installed")
    X, Y = _problem()
    spec = _spec("hat", dtype="float32")
    with pytest.raises(backends.BackendError, match="epsilon 'standard' only.*not 'hat'"):
        backends.get_backend(name, threads=1).train(spec, X, Y, init_params(spec, 1), make_schedule(spec, len(X), 2))
