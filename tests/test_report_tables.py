"""The report's tables as plain rows (reports/tables.py), on a results tree written by the pipeline's own
runner on real backends (tests/helpers_results.py): every figure in a row is the run file's own."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from reports import seeds as S
from reports import tables as T
from reports.results import load_devices, load_runs, run_label
from tests.helpers_results import DIVERGING, EXPERIMENTS, FAILING, NAMES, NOT_SEEN, SEEDS, shared_tree


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    return shared_tree(tmp_path_factory, seed=0)


@pytest.fixture(scope="session")
def runs(results) -> list[dict]:
    return load_runs(results)


def by_key(runs: list[dict]) -> dict[tuple[str, str], dict]:
    """The first seed's run of each (experiment, label)."""
    return {(r["experiment"], run_label(r)): r for r in runs if r["seed"] == SEEDS[0]}


def seeds_of(runs: list[dict], experiment: str, label: str) -> list[dict]:
    return [r for r in runs if (r["experiment"], run_label(r)) == (experiment, label)]


def no_markup(rows) -> None:
    text = json.dumps(rows, default=str)
    assert "<" not in text and "class=" not in text, "table rows must be plain data, not HTML"


def test_experiments_table_has_one_row_per_experiment_with_its_runs(runs):
    rows = T.experiments_table(runs)
    no_markup(rows)
    assert [r["experiment"] for r in rows] == sorted({*EXPERIMENTS, DIVERGING})
    moons = next(r for r in rows if r["experiment"] == "moons-mlp")
    assert moons["model"] == "mlp 2-4-2-1 tanh → sigmoid"
    assert moons["optimizer"] == "adam lr 0.001, eps 1e-07"
    assert moons["runs"][0]["label"] == "numpy-cpu" and moons["runs"][0]["status"] == "ok"  # the reference first
    assert {(r["label"], r["status"]) for r in moons["runs"]} >= {(f"{FAILING[1]}-{FAILING[2]}", "failed")}
    # the fixture trains without MLflow: every run says so where its MLflow link would be
    assert all(r["mlflow"]["run_id"] is None and "not logged to MLflow" in r["mlflow"]["note"] for r in moons["runs"])
    hotels = next(r for r in rows if r["experiment"] == "hotels-mlp")
    assert hotels["batch_size"] is None and hotels["optimizer"] == "sgd lr 0.08" and hotels["task"] == "regression"
    assert not any(r["reconstructed"] or r["stands_in_for"] for r in rows)
    assert T.spec_text({}) == ("—", "—")
    sgd = {"kind": "linear", "n_inputs": 1, "n_outputs": 1, "head": "linear", "optimizer": {"name": "sgd"}}
    assert T.spec_text({**sgd, "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}}) == (
        "linear 1-1 → linear",
        "sgd lr 0.1, momentum 0.9",
    )


def test_status_counts_match_the_files(results, runs):
    statuses = [json.loads(p.read_text())["status"] for p in (results / "runs").glob("*/*/*.json")]
    n = T.status_counts(runs)
    assert n["runs"] == len(statuses) and n["experiments"] == len(EXPERIMENTS) + 1
    assert (n["ok"], n["diverged"], n["failed"]) == tuple(statuses.count(s) for s in ("ok", "diverged", "failed"))
    assert n["diverged"] == len(NAMES) * len(SEEDS) and n["failed"] == len(SEEDS) and n["fingerprints"] == 2


def test_environment_table_has_one_row_per_fingerprint(runs):
    rows = T.environment_table(runs)
    no_markup(rows)
    assert len(rows) == 2 and sum(r["n_runs"] for r in rows) == len(runs)
    gpu = next(r for r in rows if r["runs"] == [f"{FAILING[1]}-{FAILING[2]}"])
    cpu = next(r for r in rows if r is not gpu)
    env = next(r for r in runs if r["device"] == "cpu")["environment"]
    assert cpu["fingerprint"] == env["fingerprint"] and cpu["threads"] == 1 and cpu["dtype"] == "float32"
    assert cpu["versions"] == dict(sorted(env["versions"].items())) and not cpu["tf32"]
    assert "device" in T.environment_differences(runs)
    assert T.environment_differences([r for r in runs if r["device"] == "cpu"]) == []


def test_figure_verdicts_judge_each_figure_on_the_median_over_seeds(runs):
    rows, labels = S.figure_verdicts(runs)
    no_markup(rows)
    assert labels[0] == "numpy-cpu" and set(labels) == {*(f"{n}-cpu" for n in NAMES), "numpy-gpu"}
    seen = 0
    for row in rows:
        assert list(row["cells"]) == labels
        for label, got in row["cells"].items():
            rs = seeds_of(runs, row["experiment"], label)
            if not rs:
                assert got is None
                continue
            if all(r["status"] != "ok" for r in rs):
                assert got["status"] == rs[0]["status"] and got["n"] == 0 and got["verdict"] is None
                continue
            values = [
                next(f for f in r["reported"] if (f["metric"], f["split"]) == (row["metric"], row["split"]))["measured"]
                for r in rs
            ]
            assert got["n"] == len(SEEDS) and got["values"] == values
            assert got["median"] == pytest.approx(sorted(values)[0] + (sorted(values)[1] - sorted(values)[0]) / 2)
            assert (got["min"], got["max"]) == (min(values), max(values))
            tol = row["tolerance"] or 0.0
            want = (
                S.REPRODUCED
                if abs(got["median"] - row["reported"]) <= tol
                else S.IN_RANGE
                if min(values) - tol <= row["reported"] <= max(values) + tol
                else S.NOT_REPRODUCED
            )
            assert got["verdict"] == want
            seen += 1
    assert seen >= len(EXPERIMENTS) * len(NAMES)
    assert {r["experiment"] for r in rows} == {*EXPERIMENTS, DIVERGING}


def test_judge_reads_the_three_verdicts():
    s = S.stats([0.80, 0.90, 0.95])
    assert S.judge(0.90, 0.005, s) == S.REPRODUCED
    assert S.judge(0.94, 0.005, s) == S.IN_RANGE
    assert S.judge(0.99, 0.005, s) == S.NOT_REPRODUCED
    assert S.judge(None, 0.005, s) is None and S.judge(0.9, 0.005, S.stats([])) is None


def test_quality_tables_give_the_median_and_range_over_seeds(runs):
    classification, regression = T.quality_tables(runs)
    no_markup([classification, regression])
    assert {r["experiment"] for r in regression} == {"hotels-mlp", DIVERGING}
    for row in classification + regression:
        rs = [r for r in seeds_of(runs, row["experiment"], f"{row['backend']}-{row['device']}") if r["status"] == "ok"]
        assert row["seeds_ok"] == len(rs)
        for split in ("train", "test"):
            for name, value in row[split].items():
                values = [r["metrics"][split][name] for r in rs]
                if not values:
                    assert value is None
                    continue
                assert value == pytest.approx(float(np.median(values))), (row["experiment"], name)
                assert row["range"][split][name] == (min(values), max(values))
    assert set(classification[0]["train"]) == {"accuracy", "precision", "recall", "f1"}
    assert set(regression[0]["test"]) == {"mse", "mae", "r2"}
    assert all(v is None for r in regression if r["experiment"] == DIVERGING for v in r["train"].values())


def test_throughput_table_covers_finished_runs_with_speedups(runs):
    rows = T.throughput_table(runs)
    no_markup(rows)
    ok = [r for r in runs if r["status"] == "ok" and r["seed"] == SEEDS[0]]
    assert len(rows) == len(ok) and all(S.is_timed(r) for r in ok)
    assert not any(S.is_timed(r) for r in runs if r["seed"] != SEEDS[0])
    for exp in EXPERIMENTS:
        speeds = [r["train"]["speedup"] for r in rows if r["experiment"] == exp]
        assert min(speeds) == 1.0 and all(s >= 1.0 for s in speeds)
    files = by_key(runs)
    for row in rows:
        run = files[(row["experiment"], f"{row['backend']}-{row['device']}")]
        assert row["train"]["median"] == run["timings"]["train_samples_per_s"]["median"]
        assert row["compile_seconds"] == run["timings"]["compile_seconds"]
    blobs = next(r for r in rows if r["experiment"] == "blobs4-softmax")["time_to_target"]
    assert blobs["reached"] is False and blobs["metric"] == "accuracy" and not blobs["lower_is_better"]
    hotels = next(r for r in rows if r["experiment"] == "hotels-mlp")["time_to_target"]
    assert hotels["metric"] == "mse" and hotels["lower_is_better"]


def test_throughput_rows_carry_the_interval_and_the_process_spreads(runs):
    """A run timed in 3 fresh processes (summarized by the runner's own summarize) shows its interval at
    its real level and its within/between-process spreads; an old run without them shows nothing."""
    from reports import html as H
    from workflow.lib.timing import summarize

    runs = copy.deepcopy(runs)
    timed = [r for r in runs if r["status"] == "ok" and S.is_timed(r)]
    groups = [[100.0, 102.0, 101.0], [110.0, 111.0, 109.0], [95.0, 96.0, 97.0]]
    timed[0]["timings"]["train_samples_per_s"] = summarize([], groups)
    for k in ("interval", "processes", "within_process_spread", "between_process_spread"):
        timed[1]["timings"]["train_samples_per_s"].pop(k, None)  # a result written before they existed
    rows = {(r["experiment"], r["backend"], r["device"]): r for r in T.throughput_table(timed)}
    new = rows[(timed[0]["experiment"], timed[0]["backend"], timed[0]["device"])]["train"]
    assert new["interval"] == {
        "low": 96.0,
        "high": 110.0,
        "level": 0.75,
        "method": "order statistics of 3 process medians",
    }
    assert new["within"] == pytest.approx(1 / 101) and new["between"] == pytest.approx(110 / 96 - 1)
    assert new["processes"] == 3
    old = rows[(timed[1]["experiment"], timed[1]["backend"], timed[1]["device"])]["train"]
    assert old["interval"] is None and old["within"] is None and old["between"] is None and old["processes"] == 0
    html = H.throughput(timed)
    assert (
        '96–110 <span class="muted small">75% interval</span><br><span class="muted small">1.0% in, 14.6% across 3'
        in html
    )


def test_parity_table_names_each_runs_role(runs):
    rows = T.parity_table(runs)
    no_markup(rows)
    kinds = {(r["experiment"], r["backend"], r["device"]): r["kind"] for r in rows}
    assert kinds[("moons-mlp", "numpy", "cpu")] == "reference"
    assert kinds[FAILING] == "status" and kinds[(DIVERGING, "torch", "cpu")] == "status"
    measured = [r for r in rows if r["kind"] == "measured"]
    assert len(measured) == len(EXPERIMENTS) * (len(NAMES) - 1)
    for row in measured:
        rs = seeds_of(runs, row["experiment"], f"{row['backend']}-{row['device']}")
        assert row["seeds"] == len(SEEDS)
        assert row["deviation"] == max(r["parity"]["max_rel_loss_deviation"] for r in rs)
        for k, v in row["final_metric_difference"].items():
            assert abs(v) == max(abs(r["parity"]["final_metric_difference"][k]) for r in rs)
    agreement = {e["experiment"]: e for e in S.seed_parity(runs)}
    moons = agreement["moons-mlp"]
    assert [s["seed"] for s in moons["seeds"]] == list(SEEDS) and moons["agree"] is True
    assert set(moons["seeds"][0]["values"]) == {f"{n}-cpu" for n in NAMES}


def test_problems_and_withheld_devices(results, runs):
    bad = T.problems_table(runs)
    no_markup(bad)
    assert {(r["experiment"], r["backend"], r["device"]) for r in bad} == {
        FAILING,
        *((DIVERGING, n, "cpu") for n in NAMES),
    }
    failed = next(r for r in bad if r["status"] == "failed")
    assert "sees no 'gpu' device" in failed["message"] and failed["file"].endswith("numpy-gpu/seed0.json")
    withheld = T.not_scheduled_table(load_devices(results))
    assert {r["backend"] for r in withheld} == set(NAMES) - {FAILING[1]}  # the reference was forced onto a GPU
    assert all(r["not_scheduled"] == ["gpu"] and r["reason"] == NOT_SEEN for r in withheld)
    assert T.not_scheduled_table({}) == []
