"""The HTML report: one self-contained page (inline CSS, images as data URIs, no scripts, no requests).

    python -m reports.html --results results --out results/report/index.html [--plots DIR]
    python -m reports.html --results results --against OTHER_RESULTS [--out results/report/compare.html]

The first screen: a matrix experiments x runs coloured by training speed relative to the fastest run,
the documents' verdicts beside it and the machine line (reports/overview.py). Then, one click away:
what was run, environment, documents vs measured, quality, throughput, parity, plots, problems. The
rows come from reports/tables.py, the markup from reports/templates/, the colours from
reports/report.css. With --against, a comparison page instead: what moved between two results
trees (reports/compare.py, templates/compare.html.j2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from reports import compare, history_plots, overview, plots, seeds, sweep_plots, sweeps, tables
from reports import history as hist
from reports.peers import peers_table
from reports.png import Images, page_figure, page_figures, page_png, pngs
from reports.results import (
    ResultsError,
    fingerprint,
    finite,
    load_devices,
    load_optional_json,
    load_runs,
    num,
    reference_name,
)
from workflow.lib.stats import level_label

HERE = Path(__file__).parent
CSS = (HERE / "report.css").read_text()
NAV = [
    ("overview", "Overview"),
    ("run", "What was run"),
    ("environment", "Environment"),
    ("documents", "Documents vs measured"),
    ("quality", "Quality"),
    ("throughput", "Throughput"),
    ("peers", "Your own code"),
    ("history", "History"),
    ("sweeps", "Where the time goes"),
    ("parity", "Parity"),
    ("plots", "Plots"),
    ("problems", "Problems"),
]
COMPARE_NAV = [
    ("cmp-speed", "Speed"),
    ("cmp-quality", "Quality"),
    ("cmp-parity", "Parity"),
    ("cmp-environment", "Environments"),
    ("cmp-runs", "Runs"),
]
METRIC_TITLES = {"f1": "F1", "mse": "MSE", "mae": "MAE", "r2": "R²"}
FINGERPRINT_COLOURS = 5  # report.css: code.fp0 ... code.fp4
DEVIATION_LEVELS = 8  # report.css: td.dev0 ... td.dev7, and td.devbad


def fmt(v: Any, spec: str = ".4f", none: str = "—") -> str:
    """A number formatted by spec; `none` where there is none; nan/inf spelled out."""
    x = num(v)
    if x is None:
        return none
    if not math.isfinite(x):
        return str(x)
    return format(x, spec)


def compact(v: Any) -> str:
    """3 significant digits with a k/M/G suffix: 16,132,336 -> 16.1M."""
    x = num(v)
    if x is None or not math.isfinite(x):
        return fmt(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def status_kind(status: str) -> str:
    return "ok" if status == "ok" else "warn" if status == "diverged" else "bad"


def deviation_class(d: float | None) -> str:
    """The shading of a parity deviation, on a log scale: float32 rounding (1e-7) lightest, 1 darkest."""
    if d is None or not math.isfinite(d):
        return "devbad"
    level = 0.0 if d <= 0 else min(max((math.log10(d) + 7) / 7, 0.0), 1.0)
    return f"dev{round(level * (DEVIATION_LEVELS - 1))}"


def fingerprint_index(fp: str | None, fps: list[str]) -> int:
    """Which of the report's fingerprint colours a fingerprint wears (fps: every fingerprint, sorted)."""
    key = fp or "none"
    return (fps.index(key) if key in fps else 0) % FINGERPRINT_COLOURS


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(fmt=fmt, compact=compact, level_label=level_label)
TEMPLATES.tests["finite"] = finite
TEMPLATES.globals.update(
    titles=dict(NAV + COMPARE_NAV),
    metric_titles=METRIC_TITLES,
    status_kind=status_kind,
    deviation_class=deviation_class,
    fingerprint_index=fingerprint_index,
    speed_class=overview.speed_class,
    short_backend=overview.short_backend,
    significance_rule=overview.significance_rule,
    mlflow_link=overview.mlflow_link,
)


def _render(template: str, **data: Any) -> str:
    return TEMPLATES.get_template(template).render(**data)


# -- sections: each renders its template from its table rows ----------------------------------


def first_screen(runs: list[dict]) -> str:
    """The matrix experiments x runs coloured by speed relative to the fastest, the documents' verdicts beside it."""
    levels = overview.SPEED_LEVELS
    legend = [("sp0", "1.00")] + [(f"sp{i}", f"≥ {v:g}") for i, v in enumerate(levels[1:], 1)]
    legend.append((f"sp{len(levels)}", f"< {levels[-1]:g}"))
    return _render(
        "overview.html.j2", matrix=overview.speed_matrix(runs), legend=legend, mlflow=overview.mlflow_stores(runs)
    )


