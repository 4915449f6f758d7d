"""The CI regression checker and the baselines it reads, on a results tree written by the pipeline's
own runner on real backends (tests/helpers_results.py), then edited the way a regression would change them."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports import baselines as B
from reports import check as C
from tests.helpers_check import build_trained, edit, private_copy, row, run_check, speed_up
from tests.helpers_results import SEEDS
from tests.paths import ROOT


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    return build_trained(tmp_path_factory)


@pytest.fixture
def work(trained, tmp_path) -> Path:
    return private_copy(trained, tmp_path)


def test_unchanged_results_pass(work):
    code, out = run_check(work)
    assert code == 0, out
    n = sum(len(e["runs"]) for e in json.loads((work / "baselines.json").read_text())["experiments"].values())
    config = json.loads((work / "results" / "config.json").read_text())
    assert n == len(config["experiments"]) * len(config["backends"])  # every run of the clean tree is baselined
    assert "all " in out and " checks passed" in out
    assert int(out.split("all ")[1].split()[0]) > 3 * n  # status + quality + parity + throughput per run


def test_lower_accuracy_fails_with_its_row(work):
    def lower(d):
        d["metrics"]["test"]["accuracy"] -= 0.25

    edit(work, "moons-mlp", "torch-cpu", lower)
    code, out = run_check(work)
    assert code == 1
    line = row(out, "moons-mlp", "torch-cpu", "test.accuracy")
    assert "REGRESSED" in line
    assert "1 of " in out and "checks failed" in out


def test_higher_mse_fails_and_lower_is_a_change(work):
    def scale(split: str, factor: float):
        return lambda d: d["metrics"][split].update(mse=d["metrics"][split]["mse"] * factor)

    # hotels-mlp's seeds land in different minima (its tolerance from their spread is wide): the check's
    # logic is tested against a 10% tolerance here
    base = json.loads((work / "baselines.json").read_text())
    for entry in base["experiments"]["hotels-mlp"]["runs"].values():
        for m in entry["metrics"].values():
            m["tolerance"] = 0.1 * m["expected"]
    (work / "baselines.json").write_text(json.dumps(base))
    edit(work, "hotels-mlp", "jax-eager-cpu", scale("test", 3))
    edit(work, "hotels-mlp", "torch-cpu", scale("train", 1 / 3))
    code, out = run_check(work)
    assert code == 1
    assert "REGRESSED" in row(out, "hotels-mlp", "jax-eager-cpu", "test.mse")
    assert "CHANGED" in row(out, "hotels-mlp", "torch-cpu", "train.mse")


def test_missing_run_fails(work):
    shutil.rmtree(work / "results" / "runs" / "moons-logistic" / "jax-eager-cpu")
    code, out = run_check(work)
    assert code == 1
    assert "MISSING" in row(out, "moons-logistic", "jax-eager-cpu")


def test_run_missing_because_not_scheduled_is_a_note(work, tmp_path):
    # baselines from a machine with a GPU: the same tree plus a torch GPU run
    gpu_tree = tmp_path / "gpu"
    shutil.copytree(work / "results", gpu_tree)
    shutil.copytree(gpu_tree / "runs" / "moons-mlp" / "torch-cpu", gpu_tree / "runs" / "moons-mlp" / "torch-gpu")
    for path in (gpu_tree / "runs" / "moons-mlp" / "torch-gpu").glob("seed*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "device": "gpu"}))
    assert B.main(["--results", str(gpu_tree), "--out", str(tmp_path / "gpu-baselines.json")]) == 0

    code, out = run_check(work, baselines=tmp_path / "gpu-baselines.json")  # devices.json: torch on cpu only
    assert code == 0, out
    assert "not scheduled: no CUDA device seen" in row(out, "moons-mlp", "torch-gpu")

    devices = json.loads((work / "results" / "devices.json").read_text())
    devices["torch"] = {"devices": ["cpu", "gpu"], "reason": ""}
    (work / "results" / "devices.json").write_text(json.dumps(devices))
    code, out = run_check(work, baselines=tmp_path / "gpu-baselines.json")
    assert code == 1
    assert "MISSING" in row(out, "moons-mlp", "torch-gpu")


def test_diverged_run_fails_with_its_message(work):
    def diverge(d):
        d.update(status="diverged", message="loss became NaN/inf at epoch 3; lower the learning rate")
        d["metrics"] = {"train": None, "test": None}  # what the runner writes for a diverged run

    edit(work, "blobs4-softmax", "torch-cpu", diverge)
    code, out = run_check(work)
    assert code == 1
    line = row(out, "blobs4-softmax", "torch-cpu seed 0", "status")
    assert "diverged" in line and "FAILED: loss became NaN/inf at epoch 3" in line


def test_failed_run_outside_the_baselines_fails(work):
    runs = work / "results" / "runs" / "moons-mlp"
    shutil.copytree(runs / "torch-cpu", runs / "tensorflow-cpu")
    edit(
        work,
        "moons-mlp",
        "tensorflow-cpu",
        lambda d: d.update(backend="tensorflow", status="failed", message="ImportError: no module named tensorflow"),
    )
    code, out = run_check(work)
    assert code == 1
    assert "FAILED (not in baselines)" in row(out, "moons-mlp", "tensorflow-cpu seed 0", "status")


def test_parity_beyond_bound_fails(work):
    edit(work, "moons-logistic", "torch-cpu", lambda d: d["parity"].update(max_rel_loss_deviation=0.3), timed_only=True)
    code, out = run_check(work)
    assert code == 1
    assert "BEYOND BOUND" in row(out, "moons-logistic", "torch-cpu seed 0", "parity")
    assert "pass" in row(run_check(work, "--verbose")[1], "moons-logistic", "torch-cpu seed 1", "parity")


def test_baselines_are_medians_over_seeds_with_a_tolerance_from_their_spread(trained):
    data = json.loads((trained / "baselines.json").read_text())
    assert "max(k * std / sqrt(n), floor)" in data["method"] and "k = 3" in data["method"]
    assert data["sources"]["seeds"] == list(SEEDS)
    checked = from_std = 0
    for exp, e in data["experiments"].items():
        for label, entry in e["runs"].items():
            assert entry["seeds"] == list(SEEDS)
            files = sorted((trained / "results" / "runs" / exp / label).glob("seed*.json"))
            runs = [json.loads(p.read_text()) for p in files]
            for key, m in entry["metrics"].items():
                split, name = key.split(".")
                values = [r["metrics"][split][name] for r in runs]
                std = float(np.std(values, ddof=1))
                n = sum(map(sum, runs[0]["metrics"][split]["confusion_matrix"])) if name != "mse" else None
                floor = {"accuracy": max(0.02, 1 / n) if n else 0, "f1": max(0.03, 2 / n) if n else 0}.get(
                    name, max(0.1 * abs(float(np.median(values))), 1e-6)
                )
                assert m["expected"] == pytest.approx(float(np.median(values)))
                assert m["n"] == len(SEEDS)
                assert math.isclose(m["tolerance"], max(3 * std / math.sqrt(len(values)), floor), rel_tol=1e-12)
                checked += 1
                from_std += m["tolerance"] > m["floor"]
    groups = {p.parent for p in (trained / "results" / "runs").glob("*/*/*.json")}
    tasks = [json.loads(next(g.glob("*.json")).read_text())["task"] for g in groups]
    assert checked == sum(2 if t == "regression" else 4 for t in tasks)  # train/test x (mse | accuracy, f1)
    assert from_std > 0, "no tolerance came from the seed spread: the rule's k * std branch went untested"


def test_other_seeds_than_the_baselines_are_not_compared(work):
    for path in (work / "results" / "runs" / "moons-mlp" / "torch-cpu").glob("seed*.json"):
        if json.loads(path.read_text())["seed"] != SEEDS[0]:
            path.unlink()
    code, out = run_check(work)
    assert code == 0, out
    assert "not comparable: seeds [0]" in row(out, "moons-mlp", "torch-cpu", "quality")


def test_bad_input_is_a_clear_error(work, tmp_path, capsys):
    assert C.main(["--results", str(work / "results"), "--baselines", str(tmp_path / "nope.json")]) == 2
    assert "python -m reports.baselines" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"experiments": []}')
    assert C.main(["--results", str(work / "results"), "--baselines", str(tmp_path / "bad.json")]) == 2
    assert "schema_version 2" in capsys.readouterr().err
    assert C.main(["--results", str(tmp_path / "empty"), "--baselines", str(work / "baselines.json")]) == 2
    assert "run the pipeline first" in capsys.readouterr().err


def test_command_line_entry_points(work):
    out = work / "fresh.json"
    ok = subprocess.run(
        [sys.executable, "-m", "reports.baselines", "--results", str(work / "results"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    edit(work, "moons-mlp", "numpy-cpu", lambda d: d["metrics"]["train"].update(f1=0.1))
    bad = subprocess.run(
        [sys.executable, "-m", "reports.check", "--results", str(work / "results"), "--baselines", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    header = bad.stdout.splitlines()[0].split()
    assert header == ["experiment", "backend", "metric", "expected", "got", "tolerance", "verdict"]
    assert "REGRESSED" in row(bad.stdout, "moons-mlp", "numpy-cpu", "train.f1")


def test_junit_and_markdown_list_every_check(work):
    import xml.etree.ElementTree as ET

    from reports.results import load_devices, load_runs

    edit(
        work,
        "moons-mlp",
        "torch-cpu",
        lambda d: d["metrics"]["test"].update(accuracy=d["metrics"]["test"]["accuracy"] - 0.25),
    )
    edit(work, "moons-mlp", "jax-eager-cpu", speed_up(10.0), timed_only=True)  # a flagged ratio: a note, not a failure
    md = work / "summary" / "check.md"
    code, out = run_check(work, "--markdown", str(md))
    assert code == 1 and "REGRESSED" in row(out, "moons-mlp", "torch-cpu", "test.accuracy")  # the text table stays

    rows = C.check(
        load_runs(work / "results"), C.load_baselines(work / "baselines.json"), load_devices(work / "results")
    )
    junit = work / "results" / "check.junit.xml"  # the default beside the results
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(rows) == int(suite.get("tests")) > 20
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(set(names)) == len(names), "test case names must be unique"
    assert [n for n, _ in names] == [r.experiment for r in rows]
    assert all(name.startswith(f"{r.run}: {r.metric}") for (_, name), r in zip(names, rows))
    failures = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failures] == [("moons-mlp", "torch-cpu: test.accuracy")]
    assert failures[0].find("failure").get("message") == "REGRESSED" and suite.get("failures") == "1"
    skipped = {
        (c.get("classname"), c.get("name")): c.find("skipped").get("message")
        for c in cases
        if c.find("skipped") is not None
    }
    assert "FLAGGED" in skipped[("moons-mlp", "jax-eager-cpu: train speed / numpy-cpu")]
    assert int(suite.get("skipped")) == len(skipped) == sum(r.note and not r.fails for r in rows)
    assert all(c.find("system-out").text for c in cases)

    text = md.read_text()
    assert "1 of " in text and "checks failed" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| ❌") or line.startswith("| ⚠️")]
    assert len(table_rows) == sum(r.fails or r.note for r in rows)
    assert any("torch-cpu" in line and "REGRESSED" in line for line in table_rows)

    other = work / "elsewhere.xml"
    assert run_check(work, "--junit", str(other))[0] == 1
    assert len(ET.parse(other).getroot().find("testsuite").findall("testcase")) == len(rows)


def test_known_failures_stay_visible_and_strict():
    failing = C.Check(
        "mnist10k-mlp", "tensorflow-eager-cpu seed 0", "parity", "≤ 1e-5", "1e-3", "", "BEYOND BOUND", True
    )
    passing = C.Check("moons-mlp", "torch-cpu seed 0", "parity", "≤ 1e-5", "1e-7", "", "pass")
    known = [
        {"experiment": "mnist10k-mlp", "run": "tensorflow-eager-cpu seed 0", "check": "parity", "why": "reason A"},
        {"experiment": "moons-mlp", "run": "torch-cpu seed 0", "check": "parity", "why": "reason B"},
    ]
    rows = C.apply_known([failing, passing], known)
    assert not rows[0].fails and rows[0].note and rows[0].verdict == "KNOWN (BEYOND BOUND): reason A"
    assert not rows[1].fails and rows[1].note and "fixed? remove the entry" in rows[1].verdict
    entries = C.load_known_failures()  # the repository's own list parses, every entry explained
    assert all(e["why"].strip() for e in entries)
