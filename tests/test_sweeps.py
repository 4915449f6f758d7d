"""Sweeps: the step-cost fit, the sweep points, the plan, the report's rows, and (slow) a real
Snakemake run of a tiny sweep checked through its JSON, CSVs, MLflow metrics and report section."""

import json

import numpy as np
import pytest
import yaml

from reports import sweeps as S
from tests.helpers_results import sweep_point
from tests.paths import ROOT
from workflow.lib import sweep as W
from workflow.lib.plan import PlanError, plan_from_config


def test_fit_gives_back_a_known_intercept_and_slope():
    b = np.array([8, 32, 128, 512, 2048])
    fit = W.fit_step_cost(b, 50e-6 + 2e-6 * b)  # 50 us per step, 2 us per sample
    assert fit["fixed_us_per_step"] == pytest.approx(50, rel=1e-9)
    assert fit["us_per_sample"] == pytest.approx(2, rel=1e-9)
    assert fit["r2"] == pytest.approx(1) and fit["n_points"] == 5


def test_fit_weighs_relative_error_so_small_batches_decide_the_intercept():
    b = np.array([8, 64, 512, 4096])
    t = (20e-6 + 1e-6 * b) * np.array([1.0, 1.0, 1.0, 1.01])  # 1% noise on the largest batch only
    fit = W.fit_step_cost(b, t)
    assert fit["fixed_us_per_step"] == pytest.approx(20, rel=0.1)


def test_fit_needs_two_batch_sizes_and_skips_missing_times():
    assert W.fit_step_cost([8, 8], [1e-5, 1e-5])["fixed_us_per_step"] is None
    fit = W.fit_step_cost([8, 16, 32], [None, 1.6e-5, 3.2e-5])
    assert fit["n_points"] == 2 and fit["us_per_sample"] == pytest.approx(1)


def test_half_ceiling_batch_is_the_first_batch_reaching_it_or_none():
    assert W.half_ceiling_batch([8, 32, 128], [1.0, 6.0, 9.0], ceiling=10.0) == 32
    assert W.half_ceiling_batch([8, 32], [1.0, 2.0], ceiling=10.0) is None
    assert W.half_ceiling_batch([8], [9.0], ceiling=None) is None


def test_points_scale_every_hidden_layer_and_keep_the_spec():
    entry = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    entry = entry["properties"]["sweeps"]["properties"]["specs"]["default"]["mnist10k-mlp"]
    pts = W.points(entry, [32, 8], [1024, 16])
    assert [(p.axis, p.value) for p in pts] == [("batch", 8), ("batch", 32), ("width", 16), ("width", 1024)]
    assert pts[0].spec.hidden == (128, 64) and pts[0].batch_size == 8
    assert pts[3].spec.hidden == (1024, 512) and pts[3].batch_size == 100 and pts[2].spec.hidden == (16, 8)
    assert {p.spec.optimizer.name for p in pts} == {"sgd"} and pts[0].spec.n_inputs == 784
    X, Y = W.synthetic(pts[0].spec, W.rows_for(8, 4), seed=0)
    assert X.shape == (512, 784) and Y.shape == (512, 10) and (Y.sum(axis=1) == 1).all()


def test_a_bad_sweep_spec_is_an_error_naming_it():
    with pytest.raises(W.SweepError, match="activation"):
        W.base_spec(
            {
                "inputs": 2,
                "hidden": [4],
                "outputs": 1,
                "activation": "gelu",
                "head": "sigmoid",
                "batch_size": 8,
                "optimizer": {"name": "sgd", "learning_rate": 0.1},
            }
        )


def _config(**sweeps) -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["sweeps"] = {**cfg.get("sweeps", {}), **sweeps}
    return cfg


def test_default_config_sweeps_every_backend_but_the_reference_plus_fused():
    plan = plan_from_config(_config(), ROOT)
    swept = {b for _, b, _ in plan.sweep_jobs}
    assert swept == (set(_config()["backends"]) - {"numpy"}) | {"fused"}
    assert {s for s, _, _ in plan.sweep_jobs} == {"mnist10k-mlp", "moons-mlp"}
    assert "results/sweeps/moons-mlp/fused-cpu.json" in plan.sweep_files()


