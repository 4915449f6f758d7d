"""The default report's size budget and first screen, on a results tree of the default run's size
(tests/helpers_default_tree.py: 18 experiments x 8 backends x 5 seeds plus the peers, sweeps, datasets,
history), rendered by reports.html and opened in real headless Chromium at 1400x900."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.results import load_runs, run_label
from tests.helpers_default_tree import build_default_tree
from tests.paths import ROOT
from tests.test_report import CHROMIUM_ARGS, PNG, _chromium_or_skip

SIZE_BUDGET = 3_000_000  # bytes: README's "at most 3 MB"
VIEWPORT = {"width": 1400, "height": 900}
# every box of the first screen that must lie inside the viewport, and whether anything scrolls
FIRST_SCREEN = """() => {
  const box = e => { const b = e.getBoundingClientRect();
    return {what: e.tagName + '.' + (e.className || ''), left: b.left, top: b.top, right: b.right, bottom: b.bottom,
            visible: b.width > 0 && b.height > 0}; };
  const wrap = document.querySelector('table.matrix').parentElement;
  const s = document.scrollingElement;
  return {boxes: [...document.querySelectorAll('table.matrix, table.matrix td.verdict, header .machine')].map(box),
          page: {scrollWidth: s.scrollWidth, clientWidth: s.clientWidth},
          wrap: {scrollWidth: wrap.scrollWidth, clientWidth: wrap.clientWidth}};
}"""


def first_screen(page: Path, shot: Path) -> dict:
    """FIRST_SCREEN's figures of the page at 1400x900 in Chromium, its console errors, and a screenshot."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(_chromium_or_skip()), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport=VIEWPORT)
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(page.as_uri(), wait_until="load")
            found = pg.evaluate(FIRST_SCREEN)
            pg.screenshot(path=str(shot))  # the viewport only: what a reader sees without scrolling
        finally:
            browser.close()
    return {**found, "errors": errors}


def assert_on_one_screen(found: dict) -> None:
    assert found["errors"] == [], f"console errors: {found['errors']}"
    page, wrap = found["page"], found["wrap"]
    assert page["scrollWidth"] <= page["clientWidth"], f"the page scrolls sideways at 1400px: {page}"
    assert wrap["scrollWidth"] <= wrap["clientWidth"], f"the matrix scrolls sideways in its box: {wrap}"
    w, h = VIEWPORT["width"], VIEWPORT["height"]
    outside = [
        b
        for b in found["boxes"]
        if not (b["visible"] and b["left"] >= 0 and b["top"] >= 0 and b["right"] <= w and b["bottom"] <= h)
    ]
    assert outside == [], f"not on the first screen ({w}x{h}): {outside}"


@pytest.fixture(scope="module")
def default_tree(tmp_path_factory) -> Path:
    return build_default_tree(tmp_path_factory.mktemp("default") / "results")


@pytest.mark.slow
def test_default_report_is_within_budget_and_its_matrix_on_one_screen(default_tree, tmp_path):
    out = tmp_path / "report" / "index.html"
    proc = subprocess.run(
        [sys.executable, "-m", "reports.html", "--results", str(default_tree), "--out", str(out), "--jobs", "2"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = load_runs(default_tree)
    experiments, labels = {r["experiment"] for r in runs}, {run_label(r) for r in runs}
    assert (len(runs), len(experiments), len(labels)) == (18 * 8 * 5 + 4 * 2, 18, 12), "the default run's shape"
    size = out.stat().st_size
    page = out.read_text()
    uris = re.findall(r'<img[^>]+src="(data:image/png;base64,[^"]+)"', page)
    assert len(set(uris)) == len(uris) >= 60, "every figure embedded, each once"
    assert size <= SIZE_BUDGET, f"the default report is {size / 1e6:.2f} MB, over its {SIZE_BUDGET / 1e6:.0f} MB"
    found = first_screen(out, out.parent / "first-screen.png")
    assert_on_one_screen(found)
    assert len([b for b in found["boxes"] if b["what"] == "TD.verdict"]) == len(experiments)
    assert (out.parent / "first-screen.png").read_bytes().startswith(PNG)
    print(f"default report {size / 1e6:.2f} MB; first screen {out.parent / 'first-screen.png'}")
