"""The summary table, the plots and the HTML report, on a results tree written by the pipeline's own
runner on real backends (tests/helpers_results.py); the page is opened in real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape

from reports import html as H
from reports import page_env as E
from reports import plots as P
from reports import seeds as S
from reports.png import png_bytes
from reports.results import ResultsError, load_runs, speedup_vs_slowest
from tests.helpers_results import DIVERGING, FAILING, NOT_SEEN, shared_tree
from tests.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    """A full results tree: 5 experiments (one diverging) x 3 backends, one failed GPU run, side files."""
    return shared_tree(tmp_path_factory, seed=0)


def read_run(results: Path, experiment: str, label: str) -> dict:
    return json.loads((results / "runs" / experiment / label / "seed0.json").read_text())


@pytest.fixture(scope="session")
def page(results) -> str:
    return H.render(results)


def test_summary_has_one_row_per_run_with_the_files_values(results, tmp_path):
    out = tmp_path / "summary.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "reports.results", "--results", str(results), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out)
    files = sorted((results / "runs").glob("*/*/*.json"))
    config = json.loads((results / "config.json").read_text())
    n_jobs = len(config["experiments"]) * len(config["backends"]) + 1  # + the failed run
    assert len(frame) == len(files) == n_jobs * len(config["seeds"])  # one row per training: job x seed
    over = pd.read_csv(tmp_path / "summary_over_seeds.csv")
    acc = over[(over.experiment == "moons-mlp") & (over.backend == "torch") & (over.split == "test")]
    acc = acc[acc.metric == "accuracy"].iloc[0]
    values = frame[(frame.experiment == "moons-mlp") & (frame.backend == "torch")].test_accuracy
    assert acc.seeds_ok == len(config["seeds"]) and acc["median"] == pytest.approx(values.median())
    assert (acc["min"], acc["max"]) == (values.min(), values.max())
    assert acc.interval_low <= acc["median"] <= acc.interval_high
    for col in (
        "experiment", "dataset", "backend", "framework", "mode", "device", "status", "train_accuracy", "test_f1",
        "test_mse", "test_r2", "final_loss", "train_samples_per_s_median", "train_samples_per_s_q1",
        "inference_samples_per_s_median", "compile_seconds", "time_to_target_seconds", "parity_max_rel_loss_deviation",
        "fingerprint", "mlflow_run_id", "train_speedup_vs_slowest",
    ):  # fmt: skip
        assert col in frame.columns, col
    run = json.loads((results / "runs" / "moons-mlp" / "torch-cpu" / "seed0.json").read_text())
    got = frame[(frame.experiment == "moons-mlp") & (frame.backend == "torch")].iloc[0]
    assert got.test_accuracy == run["metrics"]["test"]["accuracy"]
    assert got.train_samples_per_s_median == run["timings"]["train_samples_per_s"]["median"]
    assert got.final_loss == run["loss_history"][-1]
    assert got.framework == "torch" and got["mode"] == "compiled"
    failed = frame[frame.status == "failed"]
    assert len(failed) == len(config["seeds"]) and (failed.experiment.iloc[0], failed.backend.iloc[0]) == FAILING[:2]
    assert "sees no 'gpu' device" in failed.message.iloc[0] and pd.isna(failed.test_accuracy.iloc[0])
    diverged = frame[frame.status == "diverged"]
    assert set(diverged.experiment) == {DIVERGING} and diverged.train_mse.isna().all()
    assert set(frame[frame.task == "regression"].test_accuracy.isna()) == {True}
    # the reference backend comes first within each experiment
    assert frame.groupby("experiment").backend.first().eq("numpy").all()


def test_speedup_is_against_the_slowest_run(results):
    runs = [r for r in load_runs(results) if r["experiment"] == "moons-mlp" and r["timings"]["timed"]]
    speed = speedup_vs_slowest(runs, "train")
    medians = {
        f"{r['backend']}-{r['device']}": r["timings"]["train_samples_per_s"]["median"]
        for r in runs
        if r["status"] == "ok"
    }
    slowest = min(medians.values())
    assert set(speed) == set(medians)  # the failed GPU run has no throughput and no speed-up
    assert min(speed.values()) == 1.0
    for label, v in speed.items():
        assert v == pytest.approx(medians[label] / slowest)


def test_every_figure_renders_to_png(results, tmp_path):
    runs = load_runs(results)
    by_exp = P.by_experiment(runs)
    for fn in (P.loss_curves, P.throughput_bars):
        for exp, rs in by_exp.items():
            fig = fn(rs)
            if exp == DIVERGING and fn is P.throughput_bars:
                assert fig is None  # a diverged run has no throughput to draw
                continue
            assert png_bytes(fig).startswith(PNG), (fn.__name__, exp)
    assert P.confusion_matrices(by_exp["hotels-mlp"]) is None  # regression: no confusion matrix
    assert png_bytes(P.confusion_matrices(by_exp["blobs4-softmax"])).startswith(PNG)
    by_ds = P.by_dataset(runs)
    hotels_ok = [r for r in by_ds["hotels"] if r["status"] == "ok"]
    assert hotels_ok and all(r["decision_grid"]["values"] for r in hotels_ok)  # regression: predicted values
    assert png_bytes(P.decision_boundaries(by_ds["hotels"])).startswith(PNG)
    broken = [{**r, "decision_grid": {**r["decision_grid"], "shape": [7, 7]}} for r in hotels_ok]
    assert P.decision_boundaries(broken) is None  # a grid that does not match its shape is not drawn
    points = P.dataset_points(results, "moons")
    assert points is not None and points[0].shape[1] == 2
    assert png_bytes(P.decision_boundaries(by_ds["moons"], points)).startswith(PNG)
    written = P.write_figures(runs, tmp_path / "plots", results)
    names = {p.name for p in written}
    assert {"loss-moons-mlp.png", "confusion-blobs4-softmax.png", "throughput-moons-mlp.png"} <= names
    assert {"decision-moons.png", "decision-blobs4.png", "decision-hotels.png"} <= names
    assert "throughput-" + DIVERGING + ".png" not in names and "confusion-hotels-mlp.png" not in names
    assert all(p.read_bytes().startswith(PNG) for p in written)


@pytest.mark.slow
def test_figures_drawn_in_two_processes_make_the_same_page(results, tmp_path):
    """`python -m reports.html --jobs 2` (the report rule, threads 2) forks its figure drawing: the page
    and the plots folder must be byte for byte what one process draws. Run as the rule runs it, in
    its own process (this one has JAX's threads, which fork must not inherit)."""
    out = {}
    for jobs in (1, 2):
        d = tmp_path / f"jobs{jobs}"
        cmd = [sys.executable, "-m", "reports.html", "--results", str(results), "--out", str(d / "index.html")]
        proc = subprocess.run(
            [*cmd, "--plots", str(d / "plots"), "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        when = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
        plots = {f.name: f.read_bytes() for f in sorted((d / "plots").iterdir())}
        out[jobs] = (when.sub("", (d / "index.html").read_text()), plots)
    assert out[1][1] and out[2] == out[1]


def experiment_rows(table_html: str, experiment: str) -> str:
    """The rows of one experiment in a report table grouped by experiment (in name order, bold first cell)."""
    names = sorted(set(re.findall(r"<b>([\w.-]+)</b>", table_html)))
    start = table_html.index(f"<b>{experiment}</b>")
    later = [table_html.index(f"<b>{n}</b>") for n in names if n > experiment]
    return table_html[start : min(later, default=len(table_html))]


def section_html(page: str, key: str) -> str:
    start = page.index(f'<section id="{key}">')
    return page[start : page.index("</section>", start)]


def test_page_content(results, page):
    runs = load_runs(results)
    for key, _ in E.NAV:
        assert f'id="{key}"' in page and f'href="#{key}"' in page
    # environment: the CPU runs share one fingerprint, the failed GPU run has its own: not like-for-like
    cpu = {r["environment"]["fingerprint"] for r in runs if r["device"] == "cpu"}
    gpu = {r["environment"]["fingerprint"] for r in runs if r["device"] == "gpu"}
    assert len(cpu) == len(gpu) == 1 and cpu != gpu
    assert "2 different environment fingerprints" in page and "not like-for-like" in page
    # documents vs measured: every figure, per backend, its median over seeds and one of the three verdicts
    documents = section_html(page, "documents")
    rows, _ = S.figure_verdicts(runs)
    marks = {S.REPRODUCED: "✓", S.IN_RANGE: 'title="within seed range">≈', S.NOT_REPRODUCED: 'title="not reproduced">✗'}
    seen = set()
    for row in rows:
        cell = row["cells"].get("numpy-cpu")
        if not cell or cell["verdict"] is None:
            continue
        html = experiment_rows(documents, row["experiment"])
        assert E.fmt(cell["median"], ".4f" if row["metric"] == "accuracy" else ".4g") in html, row
        assert marks[cell["verdict"]] in html, row
        seen.add(cell["verdict"])
    assert len(seen) >= 2, f"the short runs should meet some figures and miss others, got {seen}"
    blobs = read_run(results, "blobs4-softmax", "numpy-cpu")
    missed = next(r for r in rows if r["experiment"] == "blobs4-softmax")["cells"]["numpy-cpu"]
    assert missed["verdict"] != S.REPRODUCED, "a short run was expected to miss blobs4's 0.9225"
    assert "adl1 §3.1" in page
    # time to target: never reached for blobs4 (its test accuracy figure), reached by some other run
    ttt = blobs["timings"]["time_to_target"]
    assert ttt["reached"] is False
    assert "not reached" in page and f"test accuracy ≥ {E.fmt(ttt['target'], '.4g')}" in page
    timed = S.timed_runs(runs)  # the throughput table's rows
    reached = [t for r in timed if (t := (r.get("timings") or {}).get("time_to_target") or {}).get("reached")]
    assert reached, "no run reached its target: the report's reached branch went unchecked"
    assert all(f"{E.fmt(t['seconds'], '.3g')} s ({t['epochs']} epochs)" in page for t in reached)
    # failed and diverged runs are shown with their messages, escaped
    assert str(escape("sees no 'gpu' device")) in page
    diverged = read_run(results, DIVERGING, "numpy-cpu")
    assert diverged["status"] == "diverged" and str(escape(diverged["message"])) in page
    first_bad = diverged["loss_history"].index(None) + 1  # 1-based, as on the loss curves' epoch axis
    assert f"at epoch {first_bad};" in diverged["message"]
    # what devices.json withheld
    assert NOT_SEEN in page
    # the resolved config is embedded
    assert "Resolved pipeline config" in page and str(escape('"experiments"')) in page
    # self-contained: every image is a data URI, nothing points outside the page
    srcs = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(srcs) >= 12 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(?!#|data:)', page)
    assert "url(" not in page and "<script" not in page and "<link" not in page
    # colours come from report.css classes, never inline styles
    assert "style=" not in page


def test_reconstructed_labels_are_marked(results, page):
    assert "reconstructed labels" not in page
    runs = load_runs(results)
    for run in runs:
        if run["experiment"] == "blobs4-softmax":
            run["reconstructed_labels"] = True
    documents = H.documents_vs_measured(runs)
    assert documents.count("reconstructed labels") == 1  # the blobs4 group's first row (repeats are blanked)
    assert "reconstructed labels" in experiment_rows(documents, "blobs4-softmax")
    assert ">reconstructed</span>" in H.what_was_run(runs, results)


def test_bad_results_are_clear_errors(results, tmp_path, capsys):
    with pytest.raises(ResultsError, match="run the pipeline first"):
        load_runs(tmp_path / "missing")
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    bad = copy / "runs" / "moons-mlp" / "torch-cpu" / "seed0.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="torch-cpu/seed0.json.*rerun its training job"):
        load_runs(copy)
    run = json.loads((results / "runs" / "moons-mlp" / "torch-cpu" / "seed0.json").read_text())
    bad.write_text(json.dumps({**run, "schema_version": 7}))
    with pytest.raises(ResultsError, match="schema_version 7"):
        load_runs(copy)
    assert H.main(["--results", str(copy), "--out", str(tmp_path / "x.html")]) == 2
    assert "schema_version" in capsys.readouterr().err


def _chromium_or_skip() -> Path:
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        if not found:
            pytest.skip(
                "Chromium not found at /usr/bin/chromium or on PATH: install it with "
                "`apt-get update && apt-get install -y chromium` to run the browser check of the report"
            )
        return Path(found)
    return CHROMIUM


def test_report_opens_cleanly_in_headless_chromium(results, tmp_path):
    chromium = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report" / "index.html"
    proc = subprocess.run(
        [sys.executable, "-m", "reports.html", "--results", str(results), "--out", str(out),
         "--plots", str(tmp_path / "report" / "plots")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert any((tmp_path / "report" / "plots").glob("*.png"))
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))

            def route(r):
                if r.request.url.startswith(("file:", "data:")):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            pg.route("**/*", route)
            pg.goto(out.as_uri(), wait_until="load")
            images = pg.evaluate(
                "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"
            )
            nav_targets = pg.evaluate(
                "Array.from(document.querySelectorAll('nav a')).map(a => !!document.querySelector(a.hash))"
            )
            title = pg.title()
            shot = tmp_path / "report.png"
            pg.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == [], f"console errors: {errors}"
    assert outside == [], f"the page made requests outside itself: {outside}"
    assert len(images) >= 12
    broken = [i["alt"] for i in images if not i["ok"]]
    assert broken == [], f"images that did not load: {broken}"
    assert nav_targets and all(nav_targets)
    assert title == "fwbench report"
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000


def test_every_class_on_the_page_is_styled_by_report_css(page):
    used = {c for attr in re.findall(r'class="([^"]+)"', page) for c in attr.split()}
    assert {"group", "fast", "fp"} <= used
    # classes that appear with the data (a reproduced or missed figure, a tiny deviation) are styled too
    assert all(re.search(rf"\.{c}\b", E.CSS) for c in ("within", "outside", "dev0"))
    unstyled = sorted(c for c in used if not re.search(rf"\.{re.escape(c)}\b", E.CSS))
    assert unstyled == [], f"classes used by the templates but not defined in reports/report.css: {unstyled}"
    levels = [E.deviation_class(d) for d in (0.0, 1e-9, 1e-7, 1e-5, 1e-3, 0.1, 1.0, 1e6)]
    assert levels[0] == levels[1] == levels[2] == "dev0" and levels[-2:] == ["dev7", "dev7"]
    assert [int(x[3:]) for x in levels] == sorted(int(x[3:]) for x in levels)
    assert E.deviation_class(float("nan")) == E.deviation_class(None) == "devbad"
    assert re.search(r"\.devbad\b", E.CSS) and all(re.search(rf"\.dev{i}\b", E.CSS) for i in range(8))
