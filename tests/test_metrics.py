"""The per-epoch curves' NumPy metrics against scikit-learn's, on the shapes the runner gives them."""

import numpy as np
import pytest
from sklearn import metrics as skm

from workflow.lib.metrics import history_metric, labels_from_output


@pytest.mark.parametrize("task, n_out", [("binary", 1), ("multiclass", 4), ("binary", 2)])
def test_history_accuracy_is_sklearns(task, n_out):
    rng = np.random.default_rng(n_out)
    y = rng.integers(0, max(n_out, 2), 301)
    out = rng.random((301, n_out))
    want = skm.accuracy_score(y, labels_from_output(out, task))
    assert history_metric("accuracy", y, out, task) == pytest.approx(want, abs=0, rel=1e-15)


def test_history_mse_is_sklearns():
    rng = np.random.default_rng(0)
    y, out = rng.normal(50, 20, 97), rng.normal(50, 20, (97, 1)).astype(np.float32)
    want = skm.mean_squared_error(y, out.ravel().astype(np.float64))
    assert history_metric("mse", y, out, "regression") == pytest.approx(want, rel=1e-12)


def test_history_names_the_fix_for_another_metric():
    with pytest.raises(ValueError, match="accuracy or mse"):
        history_metric("f1", np.zeros(3), np.zeros((3, 1)), "binary")
