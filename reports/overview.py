"""The report's first screen as plain rows: which framework, how fast, did it reproduce the documents.

- speed_matrix: experiments x runs (backend-device), each cell the median training samples/s relative
  to the fastest run of its experiment, and beside each experiment the documents' verdict;
- machine_line: the CPU, threads, machine ceiling and environment fingerprint(s) in one line;
- mlflow_link: where a run lives in MLflow (a UI URL, or the command that serves an embedded store).

Each cell also says whether its difference from the fastest is significant, by the project's one rule
(workflow.lib.stats.compare_samples on the process medians, at the comparison page's factor
reports.compare.SPEED_BAND): a cell the rule calls "no change" is marked as not distinguishable.

Runs are grouped by (experiment, label) into lists: today one run each; with several seeds per
training (one run file per seed) a cell takes the median of its runs' medians and counts them.
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections import Counter
from typing import Any

from reports import seeds
from reports.results import fingerprint, labels_in_order, num, run_label, sort_key, throughput, timing
from workflow.lib.stats import ALPHA, TEST, compare_samples

SPEED_LEVELS = (1.0, 0.8, 0.5, 0.25, 0.1)  # report.css: td.sp0 (the fastest) ... td.sp5 (under 10% of it)
UI_PORT = 5000
SHORT_WORDS = {"tensorflow": "tf", "idiomatic": "idiom"}  # the matrix's column headers; full names on hover


def short_backend(name: str) -> str:
    """A backend's name as a narrow column header: tensorflow-eager -> tf-eager, torch-idiomatic -> torch-idiom."""
    return "-".join(SHORT_WORDS.get(word, word) for word in name.split("-"))


