"""The environment fingerprint: what a result was measured on. Results with different
fingerprints are never compared as like for like."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Every framework package, whichever backend ran: one run's backends share one fingerprint.
PACKAGES = (
    "numpy",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "scikit-learn",
    "mlflow",
    "snakemake",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if sha.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fingerprint(device: str, device_info: dict, threads: int, dtype: str) -> dict:
    """The environment of a run. The hash covers hardware, OS, all framework versions, device
    (GPU model and driver), threads and precision, so every backend of one run on one device
    shares it; the git commit is recorded beside it but kept out of the hash, so two code
    versions on one environment stay comparable (the report shows the commits)."""
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": int(threads),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "device": device,
        "device_name": cpu_model() if device == "cpu" else str(device_info.get("name", device)),
        "driver": None if device == "cpu" else device_info.get("driver"),
        "precision": {"dtype": dtype, "tf32": False},
    }
    env["fingerprint"] = hashlib.sha256(json.dumps(env, sort_keys=True, default=str).encode()).hexdigest()[:12]
    # Recorded beside the hash, not in it: backend-specific detail, and the code version.
    env["device_info"] = device_info
    env["git_commit"] = git_commit()
    return env
