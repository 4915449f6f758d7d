"""The report pages' Jinja environment: templates, stylesheet, section titles and the figure filters.

Kept apart from reports/html.py (which assembles the sections) so a template's helpers are read in one
place: `fmt` and `compact` format figures, `deviation_class` and `fingerprint_index` pick report.css
classes, `status_kind` the colour of a run status.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from reports import overview
from reports.results import finite, num
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


def render_template(template: str, **data: Any) -> str:
    """One template of reports/templates/ rendered with `data`."""
    return TEMPLATES.get_template(template).render(**data)