def what_was_run(runs: list[dict], results_dir: Path) -> str:
    config = load_optional_json(Path(results_dir) / "config.json")
    return _render(
        "run.html.j2",
        rows=tables.experiments_table(runs),
        n=tables.status_counts(runs),
        config=None if config is None else json.dumps(config, indent=2, sort_keys=True),
    )


def environment(runs: list[dict], results_dir: Path) -> str:
    return _render(
        "environment.html.j2",
        rows=tables.environment_table(runs),
        differ=tables.environment_differences(runs),
        machine=tables.machine_table(load_optional_json(results_dir / "machine.json")),
    )


def documents_vs_measured(runs: list[dict]) -> str:
    rows, labels = seeds.figure_verdicts(runs)
    return _render("documents.html.j2", rows=rows, labels=labels, verdicts=seeds.VERDICTS)


def quality(runs: list[dict]) -> str:
    classification, regression = tables.quality_tables(runs)
    return _render("quality.html.j2", classification=classification, regression=regression)


def throughput(runs: list[dict], images: Images | None = None, jobs: int = 1) -> str:
    images = images or Images()
    groups = tables.by_experiment(runs).items()
    charts = page_figures(
        [
            (partial(plots.throughput_bars, rs), f"throughput of {exp}", exp, f"throughput-{exp}.png")
            for exp, rs in groups
        ],
        images,
        jobs,
    )
    return _render(
        "throughput.html.j2",
        rows=tables.throughput_table(runs),
        fingerprints=sorted({fingerprint(r) or "none" for r in runs}),
        charts=[c for c in charts if c],
    )


def peers(runs: list[dict]) -> str:
    return _render("peers.html.j2", rows=peers_table(runs))


def history(results_dir: Path, images: Images, jobs: int = 1) -> str:
    """Every commit's figures from results/history.json (the history rule), or why there are none."""
    path = Path(results_dir) / "history.json"
    data = hist.load_history(path) if path.is_file() else None
    found = hist.series(data) if data else []
    if not found:
        why = (
            f"no history: {path} not found (the pipeline's history rule writes it)"
            if data is None
            else (f"no history: the store {data.get('tracking_uri')} holds no parent run with finished trainings")
        )
        return _render("history.html.j2", series=[], why=why)
    # one commit: a dot per series, nothing to draw (18 such charts were 5% of the default report)
    experiments = sorted({s["experiment"] for s in found}) if len(data.get("parents") or []) > 1 else []
    charts = page_figures(
        [
            (partial(history_plots.history_figure, data, exp), f"history of {exp}", exp, f"history-{exp}.png")
            for exp in experiments
        ],
        images,
        jobs,
    )
    return _render(
        "history.html.j2",
        series=hist.section_rows(found),
        charts=[c for c in charts if c],
        uri=data.get("tracking_uri"),
        experiment=data.get("experiment"),
        n_parents=len(data.get("parents") or []),
        why="",
    )


def where_the_time_goes(results_dir: Path, images: Images) -> str:
    found = sweeps.load_sweeps(results_dir)
    charts = [page_figure(fig, alt, reading, images) for fig, alt, reading in sweep_plots.sweep_figures(found)]
    first = found[0] if found else {}
    return _render(
        "sweeps.html.j2",
        rows=sweeps.overhead_rows(found),
        charts=charts,
        never=sweeps.NEVER,
        practical=sweeps.PRACTICAL,
        batch_sizes=first.get("batch_sizes") or [],
        widths=first.get("widths") or [],
        data=first.get("data"),
    )


def parity(runs: list[dict]) -> str:
    return _render(
        "parity.html.j2",
        rows=tables.parity_table(runs),
        reference=reference_name(runs),
        by_seed=seeds.seed_parity(runs),
    )


