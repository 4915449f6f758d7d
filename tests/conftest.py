import os

# The repo root is the import root: pyproject.toml's `pythonpath` puts it on sys.path (tests.paths.ROOT).
# A fair, quiet test machine: frameworks see the same thread count and say little.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("FWBENCH_GPU") != "1":  # the CPU route: JAX need not look for accelerators
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests (CI always runs them; skip with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped with a message where none is seen")