def test_ci_config_has_no_sweeps_and_a_bad_sweep_backend_is_named():
    ci = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    assert plan_from_config(ci, ROOT).sweep_jobs == []
    with pytest.raises(PlanError, match="sweeps.backends"):
        plan_from_config(_config(backends=["jax", "mxnet"]), ROOT)


def _sweep(backend: str, rates: dict, ceiling: float = 10.0) -> dict:
    points = []
    for (axis, value), rate in rates.items():
        batch = value if axis == "batch" else 32
        g = rate * 1e-5  # 10 kFLOP per sample
        points.append(sweep_point(axis, value, batch, 4, rate, g, ceiling))
    batch = [p for p in points if p["axis"] == "batch"]
    fit = W.summarize_points(points, ceiling)
    assert fit["n_points"] == len(batch)
    return {
        "sweep": "moons-mlp",
        "backend": backend,
        "mode": "compiled",
        "device": "cpu",
        "points": points,
        "fit": fit,
        "machine_ceiling_gflops": ceiling,
        "batch_sizes": [8, 64],
        "widths": [16],
    }


def test_table_rows_give_the_fit_the_half_ceiling_and_the_fraction_of_fused(tmp_path):
    fused = _sweep("fused", {("batch", 8): 4e5, ("batch", 64): 8e5, ("width", 16): 1e5})
    jax = _sweep("jax", {("batch", 8): 1e5, ("batch", 64): 4e5, ("width", 16): 5e4})
    for s in (jax, fused):
        path = tmp_path / "sweeps" / s["sweep"] / f"{s['backend']}-cpu.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(s))
    found = S.load_sweeps(tmp_path)
    assert [s["backend"] for s in found] == ["jax", "fused"]  # the practical ceiling last
    rows = {r["backend"]: r for r in S.overhead_rows(found)}
    # jax: 8 / 1e5 = 80 us at batch 8, 64 / 4e5 = 160 us at batch 64 -> 1.43 us/sample, 68.6 us/step
    assert rows["jax"]["us_per_sample"] == pytest.approx(80 / 56, rel=1e-6)
    assert rows["jax"]["fixed_us_per_step"] == pytest.approx(80 - 8 * 80 / 56, rel=1e-6)
    assert rows["jax"]["half_ceiling_batch"] == S.NEVER  # 4 GFLOP/s < 5
    assert rows["fused"]["half_ceiling_batch"] == 64  # 8 GFLOP/s >= 5
    assert rows["jax"]["best_at"] == "batch 64" and rows["jax"]["best_fraction_of_fused"] == pytest.approx(0.5)
    assert rows["jax"]["best_percent_of_ceiling"] == pytest.approx(40)
    points = S.summary_rows(found)
    assert len(points) == 6
    width = next(r for r in points if r["backend"] == "jax" and r["axis"] == "width")
    assert width["fraction_of_fused"] == pytest.approx(0.5) and width["hidden"] == "4-2"


def test_points_where_a_framework_beats_fused_are_named_as_no_floor():
    fused = _sweep("fused", {("batch", 8): 4e5, ("batch", 64): 8e5, ("width", 16): 1e5}, ceiling=20)
    jax = _sweep("jax", {("batch", 8): 1e5, ("batch", 64): 1.2e6, ("width", 16): 1.1e5}, ceiling=20)
    torch = _sweep("torch", {("batch", 8): 1e5, ("batch", 64): 1.0e6, ("width", 16): 2e5}, ceiling=20)
    found = S.not_a_floor([jax, torch, fused])
    assert [(r["point"], r["backend"]) for r in found] == [("width 16", "torch"), ("batch 64", "jax")]
    assert found[0]["ratio"] == pytest.approx(2.0) and found[1]["ratio"] == pytest.approx(1.5)
    assert found[1]["shape"] == "hidden 4-2, batch 64"
    # 10 kFLOP a sample against a 20 GFLOP/s ceiling: 1.2M samples/s is 60% of it, fused's 800k 40%
    assert found[1]["percent_of_ceiling"] == pytest.approx(60)
    assert found[1]["practical_percent_of_ceiling"] == pytest.approx(40)
    slower = _sweep("jax", {("batch", 8): 1e5, ("batch", 64): 7e5})
    assert S.not_a_floor([slower, _sweep("fused", {("batch", 8): 4e5, ("batch", 64): 8e5})]) == []