def plot_gallery(runs: list[dict], results_dir: Path, images: Images | None = None, jobs: int = 1) -> str:
    images = images or Images()
    by_dataset, groups = plots.by_dataset(runs), tables.by_experiment(runs)
    decision = [
        (
            partial(lambda rs, ds: plots.decision_boundaries(rs, plots.dataset_points(results_dir, ds)), rs, ds),
            f"decision regions on {ds}",
            f"{ds}: predicted class over the input plane",
            f"decision-{ds}.png",
        )
        for ds, rs in by_dataset.items()
    ]
    losses = [
        (partial(plots.loss_curves, rs), f"loss curves of {exp}", exp, f"loss-{exp}.png") for exp, rs in groups.items()
    ]
    cms = [
        (partial(plots.confusion_matrices, rs), f"confusion matrices of {exp}", exp, f"confusion-{exp}.png")
        for exp, rs in groups.items()
    ]
    drawn = iter(pngs([make for make, *_ in decision + losses + cms], jobs))
    datasets = []
    for ds, (_, alt, caption, name) in zip(by_dataset, decision):
        png = results_dir / "datasets" / f"{ds}.png"
        shown = (
            [images.figure(png.read_bytes(), f"dataset {ds}", f"dataset {ds} (results/datasets/{ds}.png)")]
            if png.is_file()
            else []
        )
        shown.append(page_png(next(drawn), alt, caption, images, name))
        datasets.append({"name": ds, "figures": [f for f in shown if f]})
    losses = [page_png(next(drawn), alt, caption, images, name) for _, alt, caption, name in losses]
    cms = [page_png(next(drawn), alt, caption, images, name) for _, alt, caption, name in cms]
    return _render(
        "plots.html.j2",
        datasets=datasets,
        losses=[f for f in losses if f],
        confusions=[f for f in cms if f],
    )


def problems(runs: list[dict], devices: dict[str, dict], results_dir: Path) -> str:
    return _render(
        "problems.html.j2",
        bad=tables.problems_table(runs),
        withheld=tables.not_scheduled_table(devices),
        devices_file=None if devices else str(Path(results_dir) / "devices.json"),
    )


# -- page -------------------------------------------------------------------------------------


def render(results_dir: str | Path, runs: list[dict] | None = None, images: Images | None = None, jobs: int = 1) -> str:
    """The whole page as a string (runs: load_runs(results_dir) where not given; its figures drawn in
    `jobs` processes)."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir) if runs is None else runs
    devices = load_devices(results_dir)
    images = Images() if images is None else images
    timed = seeds.timed_runs(runs)  # throughput, environment and figures: the timed seed of each job
    sections = [
        first_screen(runs),
        what_was_run(runs, results_dir),
        environment(timed, results_dir),
        documents_vs_measured(runs),
        quality(runs),
        throughput(timed, images, jobs),
        peers(timed),
        history(results_dir, images, jobs),
        where_the_time_goes(results_dir, images),
        parity(runs),
        plot_gallery(timed, results_dir, images, jobs),
        problems(runs, devices, results_dir),
    ]
    return _render(
        "report.html.j2",
        css=Markup(CSS),  # trusted: the package's own file
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        results_dir=str(results_dir),
        runs_dir=str(results_dir / "runs"),
        n=tables.status_counts(runs),
        machine=overview.machine_line(runs, load_optional_json(results_dir / "machine.json")),
        nav=NAV,
        sections=[Markup(s) for s in sections],  # rendered (and escaped) by their own templates
    )


def render_comparison(results_dir: str | Path, against: str | Path) -> str:
    """The comparison page of two results trees: this (results_dir) against the other."""
    this, other = load_runs(results_dir), load_runs(against)
    return _render(
        "compare.html.j2",
        css=Markup(CSS),
        c=compare.compare(this, other),
        band=compare.SPEED_BAND,
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        this_dir=str(results_dir),
        other_dir=str(against),
        nav=COMPARE_NAV,
    )


def write_report(results_dir: str | Path, out: str | Path, plots_dir: str | Path | None = None, jobs: int = 1) -> Path:
    """Write the page; with plots_dir also every figure as its own PNG (for snakemake --report)."""
    runs, images = load_runs(results_dir), Images()
    page = render(results_dir, runs, images, jobs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    if plots_dir:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        plots.write_figures(runs, plots_dir, results_dir, rendered=images.named)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.html", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the pipeline's results directory (default: results)")
    ap.add_argument(
        "--out",
        default=None,
        help="the page to write (default: RESULTS/report/index.html, or RESULTS/report/compare.html with --against)",
    )
    ap.add_argument(
        "--plots", "--figures", dest="plots", default=None, help="also write every figure as a PNG into this directory"
    )
    ap.add_argument("--against", default=None, help="another results directory: write what moved between the two")
    ap.add_argument("--jobs", type=int, default=1, help="processes that draw the figures (default: 1)")
    args = ap.parse_args(argv)
    out = args.out or str(Path(args.results) / "report" / ("compare.html" if args.against else "index.html"))
    try:
        if args.against:
            path = Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_comparison(args.results, args.against), encoding="utf-8")
        else:
            path = write_report(args.results, out, args.plots, args.jobs)
    except (ResultsError, sweeps.SweepFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
