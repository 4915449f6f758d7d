"""A torch.compile job in a real pipeline run measures what it claims: its quoted part's CPU/wall near 1
and no foreign-load flag on an otherwise idle machine, in the job's own process and in each timing
replica (fresh processes). Marked serial: the test command runs it alone, after the parallel phase."""

from __future__ import annotations

import json

import pytest

from tests.helpers_results import seed_calibration
from tests.test_pipeline import small_config, snakemake
from workflow.lib import timing


@pytest.mark.slow
@pytest.mark.serial
def test_torch_compile_job_is_judged_on_its_quoted_part(tmp_path, calibrated):
    cfg = small_config() | {"experiments": ["moons-mlp"], "backends": ["numpy", "torch"], "seeds": [0]}
    cfg |= {"timing_processes": 3, "repeats": 3}
    seed_calibration(tmp_path, calibrated)
    snakemake(tmp_path, "--cores", "2", "--", "results/runs/moons-mlp/torch-cpu/seed0.json", config=cfg)
    r = json.loads((tmp_path / "results/runs/moons-mlp/torch-cpu/seed0.json").read_text())
    t = r["timings"]
    assert t["timed"] and r["status"] == "ok", r.get("message")
    assert t["compile_seconds"] > 0  # torch.compile ran, in this job
    foreign = [f for f in t["flags"] if "foreign load" in f or "threads not honoured" in f]
    assert foreign == [], t["flags"]
    for k, sec in enumerate([t["section"], *t["process_sections"]]):  # the job's own process, then each replica
        assert sec["judged_on"] == "quoted part", sec
        assert 0.9 <= sec["cpu_per_wall"] <= timing.CPU_WALL_TOLERANCE, (k, sec)
        assert sec["flags"] == [], (k, sec)
    assert len(t["train_samples_per_s"]["processes"]) == 3