def test_a_file_that_is_not_a_sweep_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "sweeps" / "moons-mlp" / "jax-cpu.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"backend": "jax"}')
    with pytest.raises(S.SweepFileError, match="rerun its sweep job"):
        S.load_sweeps(tmp_path)


@pytest.mark.slow
def test_a_tiny_sweep_runs_through_snakemake_to_mlflow_and_the_report(tmp_path, calibrated):
    import pandas as pd

    from tests.helpers_results import seed_calibration
    from tests.test_pipeline import mlflow_runs, snakemake

    cfg = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    cfg.update(experiments=["moons-logistic"], backends=["numpy"])
    spec = {
        "inputs": 2,
        "hidden": [4, 2],
        "outputs": 1,
        "activation": "tanh",
        "head": "sigmoid",
        "batch_size": 16,
        "optimizer": {"name": "adam", "learning_rate": 0.001},
    }
    cfg["sweeps"] = {
        "enabled": True,
        "specs": {"tiny": spec},
        "batch_sizes": [8, 64],
        "widths": [4, 16],
        "backends": ["fused", "jax"],
        "repeats": 2,
        "min_repeat_seconds": 0.02,
    }
    seed_calibration(tmp_path, calibrated)
    snakemake(tmp_path, "--cores", "2", config=cfg)
    for backend in ("fused", "jax"):
        r = json.loads((tmp_path / f"results/sweeps/tiny/{backend}-cpu.json").read_text())
        assert [(p["axis"], p["value"], p["status"]) for p in r["points"]] == [
            ("batch", 8, "ok"),
            ("batch", 64, "ok"),
            ("width", 4, "ok"),
            ("width", 16, "ok"),
        ]
        assert r["points"][3]["hidden"] == [16, 8] and r["points"][0]["timings"]["train_samples_per_s"]["n"] == 2
        assert r["fit"]["n_points"] == 2 and r["fit"]["us_per_sample"] is not None
        assert r["machine_ceiling_gflops"] > 0 and r["points"][1]["gflops"] > 0
    summary = pd.read_csv(tmp_path / "results/sweeps/summary.csv")
    assert len(summary) == 8 and set(summary["backend"]) == {"fused", "jax"}
    assert (summary.loc[summary["backend"] == "fused", "fraction_of_fused"] == 1).all()
    overheads = pd.read_csv(tmp_path / "results/sweeps/overheads.csv")
    assert sorted(overheads["backend"]) == ["fused", "jax"] and overheads["fixed_us_per_step"].notna().all()
    client, runs = mlflow_runs(tmp_path, cfg["mlflow"]["experiment"])
    swept = {r.data.tags["backend"]: r for r in runs if r.data.tags.get("kind") == "sweep"}
    assert set(swept) == {"fused", "jax"}
    run = swept["jax"]
    assert run.data.tags["sweep"] == "tiny" and run.data.tags["device"] == "cpu" and run.info.status == "FINISHED"
    assert run.data.params["spec.hidden"] == "[4, 2]"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_samples_per_s")] == [8, 64]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "width_gflops")] == [4, 16]
    html = (tmp_path / "results/report/index.html").read_text()
    section = html.split('<section id="sweeps">', 1)[1].split("</section>", 1)[0]
    assert "Where the time goes" in section and "synthetic" in section and "fixed µs/step" in section
    assert section.count("<img") == 3 and "SGEMM" in section and "jax" in section
