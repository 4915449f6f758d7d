"""The comparison of two results trees (`fwbench compare`, `fwbench report --against`): what moved, by the
measurement rule, per GFLOP/s of the machine as it ran; on results trees written by the pipeline's own runner
on real backends (tests/helpers_results.py), edited the way a change would edit them."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reports import compare as K
from reports import page_env as E
from reports.results import load_runs, run_label
from tests.helpers_results import SEEDS, edit_run, scale_speed, shared_tree
from tests.paths import ROOT


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    return shared_tree(tmp_path_factory, seed=0)


def test_comparison_page_finds_a_slower_backend_and_a_changed_metric(results, tmp_path):
    slower = tmp_path / "slower"
    shutil.copytree(results, slower)
    before = json.loads((results / "runs" / "moons-mlp" / "torch-cpu" / "seed0.json").read_text())
    after = edit_run(slower, "moons-mlp", "torch-cpu", lambda r: scale_speed(r, 1 / 3))

    def lower_accuracy(r: dict) -> None:
        r["metrics"]["test"]["accuracy"] -= 0.05

    edit_run(slower, "moons-logistic", "jax-eager-cpu", lower_accuracy, seeds=SEEDS)

    c = K.compare(load_runs(slower), load_runs(results))
    moved = [r for r in c["speed"] if r["moved"]]
    assert [(r["experiment"], r["run"]) for r in moved] == [("moons-mlp", "torch-cpu")]
    assert moved[0]["ratio"] == pytest.approx(1 / 3) and moved[0]["like_for_like"]
    assert moved[0]["verdict"] == "slower" and moved[0]["p_value"] < 0.05
    assert all(r["ratio"] == 1.0 and r["verdict"] == "no change" for r in c["speed"] if not r["moved"])
    q = [r for r in c["quality"] if r["moved"]]
    assert [(r["experiment"], r["run"], r["split"], r["metric"]) for r in q] == [
        ("moons-logistic", "jax-eager-cpu", "test", "accuracy")
    ]
    assert q[0]["delta"] == pytest.approx(-0.05) and not q[0]["better"] and q[0]["paired"]
    assert c["like_for_like"] and not any(r["differs"] for r in c["environment"]) and c["runs"] == []

    out = tmp_path / "compare.html"
    proc = subprocess.run(
        [sys.executable, "-m", "reports.html", "--results", str(slower), "--against", str(results), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    speed = page[page.index('<section id="cmp-speed">') : page.index('<section id="cmp-quality">')]
    row = re.search(r"<tr><td><b>moons-mlp</b></td><td>torch-cpu</td>.*?</tr>", speed, re.S).group(0)
    assert E.compact(after["timings"]["train_samples_per_s"]["median"]) in row
    assert E.compact(before["timings"]["train_samples_per_s"]["median"]) in row
    assert 'class="num worse">×0.33<' in row and "same fingerprint" in row and ">slower <" in row
    quality = page[page.index('<section id="cmp-quality">') : page.index('<section id="cmp-parity">')]
    old_runs = [
        json.loads(p.read_text()) for p in sorted((results / "runs/moons-logistic/jax-eager-cpu").glob("*.json"))
    ]
    old = sum(r["metrics"]["test"]["accuracy"] for r in old_runs) / len(old_runs)
    new = old - 0.05
    spread = r"(?: <span[^<]*</span>)?"  # the sd over the seeds, where they differ
    cells = rf'<td class="num">{new:.4f}{spread}</td><td class="num">{old:.4f}{spread}</td>'
    cells += r'\s*<td class="num worse">-0.0500<'
    assert re.search(r"<b>moons-logistic</b></td><td>jax-eager-cpu</td><td>test accuracy</td>\s*" + cells, quality)
    assert "1 speed(s) moved" in page and "1 quality figure(s) moved" in page and "like for like" in page
    assert "style=" not in page and "<script" not in page


def test_comparison_spread_over_seeds_and_other_machines(results):
    runs = load_runs(results)
    other = copy.deepcopy(runs)
    for r in other:
        r["environment"]["fingerprint"] = "feedface"
        r["environment"]["cpu"] = "another CPU"
    this = copy.deepcopy(runs)
    cell = [r for r in this if (r["experiment"], run_label(r)) == ("moons-mlp", "torch-cpu")]
    cell[0]["metrics"]["test"]["accuracy"] += 0.02  # one seed moved, the other not: paired deltas 0.02 and 0
    c = K.compare(this, other)
    row = next(r for r in c["quality"] if (r["experiment"], r["run"], r["split"], r["metric"])
               == ("moons-mlp", "torch-cpu", "test", "accuracy"))  # fmt: skip
    assert row["this"]["n"] == len(SEEDS) and row["paired"]
    assert row["delta"] == pytest.approx(0.01) and not row["moved"]  # within the spread of the paired deltas
    assert not c["like_for_like"] and not any(r["like_for_like"] for r in c["speed"])
    differs = {r["field"] for r in c["environment"] if r["differs"]}
    assert differs == {"fingerprint", "cpu"}
    unpaired = K.compare([r for r in this if r["seed"] == 0], [r for r in other if r["seed"] == 1])
    assert not any(r["paired"] for r in unpaired["quality"])


def test_a_change_is_called_only_beyond_the_factor_and_significant(results, tmp_path):
    """The measurement rule on real run results (one timing process each, so its repetitions are the
    units): 0.79x with samples that overlap the other tree's is "no change" (Welch's p on the logs 0.41);
    the same ratio with separated samples is "slower"; within the band is "no change"; another
    environment fingerprint is "not comparable"."""
    this, other = tmp_path / "this", tmp_path / "other"
    shutil.copytree(results, this)
    shutil.copytree(results, other)

    def samples(values: list[float]):
        def fn(r: dict) -> None:
            t = r["timings"]["train_samples_per_s"]
            t["raw"], t["median"] = values, float(sorted(values)[len(values) // 2])

        return fn

    edit_run(other, "moons-mlp", "torch-cpu", samples([100.0, 110.0, 120.0, 130.0, 140.0]))
    edit_run(this, "moons-mlp", "torch-cpu", samples([80.0, 90.0, 95.0, 135.0, 145.0]))  # median 0.79x
    edit_run(other, "moons-logistic", "torch-cpu", samples([100.0, 110.0, 120.0, 130.0, 140.0]))
    edit_run(this, "moons-logistic", "torch-cpu", samples([80.0, 85.0, 95.0, 96.0, 97.0]))  # 0.79x, apart
    edit_run(this, "moons-mlp", "numpy-cpu", lambda r: scale_speed(r, 1.05))
    edit_run(this, "blobs4-softmax", "torch-cpu", lambda r: r["environment"].update(fingerprint="another"))
    rows = {(r["experiment"], r["run"]): r for r in K.compare(load_runs(this), load_runs(other))["speed"]}
    row = rows[("moons-mlp", "torch-cpu")]
    assert row["ratio"] == pytest.approx(95 / 120) and row["verdict"] == "no change", row
    assert "not significant" in row["reason"] and row["p_value"] == pytest.approx(0.408, abs=1e-3)
    row = rows[("moons-logistic", "torch-cpu")]
    assert row["verdict"] == "slower" and row["p_value"] < 0.05, row
    row = rows[("moons-mlp", "numpy-cpu")]
    assert row["ratio"] == pytest.approx(1.05) and row["verdict"] == "no change" and "within" in row["reason"]
    assert rows[("blobs4-softmax", "torch-cpu")]["verdict"] == "not comparable"


@pytest.mark.parametrize("basis", ["speed probe", "ceiling"])
def test_a_faster_machine_is_not_a_faster_backend(results, tmp_path, basis):
    """Speed is compared per GFLOP/s of the machine as it ran: the speed probe read beside each process's
    timed section where both trees have it, else the run's calibrate ceiling. Every run 1.4x faster on a
    machine that read 1.4x higher is "no change"; one run 1.4 x 1.5x faster is "faster" (1.5x per GFLOP/s);
    the terminal table says the machine moved. With the probe, the ceilings are left equal: it must win."""
    from reports import compare_cli

    this, other = tmp_path / "this", tmp_path / "other"
    shutil.copytree(results, this)
    shutil.copytree(results, other)

    def on(reading: float, speed: float):
        def fn(r: dict) -> None:
            if r["status"] == "ok" and (r.get("timings") or {}).get("train_samples_per_s"):
                t = r["timings"]
                t["machine_ceiling_gflops"] = reading if basis == "ceiling" else 60.0
                probe = reading if basis == "speed probe" else None  # None: a tree from before the probe
                for figure in (t, t["train_samples_per_s"], *(t["train_samples_per_s"].get("processes") or [])):
                    figure["probe_gflops"] = probe
                scale_speed(r, speed)

        return fn

    def tight(r: dict) -> None:  # the judged runs' repetitions tight in both trees: the short runs' own noise
        t = r["timings"]["train_samples_per_s"]  # (an outlier repetition) must not decide the verdict
        t.update(raw=[1000.0, 1010.0, 1020.0, 1030.0, 1040.0], median=1020.0, q1=1010.0, q3=1030.0)
        t.pop("processes", None)

    for tree in (this, other):
        edit_run(tree, "moons-mlp", "torch-cpu", tight)
        edit_run(tree, "moons-logistic", "torch-cpu", tight)
    for path in (other / "runs").glob("*/*/seed*.json"):
        edit_run(other, path.parent.parent.name, path.parent.name, on(50.0, 1.0), (int(path.stem[4:]),))
    for path in (this / "runs").glob("*/*/seed*.json"):
        faster = 1.5 if (path.parent.parent.name, path.parent.name) == ("moons-mlp", "torch-cpu") else 1.0
        edit_run(this, path.parent.parent.name, path.parent.name, on(70.0, 1.4 * faster), (int(path.stem[4:]),))
    c = K.compare(load_runs(this), load_runs(other))
    assert c["machine"][basis]["ratio"] == pytest.approx(1.4)
    rows = {(r["experiment"], r["run"]): r for r in c["speed"]}
    same = rows[("moons-logistic", "torch-cpu")]
    assert same["samples_ratio"] == pytest.approx(1.4) and same["ratio"] == pytest.approx(1.0)
    assert same["verdict"] == "no change" and same["basis"] == basis, same
    moved = rows[("moons-mlp", "torch-cpu")]
    assert moved["verdict"] == "faster" and moved["ratio"] == pytest.approx(1.5), moved
    assert [key for key, r in rows.items() if r["moved"]] == [("moons-mlp", "torch-cpu")]
    text = compare_cli.render(c)
    assert f"{basis}: this 70.0 GFLOP/s, other 50.0 GFLOP/s, x1.4" in text
    # --basis samples: the same trees in samples/s as they are, where the machine's 1.4x is a change
    raw = {(r["experiment"], r["run"]): r for r in K.compare(load_runs(this), load_runs(other), "samples")["speed"]}
    assert (
        raw[("moons-logistic", "torch-cpu")]["verdict"] == "faster"
        and raw[("moons-logistic", "torch-cpu")]["basis"] is None
    )
