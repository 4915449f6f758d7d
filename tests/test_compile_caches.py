"""A job's compiled networks are stored in the frameworks' on-disk caches under its private folder
(workflow/scripts/train.py, compile_cache_env), so a second process with that folder (a timing replica)
loads them instead of compiling again, and trains the same losses. torch's scan graphs needed marking
(backends/torch/compiled_epoch.py, allow_scan_in_compile_caches)."""

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
import json, sys, numpy as np
import backends
from backends.spec import OptimizerSpec, Spec, init_params, make_schedule
name = sys.argv[1]
hits = []
if name == "jax":
    import jax.monitoring
    jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if "cache_hits" in event else None)
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 2)); Y = (X[:, :1] > 0).astype(float)
spec = Spec(kind="mlp", n_inputs=2, n_outputs=1, hidden=(4, 2), activation="tanh", head="sigmoid", epochs=2,
            batch_size=32, optimizer=OptimizerSpec("adam", learning_rate=0.01), dtype="float64")
got = backends.get_backend(name, threads=1).train(spec, X, Y, init_params(spec, 0), make_schedule(spec, 100, 0))
out = {"variant": got.extra["variant"], "loss": got.loss_history.tolist(), "jax_hits": len(hits)}
if name == "torch":
    from torch._dynamo.utils import counters
    out["counters"] = {k: dict(counters[k]) for k in ("inductor", "aot_autograd")}
print(json.dumps(out))
"""


def _train(name, cache):
    env = {**os.environ, **compile_cache_env(str(cache))}
    cmd = [sys.executable, "-c", TRAIN, name]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _written(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["torch", "jax", "tensorflow"])
def test_second_process_loads_the_compiled_network_from_the_cache(name, tmp_path):
    if not backends.is_available(name):
        pytest.skip(f"{name} is not installed")
    first = _train(name, tmp_path)
    folder = tmp_path / {"torch": ".", "jax": "jax", "tensorflow": "xla"}[name]
    stored = _written(folder)
    assert stored, f"{name} stored nothing under {folder}"
    second = _train(name, tmp_path)
    assert second["variant"] == first["variant"]
    assert second["loss"] == first["loss"]
    if name == "torch":
        assert first["counters"]["inductor"].get("fxgraph_cache_miss") == 1, first["counters"]
        assert second["counters"]["inductor"].get("fxgraph_cache_hit") == 1, second["counters"]
        assert second["counters"]["aot_autograd"].get("autograd_cache_hit") == 1, second["counters"]
    elif name == "jax":
        assert first["jax_hits"] == 0 and second["jax_hits"] > 0, (first["jax_hits"], second["jax_hits"])
    else:  # TensorFlow writes an entry only when it compiled: a load leaves every file as it was
        assert _written(folder) == stored


ISA = """
import json, sys
from backends.torch.backend import TorchBackend
from torch._inductor.cpu_vec_isa import pick_vec_isa, valid_vec_isa_list
valid = [str(v) for v in valid_vec_isa_list()]  # the probe: compiled and loaded, unless the variable skips it
print(json.dumps({"valid": valid, "picked": str(pick_vec_isa()), "env": TorchBackend("torch").replica_env()}))
"""


@pytest.mark.slow
def test_a_torch_replica_skips_the_isa_probe_and_picks_the_isa_the_job_picked(tmp_path):
    """The job's process probes inductor's vector ISAs; where the probe kept every ISA the CPU advertises,
    its replicas get TORCHINDUCTOR_VEC_ISA_OK=1 (backends/torch/backend.py, replica_env), and a replica
    then picks the same ISA without the probe's compiles and subprocesses."""
    if not backends.is_available("torch"):
        pytest.skip("torch is not installed")
    if platform.machine() != "x86_64":
        pytest.skip("replica_env reads x86 ISA flags only")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_VEC_ISA_OK"} | compile_cache_env(str(tmp_path))

    def run(extra):
        done = subprocess.run([sys.executable, "-c", ISA], cwd=ROOT, env=env | extra, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    job = run({})
    assert job["env"] == {"TORCHINDUCTOR_VEC_ISA_OK": "1"}, job  # gcc builds every ISA this CPU advertises
    replica = run(job["env"])
    assert replica["picked"] == job["picked"] and replica["valid"] == job["valid"], (job, replica)
