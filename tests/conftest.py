import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

# The repo root is the import root: pyproject.toml's `pythonpath` puts it on sys.path (tests.paths.ROOT).
# A fair, quiet test machine: frameworks see the same thread count and say little.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("FWBENCH_GPU") != "1":  # the CPU route: JAX need not look for accelerators
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
# inductor's vector-ISA probe (a test library compiled and loaded in a Python subprocess per ISA) costs
# about 12 s of every torch process's first compile; the tests time no start-up, so they skip it as the
# timing replicas do. tests/test_compile_caches.py runs the probe itself and checks the ISA it picks.
os.environ.setdefault("TORCHINDUCTOR_VEC_ISA_OK", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests (CI always runs them; skip with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped with a message where none is seen")
    config.addinivalue_line(
        "markers",
        "serial: judges the machine's timing (CPU/wall, foreign load), so it runs alone: the test command runs"
        " these in a second phase (--serial-only) after the parallel one, which leaves them out",
    )


def pytest_addoption(parser):
    parser.addoption("--serial-only", action="store_true", help="run only the tests marked serial (one process)")


def pytest_collection_modifyitems(config, items):
    """--serial-only keeps the serial tests alone; a parallel run (xdist) leaves them out for that phase."""
    serial_only = config.getoption("--serial-only")
    parallel = bool(getattr(config.option, "numprocesses", None)) or os.environ.get("PYTEST_XDIST_WORKER")
    if not serial_only and not parallel:
        return
    keep, drop = [], []
    for item in items:
        is_serial = item.get_closest_marker("serial") is not None
        (keep if is_serial == serial_only else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory) -> Path:
    """results/machine.json from one real calibration (workflow/scripts/calibrate.py) per test session,
    shared by its xdist workers. The pipeline tests that test something else start from a copy
    (tests/helpers_results.seed_calibration) instead of calibrating again (four libraries imported and
    timed: about 20 s of CPU a pipeline). The pipeline fixture of tests/test_pipeline.py and the Slurm
    test calibrate for real."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    folder = root / "calibrated"
    path = folder / "machine.json"
    with FileLock(str(root / "calibrated.lock")):
        if not path.exists():
            cmd = [sys.executable, "-m", "workflow.scripts.calibrate", "--threads", "1"]
            cmd += ["--results", str(folder), "--out", str(path)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
    return path
