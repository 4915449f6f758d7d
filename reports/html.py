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
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from markupsafe import Markup

from reports import compare, history_plots, overview, plots, seeds, sweep_plots, sweeps, tables
from reports import history as hist
from reports.page_env import COMPARE_NAV, CSS, NAV, render_template
from reports.peers import peers_table
from reports.png import Images, page_figure, page_figures, page_png, pngs
from reports.results import (
    ResultsError,
    fingerprint,
    load_devices,
    load_optional_json,
    load_runs,
    reference_name,
)

# -- sections: each renders its template from its table rows ----------------------------------


def first_screen(runs: list[dict]) -> str:
    """The matrix experiments x runs coloured by speed relative to the fastest, the documents' verdicts beside it."""
    levels = overview.SPEED_LEVELS
    legend = [("sp0", "1.00")] + [(f"sp{i}", f"≥ {v:g}") for i, v in enumerate(levels[1:], 1)]
    legend.append((f"sp{len(levels)}", f"< {levels[-1]:g}"))
    return render_template(
        "overview.html.j2", matrix=overview.speed_matrix(runs), legend=legend, mlflow=overview.mlflow_stores(runs)
    )


def what_was_run(runs: list[dict], results_dir: Path) -> str:
    config = load_optional_json(Path(results_dir) / "config.json")
    return render_template(
        "run.html.j2",
        rows=tables.experiments_table(runs),
        n=tables.status_counts(runs),
        config=None if config is None else json.dumps(config, indent=2, sort_keys=True),
    )


def environment(runs: list[dict], results_dir: Path) -> str:
    return render_template(
        "environment.html.j2",
        rows=tables.environment_table(runs),
        differ=tables.environment_differences(runs),
        machine=tables.machine_table(load_optional_json(results_dir / "machine.json")),
    )


def documents_vs_measured(runs: list[dict]) -> str:
    rows, labels = seeds.figure_verdicts(runs)
    return render_template("documents.html.j2", rows=rows, labels=labels, verdicts=seeds.VERDICTS)


def quality(runs: list[dict]) -> str:
    classification, regression = tables.quality_tables(runs)
    return render_template("quality.html.j2", classification=classification, regression=regression)


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
    return render_template(
        "throughput.html.j2",
        rows=tables.throughput_table(runs),
        fingerprints=sorted({fingerprint(r) or "none" for r in runs}),
        charts=[c for c in charts if c],
    )


def peers(runs: list[dict]) -> str:
    return render_template("peers.html.j2", rows=peers_table(runs))


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
        return render_template("history.html.j2", series=[], why=why)
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
    return render_template(
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
    return render_template(
        "sweeps.html.j2",
        rows=sweeps.overhead_rows(found),
        not_a_floor=sweeps.not_a_floor(found),
        practical_ran=bool(sweeps.practical_figures(found)),
        charts=charts,
        never=sweeps.NEVER,
        practical=sweeps.PRACTICAL,
        batch_sizes=first.get("batch_sizes") or [],
        widths=first.get("widths") or [],
        data=first.get("data"),
    )


def parity(runs: list[dict]) -> str:
    return render_template(
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
    return render_template(
        "plots.html.j2",
        datasets=datasets,
        losses=[f for f in losses if f],
        confusions=[f for f in cms if f],
    )


def problems(runs: list[dict], devices: dict[str, dict], results_dir: Path) -> str:
    return render_template(
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
    return render_template(
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
    return render_template(
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
