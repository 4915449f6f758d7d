"""torch's compiled epoch (a scan graph) is stored in inductor's caches, so a second process with the
same cache folder (a job's timing replica) loads it instead of compiling it again, and trains the same."""

import json
import os
import subprocess
import sys

import pytest

import backends
from tests.paths import ROOT

TRAIN = """
import json, numpy as np
import backends
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
from torch._dynamo.utils import counters
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 2)); Y = (X[:, :1] > 0).astype(float)
spec = Spec(kind="mlp", n_inputs=2, n_outputs=1, hidden=(4, 2), activation="tanh", head="sigmoid", epochs=2,
            batch_size=32, optimizer=OptimizerSpec("adam", learning_rate=0.01), dtype="float64")
got = backends.get_backend("torch", threads=1).train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 100, 0))
print(json.dumps({"variant": got.extra["variant"], "loss": got.loss_history.tolist(),
                  "counters": {k: dict(counters[k]) for k in ("inductor", "aot_autograd")}}))
"""


def _train(cache):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", TRAIN], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_compiled_epoch_from_the_cache(tmp_path):
    if not backends.is_available("torch"):
        pytest.skip("torch is not installed")
    first, second = _train(tmp_path), _train(tmp_path)
    assert first["variant"] == second["variant"] == "torch.compile-scan"
    assert first["counters"]["inductor"].get("fxgraph_cache_miss") == 1, first["counters"]
    assert second["counters"]["inductor"].get("fxgraph_cache_hit") == 1, second["counters"]
    assert second["counters"]["aot_autograd"].get("autograd_cache_hit") == 1, second["counters"]
    assert second["loss"] == first["loss"]
