"""A job's compiled networks are stored in the frameworks' on-disk caches under its private folder
(workflow/scripts/train.py, compile_cache_env), so a second process with that folder (a timing replica)
loads them instead of compiling again, and trains the same losses. The first process runs as a job does
(the framework warm-up, then Backend.replica_env), the second as a replica (with those variables). torch's
scan graphs needed marking (backends/torch/compiled_epoch.py, allow_scan_in_compile_caches), and its
replicas' TORCHINDUCTOR_VEC_ISA_OK, part of inductor's cache keys, set in the job's process too."""

import json
import os
import platform
import subprocess
import sys

import pytest

import backends
from tests.paths import ROOT
from workflow.scripts.train import compile_cache_env

TRAIN = """
import json, os, sys, numpy as np
import backends
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
from workflow.lib.measure import warm_up
name, role = sys.argv[1], sys.argv[2]
backend = backends.get_backend(name, threads=1)
replica_env = {}
if role == "job":  # as workflow/scripts/train.py's job process: the warm-up, then the replicas' variables
    warm_up(backend, "cpu")
    replica_env = backend.replica_env()
hits = []
if name == "jax":
    import jax.monitoring
    jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if "cache_hits" in event else None)
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 2)); Y = (X[:, :1] > 0).astype(float)
spec = Spec(kind="mlp", n_inputs=2, n_outputs=1, hidden=(4, 2), activation="tanh", head="sigmoid", epochs=2,
            batch_size=32, optimizer=OptimizerSpec("adam", learning_rate=0.01), dtype="float64")
before = len(hits)  # the warm-up's: a job's warm-up network may share small programs with the spec's
got = backend.train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 100, 0))
out = {"variant": got.extra["variant"], "loss": got.loss_history.tolist(), "jax_hits": len(hits) - before,
       "env": replica_env}
if name == "torch":
    from torch._dynamo.utils import counters
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    out["counters"] = {k: dict(counters[k]) for k in ("inductor", "aot_autograd")}
    out["isa"] = str(pick_vec_isa())
print(json.dumps(out))
"""


def _train(name, cache, role, extra_env=None):
    """One process: role "job" warms up and asks for the replicas' variables first; "replica" gets them."""
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_VEC_ISA_OK"}  # conftest's, for the tests
    env |= compile_cache_env(str(cache)) | (extra_env or {})
    cmd = [sys.executable, "-c", TRAIN, name, role]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _written(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["torch", "jax", "tensorflow"])
def test_second_process_loads_the_compiled_network_from_the_cache(name, tmp_path):
    if not backends.is_available(name):
        pytest.skip(f"{name} is not installed")
    # TensorFlow names each traced function with a process-wide counter, and its XLA cache keys hold the
    # name: a process loads another's programs only after tracing the same functions in the same order,
    # which a job (warm-up first) and its replicas do not (docs/design.md). Checked as two replicas.
    first = _train(name, tmp_path, "replica" if name == "tensorflow" else "job")
    folder = tmp_path / {"torch": ".", "jax": "jax", "tensorflow": "xla"}[name]
    stored = _written(folder)
    assert stored, f"{name} stored nothing under {folder}"
    second = _train(name, tmp_path, "replica", first["env"])
    assert second["variant"] == first["variant"]
    assert second["loss"] == first["loss"]
    if name == "torch":
        assert not first["counters"]["inductor"].get("fxgraph_cache_hit"), first["counters"]
        assert second["counters"]["inductor"].get("fxgraph_cache_hit") == 1, second["counters"]
        assert not second["counters"]["inductor"].get("fxgraph_cache_miss"), second["counters"]
        assert second["counters"]["aot_autograd"].get("autograd_cache_hit") == 1, second["counters"]
        assert second["isa"] == first["isa"], (first["isa"], second["isa"])
        if platform.machine() == "x86_64":  # gcc builds every ISA this CPU advertises: the replica skips the probe
            assert first["env"] == {"TORCHINDUCTOR_VEC_ISA_OK": "1"}, first["env"]
    elif name == "jax":
        assert second["jax_hits"] > first["jax_hits"], (first["jax_hits"], second["jax_hits"])
    else:  # TensorFlow writes an entry only when it compiled: a load leaves every file as it was
        assert _written(folder) == stored
