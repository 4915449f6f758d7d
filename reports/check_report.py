"""The regression check's results for CI systems: JUnit XML (every check one test case) and a markdown summary.

reports/check.py judges; this module only writes what it judged:
- JUnit: one <testcase> per check (classname = experiment, name = "backend-device: metric"); a failing
  check carries <failure>, a note that does not fail (flagged, not comparable, not scheduled, new run)
  <skipped>, and every case its row as <system-out>;
- markdown: a table of the failures and notes (every check with verbose=True), then the verdict line.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

SUITE = "fwbench regression check"


class CheckRow(Protocol):
    experiment: str
    run: str
    metric: str
    expected: str
    got: str
    tolerance: str
    verdict: str
    fails: bool
    note: bool


def _detail(row: CheckRow) -> str:
    return f"expected {row.expected}, got {row.got}" + (f", tolerance {row.tolerance}" if row.tolerance else "")


def junit_xml(rows: Sequence[CheckRow], baselines: str = "") -> ET.ElementTree:
    """The checks as one JUnit test suite; names made unique where one run has several rows of one kind."""
    failures = sum(r.fails for r in rows)
    skipped = sum(r.note and not r.fails for r in rows)
    suites = ET.Element("testsuites", name=SUITE, tests=str(len(rows)), failures=str(failures), errors="0")
    suite = ET.SubElement(
        suites, "testsuite", name=SUITE, tests=str(len(rows)), failures=str(failures), errors="0", skipped=str(skipped)
    )
    if baselines:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="baselines", value=baselines)
    seen: Counter[tuple[str, str]] = Counter()
    for r in rows:
        name = f"{r.run}: {r.metric}"
        seen[(r.experiment, name)] += 1
        if seen[(r.experiment, name)] > 1:
            name += f" #{seen[(r.experiment, name)]}"
        case = ET.SubElement(suite, "testcase", classname=r.experiment, name=name, time="0")
        if r.fails:
            failure = ET.SubElement(case, "failure", message=r.verdict, type="regression")
            failure.text = _detail(r)
        elif r.note:
            ET.SubElement(case, "skipped", message=r.verdict)
        ET.SubElement(case, "system-out").text = f"{r.verdict} ({_detail(r)})"
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    return tree


def write_junit(rows: Sequence[CheckRow], path: str | Path, baselines: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(rows, baselines).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") or " "


def markdown(rows: Sequence[CheckRow], summary: str, verbose: bool = False) -> str:
    """The failures and notes (every check with verbose) as a markdown table, then the verdict line."""
    shown = list(rows) if verbose else [r for r in rows if r.fails or r.note]
    icon = "❌" if any(r.fails for r in rows) else "✅"
    lines = [f"## {SUITE}", ""]
    if shown:
        lines += [
            "| | experiment | backend | metric | expected | got | tolerance | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in shown:
            mark = "❌" if r.fails else "⚠️" if r.note else "✓"
            cells = (r.experiment, r.run, r.metric, r.expected, r.got, r.tolerance, r.verdict)
            lines.append(f"| {mark} | " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    lines += [f"{icon} {summary}", ""]
    return "\n".join(lines)


def write_markdown(rows: Sequence[CheckRow], summary: str, path: str | Path, verbose: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(rows, summary, verbose), encoding="utf-8")
    return path