def groups(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (experiment, backend-device), in report order; a list per key (one run per seed)."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(runs, key=sort_key):
        out.setdefault((r["experiment"], run_label(r)), []).append(r)
    return out


def median_speed(runs: list[dict]) -> float | None:
    """The median training samples/s of a group (the median of its finished runs' medians); None if none."""
    values = [v for r in runs if (v := throughput(r, "train")) is not None]
    return statistics.median(values) if values else None


def speed_class(ratio: float | None) -> str:
    """The colour class of a speed relative to the fastest: sp0 (>= 1.0) ... sp5 (< 0.1); spnone without one."""
    if ratio is None or not math.isfinite(ratio):
        return "spnone"
    return f"sp{next((i for i, level in enumerate(SPEED_LEVELS) if ratio >= level - 1e-12), len(SPEED_LEVELS))}"


def mlflow_link(run: dict) -> dict:
    """Where the run lives in MLflow: {run_id, url (http(s) stores), command (other stores), note (a tooltip)}."""
    m = run.get("mlflow")
    if not isinstance(m, dict) or not m.get("run_id"):
        error = m.get("error") if isinstance(m, dict) else None
        note = f"MLflow logging failed: {error}" if error else "not logged to MLflow (trained with --no-mlflow)"
        return {"run_id": None, "url": None, "command": None, "note": note}
    run_id, exp_id, uri = str(m["run_id"]), str(m.get("experiment_id") or "0"), str(m.get("tracking_uri") or "")
    path = f"#/experiments/{exp_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return {"run_id": run_id, "url": f"{uri.rstrip('/')}/{path}", "command": None, "note": f"MLflow run {run_id}"}
    command = f"mlflow ui --backend-store-uri {shlex.quote(uri)} --port {UI_PORT}"
    # the command itself is shown once, under the matrix (mlflow_stores): repeated per run it cost ~150 KB
    note = f"MLflow run {run_id}: http://127.0.0.1:{UI_PORT}/{path} once `mlflow ui` serves the store (see Overview)"
    return {"run_id": run_id, "url": None, "command": command, "note": note}


def significance_rule() -> str:
    """What versus_fastest calls a difference, for the legend."""
    from reports.compare import SPEED_BAND

    return f"a difference needs a ratio beyond ×/÷{SPEED_BAND:g} and {TEST} at p < {ALPHA:g}"


def versus_fastest(rs: list[dict], fastest_runs: list[dict]) -> dict | None:
    """compare_samples of a cell's samples/s (process medians) against the fastest cell's, at SPEED_BAND: {verdict,
    ratio, p_value, reason, factor, significant}; None for the fastest cell itself. Another environment
    fingerprint is "not comparable"."""
    from reports.compare import SPEED_BAND, speed_units  # compare imports this module

    if rs is fastest_runs:
        return None
    fps = {fingerprint(r) for r in rs + fastest_runs if r["status"] == "ok"}
    change = compare_samples(speed_units(rs), speed_units(fastest_runs), SPEED_BAND, comparable=len(fps) <= 1)
    return {**change.to_dict(), "factor": SPEED_BAND, "significant": change.verdict in ("faster", "slower")}


def _cell(rs: list[dict], fastest: float | None, fastest_runs: list[dict] | None) -> dict:
    finished = [r for r in rs if r["status"] == "ok"]
    median = median_speed(rs)
    ratio = median / fastest if median is not None and fastest else None
    timed = [r for r in finished if seeds.is_timed(r)]  # one unless time_all_seeds
    head = timed[0] if timed else finished[0] if finished else rs[0]
    return {
        "status": "ok" if finished else rs[0]["status"],
        "ratio": ratio,
        "median": median,
        "q1": num(timing(head, "train_samples_per_s", "q1")) if len(timed) == 1 else None,
        "q3": num(timing(head, "train_samples_per_s", "q3")) if len(timed) == 1 else None,
        "unstable": any(timing(r, "train_samples_per_s", "unstable") for r in finished),
        "flags": sorted({f.split(":", 1)[0] for r in rs for f in r.get("flags") or []}),
        "variant": timing(head, "variant"),
        "n": len(rs),
        "mlflow": [mlflow_link(r) for r in rs],
        "vs_fastest": versus_fastest(rs, fastest_runs) if finished and fastest_runs else None,
    }


def verdict(runs: list[dict]) -> dict:
    """Did one experiment reproduce the documents' figures, judged on the median over seeds
    (reports/seeds.py)?

    kind: 'reproduced' (every figure reproduced by every finished backend), 'partly', 'not' (no
    figure reproduced by any backend), 'none' (no figure) or 'unfinished' (no run finished).
    figures: one per figure: its text and the labels per verdict (within, in_range, outside).
    """
    rows, _ = seeds.figure_verdicts(runs)
    figures = []
    for row in rows:
        tol = f" ± {row['tolerance']:.3g}" if row["tolerance"] is not None else ""
        value = "—" if row["reported"] is None else f"{row['reported']:.4g}"
        f = {"figure": f"{row['split']} {row['metric']} {value}{tol} ({row['source'] or '?'})"}
        for key, kind in (
            ("within", seeds.REPRODUCED),
            ("in_range", seeds.IN_RANGE),
            ("outside", seeds.NOT_REPRODUCED),
        ):
            f[key] = [label for label, c in row["cells"].items() if c and c["verdict"] == kind]
        figures.append(f)
    judged = [f for f in figures if f["within"] or f["in_range"] or f["outside"]]
    if not any(r["status"] == "ok" for r in runs):
        kind = "unfinished"
    elif not judged:
        kind = "none"
    elif all(not f["in_range"] and not f["outside"] for f in judged):
        kind = "reproduced"
    elif all(not f["within"] for f in judged):
        kind = "not"
    else:
        kind = "partly"
    n_figures = sum(not f["in_range"] and not f["outside"] for f in judged)
    return {"kind": kind, "reproduced": n_figures, "figures": figures, "judged": len(judged)}


def speed_matrix(runs: list[dict]) -> dict:
    """The first screen's matrix: one row per experiment, one column per run label (grouped by device).

    row: experiment, cells {label: cell or None (no such run)}, fastest {label, median}, verdict.
    cell: status, ratio (median samples/s over the experiment's fastest), median, q1, q3, unstable,
    flags, variant, n (runs in the cell: seeds), mlflow (a link per run), vs_fastest (versus_fastest).
    """
    by_key = groups(runs)
    devices: dict[str, list[str]] = {d: [] for d in sorted({r["device"] for r in runs}, key=lambda d: (d != "cpu", d))}
    for label in labels_in_order(runs):
        devices[label.rsplit("-", 1)[1]].append(label)  # a label is backend-device
    labels = [label for ls in devices.values() for label in ls]
    rows = []
    for exp in sorted({r["experiment"] for r in runs}):
        speeds = {label: median_speed(by_key[(exp, label)]) for label in labels if (exp, label) in by_key}
        known = {k: v for k, v in speeds.items() if v is not None}
        best = max(known, key=known.get) if known else None
        fastest = known.get(best) if best else None
        top = by_key.get((exp, best))  # the fastest cell's runs
        exp_runs = [r for label in labels for r in by_key.get((exp, label), [])]
        rows.append(
            {
                "experiment": exp,
                "cells": {
                    label: _cell(by_key[key], fastest, top) if (key := (exp, label)) in by_key else None
                    for label in labels
                },  # fmt: skip
                "fastest": None if best is None else {"label": best, "median": fastest},
                "verdict": verdict(exp_runs),
            }
        )
    return {"labels": labels, "devices": [{"device": d, "labels": ls} for d, ls in devices.items()], "rows": rows}


def machine_line(runs: list[dict], machine: dict | None) -> dict:
    """CPU, cores, threads, precision, the ceiling and the fingerprint(s), from the runs and results/machine.json."""
    counts = Counter(fingerprint(r) or "none" for r in runs)
    main_fp = counts.most_common(1)[0][0] if counts else "none"
    head = next((r for r in runs if (fingerprint(r) or "none") == main_fp), runs[0] if runs else {})
    env: dict[str, Any] = head.get("environment") or {}
    machine = machine or {}
    return {
        "cpu": env.get("cpu"),
        "cores": env.get("cores"),
        "threads": env.get("threads", head.get("threads")),
        "dtype": (env.get("precision") or {}).get("dtype"),
        "fingerprint": main_fp,
        "n_main": counts.get(main_fp, 0),
        "others": sorted(fp for fp in counts if fp != main_fp),
        "ceiling": num(machine.get("ceiling_gflops")),
        "ceiling_source": machine.get("ceiling_source"),
    }


def mlflow_stores(runs: list[dict]) -> dict:
    """The commands serving the runs' embedded MLflow stores, the UI servers, and how many runs are unlogged."""
    links = [mlflow_link(r) for r in runs]
    return {
        "commands": sorted({x["command"] for x in links if x["command"]}),
        "servers": sorted({x["url"].split("/#/", 1)[0] for x in links if x["url"]}),
        "unlogged": sum(x["run_id"] is None for x in links),
    }
