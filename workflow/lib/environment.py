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

from workflow.lib import lockfile

REPO = Path(__file__).resolve().parents[2]
# Every framework package, whichever backend ran: one run's backends share one fingerprint. Shown
# in tables and MLflow tags; the fingerprint covers every installed distribution (`distributions`).
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


ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "amx_tile",
    "sve",
    "asimd",
)


def cpu_identity() -> dict:
    """The CPU precisely: vendor, family/model/stepping, model name, the vector ISA flags that
    decide which BLAS kernel runs, and the kernel NumPy's OpenBLAS picked. float32 results and
    speeds differ between CPU generations, so all of it goes into the fingerprint."""
    fields = {"vendor_id": "vendor", "cpu family": "family", "model": "model", "stepping": "stepping"}
    out: dict = {"vendor": None, "family": None, "model": None, "stepping": None, "name": None, "isa": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor" and value != "0":
                break  # the first CPU speaks for all
            if key in fields:
                out[fields[key]] = value
            elif key == "model name":
                out["name"] = value
            elif key in ("flags", "Features"):
                present = set(value.split())
                out["isa"] = [f for f in ISA_FLAGS if f in present]
    except OSError:
        pass
    out["name"] = out["name"] or platform.processor() or platform.machine()
    out["blas"] = blas_kernel()
    return out


def blas_kernel() -> dict:
    """NumPy's BLAS library, version and the CPU kernel it chose (threadpoolctl's report)."""
    try:
        import numpy  # noqa: F401 - threadpoolctl reports only libraries already loaded
        from threadpoolctl import threadpool_info

        # torch and scipy bring their own OpenBLAS builds: pick NumPy's (its wheel's numpy.libs), so
        # the record does not depend on which frameworks the process had loaded before
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        info = next((i for i in blas if "numpy" in (i.get("filepath") or "")), blas[0] if blas else {})
    except Exception:  # noqa: BLE001 - recorded as unknown
        info = {}
    return {k: info.get(k) for k in ("internal_api", "version", "architecture")}


def cpu_label(cpu: dict) -> str:
    """One line for tables: 'GenuineIntel 6/143/8 Intel(R) Xeon(R) ... avx512f, OpenBLAS SkylakeX'."""
    isa = "avx512f" if "avx512f" in cpu["isa"] else ("avx2" if "avx2" in cpu["isa"] else ",".join(cpu["isa"][-1:]))
    blas = cpu.get("blas") or {}
    return (
        f"{cpu['vendor']} {cpu['family']}/{cpu['model']}/{cpu['stepping']} {cpu['name']} {isa}, "
        f"{blas.get('internal_api')} {blas.get('architecture')}"
    )


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_head(repo: Path = REPO) -> str | None:
    """`git rev-parse HEAD` of the repository; None outside git (a copy without .git, no git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha.stdout.strip() or None) if sha.returncode == 0 else None


def git_commit_time(commit: str, repo: Path = REPO) -> str | None:
    """The commit's committer date (ISO 8601), None where git does not know the commit."""
    try:
        out = subprocess.run(
            ["git", "show", "-s", "--format=%cI", commit], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


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
    """The environment of a run. The hash covers hardware, OS, every installed distribution's
    version, the lock files they were installed from (sha256), device (GPU model and driver),
    threads and precision, so every backend of one run on one device shares it; the git commit is
    recorded beside it but kept out of the hash, so two code versions on one environment stay
    comparable (the report shows the commits)."""
    cpu = cpu_identity()
    env = {
        "cpu": cpu_label(cpu),
        "cpu_identity": cpu,
        "cores": os.cpu_count(),
        "threads": int(threads),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "distributions": lockfile.installed(),
        "lock": lockfile.record("gpu" if os.environ.get("FWBENCH_GPU") == "1" else "cpu"),
        "device": device,
        "device_name": cpu["name"] if device == "cpu" else str(device_info.get("name", device)),
        "driver": None if device == "cpu" else device_info.get("driver"),
        "precision": {"dtype": dtype, "tf32": False},
    }
    env["fingerprint"] = hashlib.sha256(json.dumps(env, sort_keys=True, default=str).encode()).hexdigest()[:12]
    # Recorded beside the hash, not in it: backend-specific detail, and the code version.
    env["device_info"] = device_info
    env["git_commit"] = git_commit()
    return env
