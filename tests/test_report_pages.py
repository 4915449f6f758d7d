"""The report's first screen, MLflow links and size budget, on results trees written by
the pipeline's own runner on real backends (tests/helpers_results.py), edited the way a change would edit them;
pages are opened in real headless Chromium."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape

from reports import compare as K
from reports import html as H
from reports import overview as O
from reports import seeds as S
from reports.results import load_runs, run_label, throughput
from tests.helpers_results import DIVERGING, FAILING, SEEDS, edit_run, scale_speed, shared_tree
from tests.paths import ROOT
from tests.test_report import PNG, _chromium_or_skip
from tests.test_report_size import SIZE_BUDGET, assert_on_one_screen, first_screen
from workflow.lib.stats import compare_samples

EXTRA_BACKENDS = {"tensorflow": 0.7, "jax": 1.9, "torch-eager": 0.08, "tensorflow-eager": 0.01}  # speed x torch's


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    return shared_tree(tmp_path_factory, seed=0)


@pytest.fixture(scope="session")
def wide(results, tmp_path_factory) -> Path:
    """The tree at the CI config's width: every experiment also run by four more backends (copies of its
    torch run at other speeds), so the matrix has the 7 CPU columns of config/ci.yaml plus the failed GPU run."""
    tree = tmp_path_factory.mktemp("wide") / "results"
    shutil.copytree(results, tree)
    for exp_dir in sorted((tree / "runs").iterdir()):
        for seed_file in sorted((exp_dir / "torch-cpu").glob("seed*.json")):
            torch = json.loads(seed_file.read_text())
            for backend, factor in EXTRA_BACKENDS.items():
                run = copy.deepcopy(torch)
                run.update(
                    backend=backend, framework=backend.split("-")[0], mode="eager" if "eager" in backend else "compiled"
                )
                if run["status"] == "ok" and run["timings"]["timed"]:
                    scale_speed(run, factor)
                (exp_dir / f"{backend}-cpu").mkdir(exist_ok=True)
                (exp_dir / f"{backend}-cpu" / seed_file.name).write_text(json.dumps(run))
    return tree


def test_matrix_is_speed_relative_to_the_fastest_with_the_documents_verdict(results):
    runs = load_runs(results)
    matrix = O.speed_matrix(runs)
    assert matrix["labels"][-1] == f"{FAILING[1]}-{FAILING[2]}" and matrix["devices"][0]["device"] == "cpu"
    assert [r["experiment"] for r in matrix["rows"]] == sorted({r["experiment"] for r in runs})
    files = {(r["experiment"], run_label(r)): r for r in runs if r["timings"]["timed"]}  # the timed seed
    verdicts = {row["experiment"]: row for row in S.figure_verdicts(runs)[0]}
    for row in matrix["rows"]:
        exp = row["experiment"]
        speeds = {label: throughput(r, "train") for (e, label), r in files.items() if e == exp}
        known = {k: v for k, v in speeds.items() if v is not None}
        if not known:  # the diverged experiment: no speed, no finished run
            assert row["fastest"] is None and row["verdict"]["kind"] == "unfinished" and exp == DIVERGING
            continue
        assert row["fastest"] == {"label": max(known, key=known.get), "median": max(known.values())}
        for label, cell in row["cells"].items():
            if (exp, label) not in files:
                assert cell is None
            elif label in known:
                assert cell["ratio"] == pytest.approx(known[label] / max(known.values()))
                assert cell["median"] == known[label] and cell["n"] == len(SEEDS)
            else:
                assert cell["status"] == files[(exp, label)]["status"] != "ok" and cell["ratio"] is None
        judged = [
            c["verdict"] for r in S.figure_verdicts([x for x in runs if x["experiment"] == exp])[0]
            for c in r["cells"].values() if c and c["verdict"]
        ]  # fmt: skip
        reproduced = [v == S.REPRODUCED for v in judged]
        expected = "reproduced" if all(reproduced) else "not" if not any(reproduced) else "partly"
        assert row["verdict"]["kind"] == expected, (exp, judged)
    assert verdicts
    kinds = {row["verdict"]["kind"] for row in matrix["rows"]}
    assert "unfinished" in kinds and len(kinds) >= 2, "the short runs should meet some documents and miss others"
    assert [O.speed_class(x) for x in (1.0, 0.9, 0.6, 0.3, 0.2, 0.05, None)] == [
        "sp0", "sp1", "sp2", "sp3", "sp4", "sp5", "spnone"
    ]  # fmt: skip


def test_first_screen_markup_shows_each_ratio_and_verdict(results):
    runs = load_runs(results)
    html = H.first_screen(runs)
    moons = O.speed_matrix(runs)["rows"][[r["experiment"] for r in O.speed_matrix(runs)["rows"]].index("moons-mlp")]
    for label, cell in moons["cells"].items():
        if cell and cell["ratio"] is not None:
            x = cell["ratio"]
            text = "1.00" if x >= 0.995 else f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"
            ns = cell["vs_fastest"] is not None and cell["vs_fastest"]["verdict"] == "no change"
            text = ("≈" if ns else "") + text
            mark = " ns" if ns else ""
            assert re.search(
                rf'<td class="num sp\d{mark}" title="{re.escape(label)}: [^"]*">{re.escape(text)}', html
            ), label
    badges = {
        "reproduced": "✓ reproduced",
        "partly": ">partly<",
        "not": "✗ not<",
        "unfinished": "no run finished",
    }
    for row in O.speed_matrix(runs)["rows"]:
        assert badges[row["verdict"]["kind"]] in html, row["experiment"]
    assert html.count('class="verdict"') == len({r["experiment"] for r in runs})
    row = next(r for r in S.figure_verdicts(runs)[0] if r["experiment"] == "blobs4-softmax")
    assert row["cells"]["numpy-cpu"]["verdict"] != S.REPRODUCED  # the reference misses it: named in the tooltip
    said = "within seed range on" if row["cells"]["numpy-cpu"]["verdict"] == S.IN_RANGE else "not reproduced on"
    assert re.search(re.escape(str(escape("test accuracy 0.9225"))) + r"[^\"]*" + said + r" [^\"]*numpy-cpu", html)


def test_matrix_marks_differences_from_the_fastest_that_are_not_significant(results, tmp_path):
    """Each cell against its experiment's fastest by compare_samples at SPEED_BAND on its units (here one
    process each, so its timed repetitions):
    a run at 0.97x of the fastest with overlapping samples is marked ≈ (p in its tooltip), one at 0.3x is
    significantly slower and not marked."""
    tree = tmp_path / "results"
    shutil.copytree(results, tree)
    matrix = O.speed_matrix(load_runs(tree))
    row = next(r for r in matrix["rows"] if r["experiment"] == "moons-mlp")
    fastest = row["fastest"]["label"]
    others = [label for label, c in row["cells"].items() if c and c["ratio"] and label != fastest]
    top = json.loads((tree / "runs" / "moons-mlp" / fastest / "seed0.json").read_text())["timings"]
    raw = top["train_samples_per_s"]["raw"]

    def speed_as(factor, n):
        def edit(run):  # n samples: the short runs' few are too few for a significant difference
            t = run["timings"]["train_samples_per_s"]
            t["raw"] = [raw[i % len(raw)] * factor * (1 + 0.001 * i) for i in range(n)]
            t.update(median=top["train_samples_per_s"]["median"] * factor, q1=None, q3=None)

        return edit

    edit_run(tree, "moons-mlp", others[0], speed_as(0.97, len(raw)))
    edit_run(tree, "moons-mlp", others[1], speed_as(0.3, 12))
    runs = load_runs(tree)
    matrix = O.speed_matrix(runs)
    for r in matrix["rows"]:
        top_runs = [x for x in runs if x["experiment"] == r["experiment"] and r["fastest"]
                    and run_label(x) == r["fastest"]["label"]]  # fmt: skip
        for label, cell in r["cells"].items():
            if not cell or cell["status"] != "ok" or not top_runs:
                continue
            if label == r["fastest"]["label"]:
                assert cell["vs_fastest"] is None
                continue
            mine = [x for x in runs if x["experiment"] == r["experiment"] and run_label(x) == label]
            want = compare_samples(K.speed_units(mine), K.speed_units(top_runs), K.SPEED_BAND)
            assert cell["vs_fastest"]["verdict"] == want.verdict and cell["vs_fastest"]["p_value"] == want.p_value
    cells = next(r for r in matrix["rows"] if r["experiment"] == "moons-mlp")["cells"]
    same, slower = cells[others[0]]["vs_fastest"], cells[others[1]]["vs_fastest"]
    assert same["verdict"] == "no change" and same["ratio"] == pytest.approx(0.97, rel=0.01)
    assert slower["verdict"] == "slower" and slower["p_value"] < 0.05
    html = H.first_screen(runs)
    p = f"Welch p = {same['p_value']:.2g}"
    assert re.search(rf'<td class="num sp1 ns" title="{others[0]}: [^"]*not significantly different from the '
                     rf'fastest \({re.escape(p)};[^"]*">≈0\.97×', html)  # fmt: skip
    assert re.search(rf'<td class="num sp3" title="{others[1]}: [^"]*significantly slower than the fastest '
                     rf'\(Welch p = [^"]*">0\.30×', html)  # fmt: skip
    legend = (
        " not significantly different from the fastest (a difference needs a ratio beyond ×/÷1.1 and Welch's"
        " t-test on the logs of the process medians at"
    )
    assert f'class="key ns">≈</span>{escape(legend)} p &lt; 0.05' in html


def with_mlflow(runs: list[dict]) -> list[dict]:
    """The runs as logged to three kinds of store: a tracking server, the embedded SQLite store, and a failed log."""
    runs = copy.deepcopy(runs)
    for r in runs:
        if (r["experiment"], run_label(r)) == ("moons-mlp", "torch-cpu"):
            r["mlflow"] = {"run_id": "a1b2c3", "experiment_id": "7", "tracking_uri": "https://mlflow.example.org/"}
        elif r["experiment"] == "moons-mlp" and r["status"] == "ok":
            r["mlflow"] = {"run_id": f"run-{r['backend']}", "experiment_id": "1",
                           "tracking_uri": "sqlite:////data/fw bench/mlflow.db"}  # fmt: skip
        elif r["experiment"] == "moons-logistic" and r["backend"] == "torch":
            r["mlflow"] = {"error": "OperationalError: database is locked"}
    return runs


def test_every_run_links_to_its_mlflow_run(results):
    runs = with_mlflow(load_runs(results))
    url = "https://mlflow.example.org/#/experiments/7/runs/a1b2c3"
    command = "mlflow ui --backend-store-uri 'sqlite:////data/fw bench/mlflow.db' --port 5000"
    first, what = H.first_screen(runs), H.what_was_run(runs, results)
    for html in (first, what):
        assert f'href="{url}"' in html
        assert str(escape("MLflow run run-numpy: http://127.0.0.1:5000/#/experiments/1/runs/run-numpy once")) in html
        assert "MLflow logging failed: OperationalError: database is locked" in html
        assert "not logged to MLflow" in html
    assert '<code class="copy"' in first and str(escape(command)) in first
    stores = O.mlflow_stores(runs)
    assert stores["servers"] == ["https://mlflow.example.org"] and stores["commands"] == [command]
    assert stores["unlogged"] == sum(1 for r in runs if not (r["mlflow"] or {}).get("run_id"))
    # every run of the "What was run" table carries its link or note
    assert what.count('class="badge ') == len(runs) and what.count("title=") >= len(runs)


def test_report_first_screen_size_and_console_in_headless_chromium(wide, tmp_path):
    _chromium_or_skip()
    out = tmp_path / "report" / "index.html"
    proc = subprocess.run(
        [sys.executable, "-m", "reports.html", "--results", str(wide), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    size = out.stat().st_size
    assert size <= SIZE_BUDGET, f"the report is {size / 1e6:.2f} MB, over its {SIZE_BUDGET / 1e6:.0f} MB budget"
    page = out.read_text()
    uris = re.findall(r'<img[^>]+src="(data:image/png;base64,[^"]+)"', page)
    assert len(uris) >= 12 and len(set(uris)) == len(uris), "every image is embedded once"
    shot = out.parent / "first-screen.png"
    found = first_screen(out, shot)
    assert_on_one_screen(found)
    runs = load_runs(wide)
    assert page.count('<td class="num sp') == len({r["experiment"] for r in runs}) * len({run_label(r) for r in runs})
    verdicts = [b for b in found["boxes"] if b["what"] == "TD.verdict"]
    assert len(verdicts) == len({r["experiment"] for r in runs})
    assert shot.read_bytes().startswith(PNG)
    print(f"first screen: {shot}; report {size / 1e6:.2f} MB")
