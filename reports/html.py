"""The HTML report: one self-contained page (inline CSS, images as data URIs, no scripts, no requests).

    python -m reports.html --results results --out results/report/index.html [--plots DIR]

Sections: what was run, environment, documents vs measured, quality, throughput, parity,
plots, problems. Tables are pandas Styler output over pre-escaped cells.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reports import plots
from reports.results import (
    REGRESSION_METRICS,
    ResultsError,
    fingerprint,
    finite,
    labels_in_order,
    load_devices,
    load_optional_json,
    load_runs,
    metric,
    num,
    reference_name,
    run_label,
    sort_key,
    speedup_vs_slowest,
    timing,
)

CSS = (Path(__file__).with_name("report.css")).read_text()
NAV = [
    ("run", "What was run"),
    ("environment", "Environment"),
    ("documents", "Documents vs measured"),
    ("quality", "Quality"),
    ("throughput", "Throughput"),
    ("parity", "Parity"),
    ("plots", "Plots"),
    ("problems", "Problems"),
]
GROUP_CSS = "border-top: 2px solid #9fb3c8"
RECONSTRUCTED_NOTE = (
    "labels reconstructed: the document prints only some labels; the rest follow the documented rule "
    "(REFERENCE.md), so its figures are not an exact target"
)


@dataclass
class Cell:
    """A table cell: trusted HTML plus optional inline CSS and a td class."""

    html: str
    css: str = ""
    cls: str = ""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def fmt(v: Any, spec: str = ".4f", none: str = "—") -> str:
    x = num(v)
    if x is None:
        return none
    if not math.isfinite(x):
        return str(x)
    return format(x, spec)


def numcell(v: Any, spec: str = ".4f", css: str = "") -> Cell:
    return Cell(esc(fmt(v, spec)), css=css, cls="num")


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{esc(text)}</span>'


def status_badge(status: str) -> str:
    return badge(status, "ok" if status == "ok" else "warn" if status == "diverged" else "bad")


def table(rows: list[dict], group: str | tuple | None = None) -> str:
    """Render rows (column -> Cell or plain text, escaped) with Styler; `group` blanks repeats and rules groups."""
    if not rows:
        return '<p class="muted">nothing to show</p>'
    columns = list(rows[0])
    cells = [[c if isinstance(c, Cell) else Cell(esc(c)) for c in (r.get(k, "") for k in columns)] for r in rows]
    if group is not None:
        gi, last = columns.index(group), object()
        for row in cells:
            if row[gi].html == last:
                row[gi] = Cell("", cls=row[gi].cls)
            else:
                last = row[gi].html
                for c in row:
                    c.css = f"{c.css}; {GROUP_CSS}" if c.css else GROUP_CSS
    index = pd.MultiIndex.from_tuples(columns) if isinstance(columns[0], tuple) else columns
    frame = pd.DataFrame([[c.html for c in row] for row in cells], columns=index)
    css = pd.DataFrame([[c.css for c in row] for row in cells], columns=index)
    cls = pd.DataFrame([[c.cls for c in row] for row in cells], columns=index)
    sty = frame.style.hide(axis="index").apply(lambda _: css, axis=None).set_td_classes(cls)
    sty = sty.format_index(escape="html", axis=1)
    return f'<div class="tablewrap">{sty.to_html(table_attributes="class=tbl")}</div>'


def img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">{cap}</figure>'


def fig_img(fig, alt: str, caption: str = "") -> str:
    return "" if fig is None else img(plots.png_bytes(fig), alt, caption)


def section(key: str, title: str, lead: str, body: str) -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{key}"><h2>{esc(title)}</h2>{lead_html}{body}</section>'


def _group_by_experiment(runs: list[dict]) -> dict[str, list[dict]]:
    return plots.by_experiment(runs)


def _spec_text(spec: dict) -> tuple[str, str]:
    if not spec:
        return "—", "—"
    layers = "-".join(str(v) for v in [spec.get("n_inputs"), *(spec.get("hidden") or []), spec.get("n_outputs")])
    act = f" {spec.get('activation')}" if spec.get("hidden") else ""
    model = f"{spec.get('kind')} {layers}{act} → {spec.get('head')}"
    o = spec.get("optimizer") or {}
    opt = f"{o.get('name')} lr {o.get('learning_rate')}"
    if o.get("name") == "adam":
        opt += f", eps {o.get('eps')}"
    elif o.get("momentum"):
        opt += f", momentum {o.get('momentum')}"
    return model, opt


# -- sections ---------------------------------------------------------------------------------


def what_was_run(runs: list[dict], results_dir: Path) -> str:
    rows = []
    for exp, rs in _group_by_experiment(runs).items():
        r0 = next((r for r in rs if r.get("spec")), rs[0])
        spec = r0.get("spec") or {}
        model, opt = _spec_text(spec)
        recon = any(r.get("reconstructed_labels") for r in rs)
        stand_in = r0.get("stands_in_for")
        rows.append(
            {
                "experiment": Cell(
                    f"<b>{esc(exp)}</b>"
                    + (f'<br><span class="muted">stands in for {esc(stand_in)}</span>' if stand_in else "")
                ),
                "dataset": r0["dataset"],
                "task": r0["task"],
                "labels": Cell(badge("reconstructed", "warn"), css="") if recon else "as published",
                "model": model,
                "optimizer": opt,
                "epochs": Cell(esc(spec.get("epochs", "—")), cls="num"),
                "batch": Cell(esc(spec.get("batch_size") or "full"), cls="num"),
                "dtype": spec.get("dtype", "—"),
                "seed": Cell(esc(r0.get("seed")), cls="num"),
                "runs": Cell(" ".join(_run_chip(r) for r in rs)),
            }
        )
    config = load_optional_json(results_dir / "config.json")
    cfg = (
        f"<details><summary>Resolved pipeline config (results/config.json)</summary><pre>"
        f"{esc(json.dumps(config, indent=2, sort_keys=True))}</pre></details>"
        if config is not None
        else '<p class="muted">results/config.json not found: the resolved config is not shown.</p>'
    )
    return table(rows) + cfg


def _run_chip(r: dict) -> str:
    kind = "ok" if r["status"] == "ok" else "warn" if r["status"] == "diverged" else "bad"
    return badge(run_label(r), kind)


def environment(runs: list[dict]) -> str:
    envs: dict[str, list[dict]] = {}
    for r in runs:
        envs.setdefault(fingerprint(r) or "none", []).append(r)
    rows, fields = [], ("device", "device_name", "cpu", "cores", "threads", "precision", "versions", "os", "python")
    for fp, rs in envs.items():
        env = rs[0].get("environment") or {}
        prec = env.get("precision") or {}
        versions = env.get("versions") or {}
        rows.append(
            {
                "fingerprint": Cell(f"<code>{esc(fp)}</code>"),
                "runs": Cell(
                    " ".join(sorted({badge(run_label(r), "ok") for r in rs})) + f" <span class=muted>({len(rs)})</span>"
                ),
                "device": env.get("device_name") or rs[0]["device"],
                "cpu": f"{env.get('cpu') or '—'} ({env.get('cores') or '?'} cores)",
                "threads": Cell(esc(env.get("threads", rs[0].get("threads"))), cls="num"),
                "precision": f"{prec.get('dtype', '—')}, TF32 {'on' if prec.get('tf32') else 'off'}",
                "versions": Cell(
                    '<div class="versions">'
                    + " ".join(f"<span>{esc(k)}&nbsp;<code>{esc(v)}</code></span>" for k, v in sorted(versions.items()))
                    + "</div>"
                ),
                "os / python": f"{env.get('os') or '—'} / {env.get('python') or '—'}",
                "git commit": Cell(f"<code>{esc((env.get('git_commit') or '—')[:12])}</code>"),
            }
        )
    if len(envs) > 1:
        differ = [f for f in fields if len({json.dumps(_env_field(r, f), sort_keys=True) for r in runs}) > 1]
        note = (
            f'<div class="callout"><b>{len(envs)} different environment fingerprints.</b> Runs with different '
            "fingerprints are <b>not like-for-like</b>: compare their throughput (and float-level differences) only "
            f"within one fingerprint. They differ in: {esc(', '.join(differ) or 'fields outside this table')}."
            "</div>"
        )
    else:
        note = (
            '<div class="callout ok">All runs share one environment fingerprint: the figures are like-for-like.</div>'
        )
    return note + table(rows)


def _env_field(run: dict, field: str) -> Any:
    return run["device"] if field == "device" else (run.get("environment") or {}).get(field)


def documents_vs_measured(runs: list[dict]) -> str:
    rows = []
    for exp, rs in _group_by_experiment(runs).items():
        figures: dict[tuple, dict] = {}
        for r in rs:
            for rep in r.get("reported") or []:
                key = (rep.get("metric"), rep.get("split"), num(rep.get("value")), rep.get("source"))
                figures.setdefault(key, rep)
        recon = any(r.get("reconstructed_labels") for r in rs)
        for key, rep in figures.items():
            row: dict[str, Any] = {
                "experiment": Cell(
                    f"<b>{esc(exp)}</b>" + (" " + badge("reconstructed labels", "warn") if recon else "")
                ),
                "figure": f"{rep.get('split')} {rep.get('metric')}",
                "source": rep.get("source") or "—",
                "reported": numcell(rep.get("value"), ".4g"),
                "tolerance": Cell(
                    esc("± " + fmt(rep.get("tolerance"), ".3g")) if finite(rep.get("tolerance")) else "—", cls="num"
                ),
                "note": rep.get("note") or "",
            }
            for label in labels_in_order(rs):
                run = next(r for r in rs if run_label(r) == label)
                row[label] = _measured_cell(run, key)
            rows.append(row)
    if not rows:
        return '<p class="muted">No run carries a reported figure.</p>'
    # backends differ per experiment: give every row every column seen
    cols = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{c: r.get(c, Cell("—", cls="num")) for c in cols} for r in rows]
    return table(rows, group="experiment")


def _measured_cell(run: dict, key: tuple) -> Cell:
    if run["status"] != "ok":
        return Cell(status_badge(run["status"]))
    rep = next(
        (
            p
            for p in run.get("reported") or []
            if (p.get("metric"), p.get("split"), num(p.get("value")), p.get("source")) == key
        ),
        None,
    )
    if rep is None:
        return Cell("—", cls="num")
    diff = rep.get("difference")
    spec = ".4f" if rep.get("metric") in ("accuracy", "precision", "recall", "f1") else ".4g"
    text = esc(fmt(rep.get("measured"), spec))
    if finite(diff):
        text += f" <span class=muted>({esc(fmt(diff, '+' + spec))})</span>"
    if rep.get("within_tolerance") is None:  # no figure or no tolerance to judge against
        return Cell(text, cls="num")
    if rep.get("within_tolerance"):
        return Cell(f"{text} ✓", css="background-color:#e6f4ea", cls="num")
    return Cell(f'{text} <b title="out of tolerance">✗</b>', css="background-color:#fdecea;color:#a61e1e", cls="num")


def quality(runs: list[dict]) -> str:
    cls_rows, reg_rows = [], []
    for r in sorted(runs, key=sort_key):
        base = {
            ("", "experiment"): Cell(f"<b>{esc(r['experiment'])}</b>"),
            ("", "backend"): r["backend"],
            ("", "mode"): r.get("mode") or "—",
            ("", "device"): r["device"],
            ("", "status"): Cell(status_badge(r["status"])),
        }
        losses = r.get("loss_history") or []
        final = numcell(losses[-1] if losses else None, ".4g")
        if r["task"] == "regression":
            row = dict(base)
            for split in ("train", "test"):
                for m in REGRESSION_METRICS:
                    row[(split, m.upper() if m != "r2" else "R²")] = numcell(metric(r, split, m), ".4g")
            row[("", "final loss")] = final
            reg_rows.append(row)
        else:
            row = dict(base)
            for split in ("train", "test"):
                for m in ("accuracy", "precision", "recall", "f1"):
                    row[(split, m if m != "f1" else "F1")] = numcell(metric(r, split, m))
            row[("", "final loss")] = final
            cls_rows.append(row)
    out = ""
    if cls_rows:
        out += (
            "<h3>Classification</h3><p class=muted>Binary tasks: precision, recall and F1 of class 1; multiclass: "
            "macro averages. Metrics from scikit-learn.</p>" + table(cls_rows, group=("", "experiment"))
        )
    if reg_rows:
        out += "<h3>Regression</h3><p class=muted>In the target's original units.</p>" + table(
            reg_rows, group=("", "experiment")
        )
    return out


def _time_to_target(run: dict) -> Cell:
    t = timing(run, "time_to_target")
    if not isinstance(t, dict):
        return Cell('<span class="muted">no target</span>')
    better = "≤" if t.get("metric") in ("mse", "mae", "loss") else "≥"
    goal = t.get("target", t.get("value"))
    target = f"{t.get('split')} {t.get('metric')} {better} {fmt(goal, '.4g')}"
    what = f'<br><span class="muted">{esc(target)}</span>'
    if not t.get("reached"):
        best = f" (best {fmt(t['best'], '.4g')})" if finite(t.get("best")) else ""
        return Cell(badge("not reached", "warn") + esc(best) + what)
    epoch = f" ({esc(t.get('epochs'))} epochs)" if t.get("epochs") is not None else ""
    return Cell(f"{esc(fmt(t.get('seconds'), '.3g'))} s{epoch}{what}", cls="num")


def compact(v: Any) -> str:
    """3 significant digits with a k/M/G suffix: 16,132,336 -> 16.1M."""
    x = num(v)
    if x is None or not math.isfinite(x):
        return fmt(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _rate(run: dict, kind: str) -> tuple[Cell, Cell]:
    med = timing(run, f"{kind}_samples_per_s", "median")
    lo, hi = timing(run, f"{kind}_samples_per_s", "p20"), timing(run, f"{kind}_samples_per_s", "p80")
    spread = f"{compact(lo)}–{compact(hi)}" if finite(lo) and finite(hi) else "—"
    return Cell(esc(compact(med)), cls="num"), Cell(esc(spread), cls="num")


def throughput(runs: list[dict]) -> str:
    rows, charts = [], []
    fps = sorted({fingerprint(r) or "none" for r in runs})
    for exp, rs in _group_by_experiment(runs).items():
        speed = {k: speedup_vs_slowest(rs, k) for k in ("train", "inference")}
        for r in rs:
            if r["status"] != "ok":
                continue
            train, train_spread = _rate(r, "train")
            infer, infer_spread = _rate(r, "inference")
            label = run_label(r)
            rows.append(
                {
                    ("", "experiment"): Cell(f"<b>{esc(exp)}</b>"),
                    ("", "backend"): r["backend"],
                    ("", "device"): r["device"],
                    ("", "fingerprint"): Cell(_fp_badge(fingerprint(r), fps)),
                    ("train samples/s", "median"): train,
                    ("train samples/s", "p20–p80"): train_spread,
                    ("train samples/s", "speed-up"): _speed_cell(speed["train"].get(label)),
                    ("inference samples/s", "median"): infer,
                    ("inference samples/s", "p20–p80"): infer_spread,
                    ("inference samples/s", "speed-up"): _speed_cell(speed["inference"].get(label)),
                    ("seconds", "compile"): numcell(timing(r, "compile_seconds"), ".3f"),
                    ("seconds", "first epoch"): numcell(timing(r, "first_epoch_seconds"), ".3f"),
                    ("", "time to target"): _time_to_target(r),
                    ("", "peak RSS MB"): numcell((r.get("memory") or {}).get("peak_rss_mb"), ",.0f"),
                }
            )
        charts.append(fig_img(plots.throughput_bars(rs), f"throughput of {exp}", exp))
    note = (
        "<p class=muted>Steady-state training throughput is measured over the epochs after the first (which holds "
        "compilation/warm-up, shown apart); median with the 20th–80th percentile of the repeats. Speed-up is against "
        "the slowest run of the same experiment.</p>"
    )
    if len(fps) > 1:
        note += (
            '<div class="callout">Runs carry different environment fingerprints (see <a href="#environment">'
            "Environment</a>): speed-ups across fingerprints are not like-for-like.</div>"
        )
    return note + table(rows, group=("", "experiment")) + f'<div class="figs">{"".join(charts)}</div>'


def _fp_badge(fp: str | None, fps: list[str]) -> str:
    palette = ["#e7f0ff", "#fff1db", "#e9f7ef", "#f7e8f7", "#fdecea"]
    i = fps.index(fp or "none") if (fp or "none") in fps else 0
    return (
        f'<code style="background:{palette[i % len(palette)]};padding:0 4px;border-radius:3px">{esc(fp or "—")}</code>'
    )


def _speed_cell(v: float | None) -> Cell:
    if v is None:
        return Cell("—", cls="num")
    css = "font-weight:650;color:#2b8a3e" if v >= 1.5 else ""
    return Cell(f"×{v:.1f}", css=css, cls="num")


def parity(runs: list[dict]) -> str:
    reference = reference_name(runs)
    rows = []
    for r in sorted(runs, key=sort_key):
        p = r.get("parity")
        if r["status"] != "ok":
            dev, diff = Cell(status_badge(r["status"])), Cell("—")
        elif r["backend"] == reference:
            dev, diff = Cell(badge("reference", "ok")), Cell("—")
        elif not isinstance(p, dict) or p.get("max_rel_loss_deviation") is None:
            note = (p or {}).get("note") or "not computed"
            dev, diff = Cell(f'<span class="muted">{esc(note)}</span>'), Cell("—")
        else:
            d = num(p.get("max_rel_loss_deviation"))
            dev = Cell("0 (identical)", cls="num") if d == 0 else numcell(d, ".2e", css=_deviation_css(d))
            fmd = p.get("final_metric_difference") or {}
            diff = Cell(esc(", ".join(f"{k} {fmt(v, '+.4f')}" for k, v in fmd.items()) or "—"), cls="num")
        rows.append(
            {
                "experiment": Cell(f"<b>{esc(r['experiment'])}</b>"),
                "backend": r["backend"],
                "mode": r.get("mode") or "—",
                "device": r["device"],
                "dtype": (r.get("spec") or {}).get("dtype", "—"),
                "max relative deviation of the loss curve": dev,
                "final metric difference": diff,
            }
        )
    lead = (
        f"<p class=muted>Each backend's per-epoch training loss against the reference (<code>{esc(reference)}</code>) "
        "trained from the same initial weights and batch order: max over epochs of |loss − loss<sub>ref</sub>| / "
        "|loss<sub>ref</sub>|. Shading grows with the deviation (log scale); the pass/fail bounds live in "
        "reports/baselines.json and are enforced by the CI check.</p>"
    )
    return lead + table(rows, group="experiment")


def _deviation_css(d: float | None) -> str:
    if d is None or not math.isfinite(d):
        return "background-color:#fdecea"
    level = 0.0 if d <= 0 else min(max((math.log10(d) + 7) / 7, 0.0), 1.0)  # float32 rounding 1e-7 -> 0, 1 -> 1
    return f"background-color:rgba(217,72,15,{0.04 + 0.56 * level:.2f})"


def plot_gallery(runs: list[dict], results_dir: Path) -> str:
    out = ["<h3>Datasets and decision regions</h3>"]
    for ds, rs in plots.by_dataset(runs).items():
        figs = []
        png = results_dir / "datasets" / f"{ds}.png"
        if png.is_file():
            figs.append(img(png.read_bytes(), f"dataset {ds}", f"dataset {ds} (results/datasets/{ds}.png)"))
        boundaries = plots.decision_boundaries(rs, plots.dataset_points(results_dir, ds))
        figs.append(fig_img(boundaries, f"decision regions on {ds}", f"{ds}: predicted class over the input plane"))
        figs = [f for f in figs if f]
        body = "".join(figs) if figs else '<p class="muted">no dataset plot and no 2-D decision grid</p>'
        out.append(f"<h4>{esc(ds)}</h4><div class=figs>{body}</div>")
    groups = _group_by_experiment(runs)
    losses = [fig_img(plots.loss_curves(rs), f"loss curves of {exp}", f"{exp}") for exp, rs in groups.items()]
    out.append(
        "<h3>Loss curves</h3><p class=muted>Training loss per epoch of every backend, log scale; the reference is the "
        f"thick grey line, markers keep coincident curves apart.</p><div class=figs>{''.join(losses)}</div>"
    )
    out.append(
        "<h3>Confusion matrices</h3><p class=muted>Rows true class, columns predicted; colour is the row fraction.</p>"
    )
    cms = [fig_img(plots.confusion_matrices(rs), f"confusion matrices of {exp}", exp) for exp, rs in groups.items()]
    out.append(f"<div class=figs>{''.join(cms)}</div>" if any(cms) else '<p class="muted">no classification run</p>')
    return "".join(out)


def problems(runs: list[dict], devices: dict[str, dict], results_dir: Path) -> str:
    bad = [r for r in runs if r["status"] != "ok"]
    out = "<h3>Failed and diverged runs</h3>"
    if bad:
        out += table(
            [
                {
                    "experiment": Cell(f"<b>{esc(r['experiment'])}</b>"),
                    "backend": r["backend"],
                    "device": r["device"],
                    "status": Cell(status_badge(r["status"])),
                    "message": Cell(f'<pre class="msg">{esc(r.get("message") or "(no message)")}</pre>'),
                    "file": Cell(f"<code>{esc(r.get('_path'))}</code>"),
                }
                for r in bad
            ]
        )
    else:
        out += '<p class="muted">None: every run finished.</p>'
    out += "<h3>Not scheduled</h3>"
    if not devices:
        return out + (
            f'<p class="muted">{esc(results_dir / "devices.json")} not found: which backend/device pairs were '
            "skipped is unknown.</p>"
        )
    rows = []
    for backend, entry in devices.items():
        if not entry.get("reason"):
            continue  # nothing withheld: every device the config asked for was scheduled
        missing = [d for d in ("cpu", "gpu") if d not in (entry.get("devices") or [])]
        rows.append(
            {
                "backend": backend,
                "scheduled on": ", ".join(entry.get("devices") or []) or "nothing",
                "not scheduled": Cell(badge(", ".join(missing), "warn")) if missing else "—",
                "reason": entry["reason"],
            }
        )
    none = '<p class="muted">Nothing withheld: every backend ran on every device the config asked for.</p>'
    return out + (table(rows) if rows else none)


# -- page -------------------------------------------------------------------------------------


def render(results_dir: str | Path) -> str:
    """The whole page as a string."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    devices = load_devices(results_dir)
    n = {s: sum(r["status"] == s for r in runs) for s in ("ok", "diverged", "failed")}
    experiments = sorted({r["experiment"] for r in runs})
    fps = {fingerprint(r) for r in runs}
    chips = [
        f'<span class="chip">{len(experiments)} experiments</span>',
        f'<span class="chip">{len(runs)} runs</span>',
        f'<span class="chip ok">{n["ok"]} ok</span>',
    ]
    if n["diverged"]:
        chips.append(f'<span class="chip warn">{n["diverged"]} diverged</span>')
    if n["failed"]:
        chips.append(f'<span class="chip bad">{n["failed"]} failed</span>')
    if len(fps) > 1:
        chips.append(f'<span class="chip warn">{len(fps)} environment fingerprints</span>')
    alert = ""
    if n["diverged"] or n["failed"]:
        alert = (
            f'<div class="callout bad">{n["diverged"] + n["failed"]} run(s) did not finish; their messages are under '
            '<a href="#problems">Problems</a>.</div>'
        )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        section(
            "run",
            "What was run",
            "Each experiment is one dataset and model spec, trained by every backend from the same initial weights "
            "and batch order.",
            alert + what_was_run(runs, results_dir),
        ),
        section(
            "environment",
            "Environment",
            "Where the runs ran. The fingerprint covers framework versions, device, threads and precision.",
            environment(runs),
        ),
        section(
            "documents",
            "Documents vs measured",
            "Every figure the source documents report beside each backend's measurement: value (difference) and "
            "✓ within / ✗ out of the stated tolerance.",
            documents_vs_measured(runs),
        ),
        section("quality", "Quality", "Final metrics on the train and test splits.", quality(runs)),
        section("throughput", "Throughput", "", throughput(runs)),
        section("parity", "Parity", "", parity(runs)),
        section("plots", "Plots", "", plot_gallery(runs, results_dir)),
        section("problems", "Problems", "", problems(runs, devices, results_dir)),
    ]
    nav = "".join(f'<a href="#{k}">{esc(t)}</a>' for k, t in NAV)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>fwbench report</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>fwbench report</h1><div class="sub">PyTorch, TensorFlow and JAX/Flax on the '
        f"same small dense networks · generated {esc(when)} from <code>{esc(results_dir)}</code></div>"
        f'<div class="chips">{"".join(chips)}</div></header><nav>{nav}</nav><main>{"".join(sections)}</main>'
        f"<footer>reports/html.py · {len(runs)} run files under {esc(results_dir / 'runs')} · tidy table: "
        "summary.csv (python -m reports.results)</footer></body></html>\n"
    )


def write_report(results_dir: str | Path, out: str | Path, plots_dir: str | Path | None = None) -> Path:
    """Write the page; with plots_dir also every figure as its own PNG (for snakemake --report)."""
    page = render(results_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    if plots_dir:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        plots.write_figures(load_runs(results_dir), plots_dir, results_dir)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.html", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the pipeline's results directory (default: results)")
    ap.add_argument("--out", default=None, help="the page to write (default: RESULTS/report/index.html)")
    ap.add_argument(
        "--plots", "--figures", dest="plots", default=None, help="also write every figure as a PNG into this directory"
    )
    args = ap.parse_args(argv)
    out = args.out or str(Path(args.results) / "report" / "index.html")
    try:
        path = write_report(args.results, out, args.plots)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
