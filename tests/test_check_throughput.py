"""The checker's throughput rule: ratios between backends of one run against the baselines, flagged only beyond
the factor and when significant, and not compared across fingerprints or under foreign load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import check as C
from tests.helpers_check import build_trained, edit, private_copy, row, run_check, speed_up


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    return build_trained(tmp_path_factory)


@pytest.fixture
def work(trained, tmp_path) -> Path:
    return private_copy(trained, tmp_path)


def test_throughput_ratio_change_is_flagged_but_passes(work):
    edit(work, "moons-mlp", "jax-eager-cpu", speed_up(10.0), timed_only=True)
    code, out = run_check(work)
    assert code == 0, out
    line = row(out, "moons-mlp", "jax-eager-cpu", "train speed / numpy-cpu")
    assert "FLAGGED" in line and "not failing" in line

    code, out = run_check(work, "--fail-on-throughput")
    assert code == 1
    assert "FLAGGED" in row(out, "moons-mlp", "jax-eager-cpu", "train speed")

    base = json.loads((work / "baselines.json").read_text())
    base["throughput"]["fail"] = True
    (work / "baselines.json").write_text(json.dumps(base))
    assert run_check(work)[0] == 1


def test_throughput_ratio_beyond_the_factor_but_not_significant_passes(work):
    """4x the median, but two of five samples where they were: the test (Welch on the logs of the
    repetitions, the units of a one-process figure) does not call it (p > 0.05)."""

    def two_samples_unchanged(d):
        t = d["timings"]["train_samples_per_s"]
        raw = sorted(t["raw"])
        assert raw[-1] < 4 * raw[1], "the edit needs the run's own spread under 4x"
        t["raw"] = [raw[0], *(4 * v for v in raw[1:-1]), raw[-1]]
        t["median"] = float(sorted(t["raw"])[len(raw) // 2])

    edit(work, "moons-mlp", "jax-eager-cpu", two_samples_unchanged, timed_only=True)
    code, out = run_check(work, "--fail-on-throughput")
    assert code == 0, out
    assert not [line for line in out.splitlines() if "speed /" in line and "FLAGGED" in line], out
    baselines = json.loads((work / "baselines.json").read_text())
    rows = C.check(C.load_runs(work / "results"), baselines, fail_on_throughput=True)
    (got,) = [r for r in rows if r.run == "jax-eager-cpu" and r.experiment == "moons-mlp" and "train speed" in r.metric]
    assert got.verdict.startswith("pass: no change (not significant") and float(got.got) > 3 * float(got.expected)


def test_baseline_without_raw_samples_is_not_comparable(work):
    base = json.loads((work / "baselines.json").read_text())
    for exp in base["experiments"].values():
        for entry in exp["runs"].values():
            entry.pop("throughput_samples", None)
    (work / "baselines.json").write_text(json.dumps(base))
    edit(work, "moons-mlp", "jax-eager-cpu", speed_up(10.0), timed_only=True)
    code, out = run_check(work, "--fail-on-throughput")
    assert code == 0, out
    assert "baseline has no throughput samples" in row(out, "moons-mlp", "jax-eager-cpu", "train speed / numpy-cpu")


def test_small_throughput_drift_is_not_flagged(work):
    edit(work, "moons-mlp", "jax-eager-cpu", speed_up(1.5), timed_only=True)  # within the 3x factor
    code, out = run_check(work, "--fail-on-throughput")
    assert code == 0, out
    assert not [line for line in out.splitlines() if "speed /" in line and "FLAGGED" in line], out


def test_impossible_speed_fails(work):
    """A figure above the machine ceiling cannot be physically true: the check fails on the figure itself."""

    def faster_than_the_machine(d):
        d["timings"].update(percent_of_ceiling=150.0, train_gflops=1.5 * 100, machine_ceiling_gflops=100.0)

    edit(work, "moons-mlp", "torch-cpu", faster_than_the_machine, timed_only=True)
    code, out = run_check(work)
    assert code == 1
    assert "FAILED: impossible" in row(out, "moons-mlp", "torch-cpu", "impossible")


def test_threads_not_honoured_fails(work):
    def two_cores_busy(d):
        d["timings"]["section"].update(cpu_per_wall=1.9, threads=1)

    edit(work, "moons-mlp", "jax-eager-cpu", two_cores_busy, timed_only=True)
    code, out = run_check(work)
    assert code == 1
    assert "FAILED: threads not honoured" in row(out, "moons-mlp", "jax-eager-cpu", "threads")


def test_throughput_with_another_fingerprint_is_not_comparable(work):
    def other_machine(d):
        speed_up(10.0)(d)
        d["environment"]["fingerprint"] = "feedface"

    edit(work, "moons-mlp", "jax-eager-cpu", other_machine, timed_only=True)
    code, out = run_check(work, "--fail-on-throughput")
    assert code == 0, out
    line = row(out, "moons-mlp", "jax-eager-cpu", "train speed")
    assert "not comparable" in line and "feedface" in line
    assert not [line for line in out.splitlines() if "speed /" in line and "FLAGGED" in line], out


def test_throughput_timed_under_foreign_load_is_not_comparable(work):
    """A tenfold slowdown measured while another process held the CPU says nothing about the code."""

    def loaded(d):
        speed_up(0.1)(d)
        d["flags"] = [*d.get("flags", []), "foreign load: other processes used 61% of the timed CPUs"]

    edit(work, "moons-mlp", "jax-eager-cpu", loaded, timed_only=True)
    code, out = run_check(work, "--fail-on-throughput")
    assert code == 0, out
    assert "timed under foreign load" in row(out, "moons-mlp", "jax-eager-cpu", "train speed")
    assert "FLAGGED: foreign load: other processes used 61%" in row(out, "moons-mlp", "jax-eager-cpu", "61%")
