"""The NumPy reference is the oracle, so its hand-written gradients are checked numerically."""

import numpy as np
import pytest

from backends.numpy_reference import gradients
from backends.spec import Spec, init_params, make_schedule

CASES = [
    dict(kind="linear", head="linear", n_outputs=1),
    dict(kind="logistic", head="sigmoid", n_outputs=1),
    dict(kind="softmax", head="softmax", n_outputs=3),
    dict(kind="mlp", head="sigmoid", n_outputs=1, hidden=(4, 3), activation="tanh"),
    dict(kind="mlp", head="softmax", n_outputs=3, hidden=(5,), activation="relu"),
    dict(kind="mlp", head="linear", n_outputs=1, hidden=(3,), activation="sigmoid"),
]


@pytest.mark.parametrize("shape", CASES, ids=lambda c: f"{c['kind']}-{c['head']}-{c.get('activation', '')}")
def test_gradients_match_finite_differences(shape):
    rng = np.random.default_rng(0)
    spec = Spec(n_inputs=3, dtype="float64", **shape)
    X = rng.normal(size=(7, 3))
    k = shape["n_outputs"]
    Y = np.eye(k)[rng.integers(0, k, 7)] if shape["head"] == "softmax" else rng.uniform(size=(7, 1))
    params = [p + 0.1 * rng.normal(size=p.shape) for p in init_params(spec, 0)]
    _, grads = gradients(spec, params, X, Y)
    h = 1e-6
    for p, g in zip(params, grads):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up, _ = gradients(spec, params, X, Y)
            p[idx] = old - h
            down, _ = gradients(spec, params, X, Y)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_schedule_is_deterministic_and_covers_every_sample():
    spec = Spec(kind="logistic", n_inputs=2, n_outputs=1, epochs=3, batch_size=32)
    a, b = make_schedule(spec, 100, seed=5), make_schedule(spec, 100, seed=5)
    np.testing.assert_array_equal(a.orders, b.orders)
    assert a.steps_per_epoch == 4 and a.remainder == 4 and a.samples_per_epoch == 100
    for e in range(3):
        assert sorted(np.concatenate(a.batches(e)).tolist()) == list(range(100))
    dropped = make_schedule(
        Spec(kind="logistic", n_inputs=2, n_outputs=1, epochs=1, batch_size=32, drop_last=True), 100, 5
    )
    assert dropped.steps_per_epoch == 3 and dropped.samples_per_epoch == 96
