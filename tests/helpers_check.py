"""What the regression checker's tests share (tests/test_check.py, tests/test_check_throughput.py): a clean
results tree written by the pipeline's own runner with its baselines, a private copy to edit, and running the
check on it."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

from reports import baselines as B
from reports import check as C
from tests.helpers_results import scale_speed, shared_tree, without_problems


def build_trained(tmp_path_factory) -> Path:
    """A clean results tree (no failed/diverged run) and its baselines, built once: the shared seed-0
    tree (tests/test_report.py reads it too) less its diverging experiment and failed run."""
    base = tmp_path_factory.mktemp("check")
    results = without_problems(shared_tree(tmp_path_factory, seed=0), base / "results")
    assert B.main(["--results", str(results), "--out", str(base / "baselines.json")]) == 0
    return base


def private_copy(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained tree and baselines, free to edit. The tree was trained under the
    test suite's own parallel load, so its runs may carry foreign-load flags, which make throughput
    not comparable: the copy starts without them (the test of that rule adds its own)."""
    shutil.copytree(trained / "results", tmp_path / "results")
    shutil.copy(trained / "baselines.json", tmp_path / "baselines.json")
    for path in (tmp_path / "results" / "runs").glob("*/*/seed*.json"):
        data = json.loads(path.read_text())
        if any(f.startswith("foreign load") for f in data.get("flags") or []):
            data["flags"] = [f for f in data["flags"] if not f.startswith("foreign load")]
            path.write_text(json.dumps(data))
    return tmp_path


def run_check(work: Path, *extra: str, baselines: Path | None = None) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = C.main(
            ["--results", str(work / "results"), "--baselines", str(baselines or work / "baselines.json"), *extra]
        )
    return code, buf.getvalue()


def edit(work: Path, experiment: str, run: str, fn, timed_only: bool = False) -> None:
    """Apply fn to every seed's run result of (experiment, run), or only to the timed one."""
    for path in sorted((work / "results" / "runs" / experiment / run).glob("seed*.json")):
        data = json.loads(path.read_text())
        if timed_only and not data["timings"].get("timed"):
            continue
        fn(data)
        path.write_text(json.dumps(data))


def row(out: str, *tokens: str) -> str:
    """The one printed table row that holds every token."""
    hits = [line for line in out.splitlines() if all(t in line for t in tokens)]
    assert len(hits) == 1, f"expected one row with {tokens}, got {hits} in:\n{out}"
    return hits[0]


def speed_up(factor: float):
    """An edit (for `edit`) that scales a run's training samples/s by `factor`."""
    return partial(scale_speed, factor=factor)
