"""The locks, the requirements they are compiled from, the rules' conda environments and the
installed venv agree; the fingerprint moves with any installed distribution's version."""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

from tests.paths import ROOT
from workflow.lib import lockfile
from workflow.lib.environment import fingerprint
from workflow.scripts.locks import ENVS, REPORT_PACKAGES, ROUTE_SPECIFIC

LOCKS = list(lockfile.SOURCES)
DEV_TOOLS = set(lockfile.versions(ROOT / lockfile.DEV_LOCK)) - set(lockfile.versions(ROOT / "requirements.lock"))


def pins(path: Path) -> dict[str, str]:
    """name -> version of a top-level requirements file (every line `name[extras]==version`)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
            assert m, f"{path.name}: {line!r} is not pinned exactly (name==version)"
            out[canonicalize_name(m.group(1))] = m.group(3)
    return out


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_in_its_lock_at_its_version(lock):
    locked = lockfile.read_lock(ROOT / lock)  # refuses a line without a hash
    for name, version in pins(ROOT / lockfile.SOURCES[lock]).items():
        assert name in locked, f"{name} is in {lockfile.SOURCES[lock]} but not in {lock}: rerun the lock refresh"
        assert locked[name]["version"].split("+")[0] == version, f"{lock}: {name} {locked[name]} != {version}"


def test_cpu_and_gpu_routes_share_every_common_version():
    cpu, gpu = lockfile.versions(ROOT / "requirements.lock"), lockfile.versions(ROOT / "requirements-gpu.lock")
    shared = (cpu.keys() & gpu.keys()) - ROUTE_SPECIFIC
    assert len(shared) > 100 and {n: cpu[n] for n in shared} == {n: gpu[n] for n in shared}
    assert cpu["torch"] == "2.13.0+cpu" and gpu["torch"] == "2.13.0"  # the CPU build here, PyPI's CUDA build there
    assert "tensorflow-cpu" in cpu and "tensorflow" in gpu and not any(n.startswith("nvidia") for n in cpu)
    top_cpu, top_gpu = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-gpu.txt")
    top_cpu["tensorflow"] = top_cpu.pop("tensorflow-cpu")
    assert top_cpu == top_gpu


def test_dev_lock_moves_no_runtime_package():
    dev = lockfile.versions(ROOT / lockfile.DEV_LOCK)
    for runtime in lockfile.RUNTIME_LOCK.values():
        locked = lockfile.versions(ROOT / runtime)
        assert {n: v for n, v in dev.items() if n in locked} == {n: locked[n] for n in dev if n in locked}
    assert {"pytest", "pytest-xdist", "pytest-timeout", "ruff", "snakefmt", "playwright"} <= DEV_TOOLS


@pytest.mark.parametrize("env_file", ENVS)
def test_rule_environments_match_their_lock(env_file):
    lock_name, packages = ENVS[env_file]
    locked = lockfile.read_lock(ROOT / lock_name)
    env = yaml.safe_load((ROOT / env_file).read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = {}
    for line in pip:
        name, _, rest = line.partition("==")
        version, *hashes = rest.split()
        got[canonicalize_name(name)] = {"version": version, "hashes": sorted(h.split(":", 1)[1] for h in hashes)}
    assert got == ({n: locked[n] for n in got} if packages else locked)
    assert not DEV_TOOLS & set(got), f"{env_file} carries test tools {DEV_TOOLS & set(got)}"
    if packages:  # the report environment: what reports/ and datasets/ import, and no framework
        lines = (line.split("#")[0].strip() for line in REPORT_PACKAGES.read_text().splitlines())
        wanted = {canonicalize_name(x) for x in lines if x}
        assert wanted <= set(got) and not {"torch", "tensorflow-cpu", "jax", "mlflow"} & set(got)


def test_gpu_jobs_take_the_gpu_environment():
    text = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    assert 'CONDA_TRAIN = "../envs/train-{device}.yml"' in text
    assert (ROOT / "workflow/envs/train-gpu.yml").is_file() and (ROOT / "workflow/envs/train-cpu.yml").is_file()
    assert "environment.yml" not in text and text.count("CONDA_TRAIN\n") >= 2  # the train and sweep rules


def test_installed_distributions_match_the_locks():
    """The venv the tests run in is the locked one (a drifted venv is caught here)."""
    locked: dict[str, str] = {}
    for name in ("requirements.lock", lockfile.DEV_LOCK):
        locked |= lockfile.versions(ROOT / name)
    present = lockfile.installed()
    assert not sorted(set(locked) - set(present)), "rerun bash workflow/run-tests.sh to install the locks"
    assert {n: v for n, v in present.items() if n in locked} == locked
    assert not lockfile.extras([ROOT / "requirements.lock", ROOT / lockfile.DEV_LOCK], present)


def test_installed_distributions_do_not_depend_on_what_was_imported():
    """Importing setuptools puts its vendored distributions on sys.path; the list (and the fingerprint
    built on it) is the environment's, whatever the process imported first."""
    code = "import json, sys; from workflow.lib import lockfile; a = lockfile.installed(); import setuptools; "
    code += "sys.stdout.write(json.dumps([a == lockfile.installed(), any('_vendor' in p for p in sys.path)]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    same, vendored = json.loads(done.stdout)
    assert same, "lockfile.installed() changed after `import setuptools`"
    if not vendored:
        pytest.skip("this setuptools does not put its _vendor folder on sys.path")


def test_pip_check_is_clean():
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fingerprint_records_the_lock_and_every_distribution():
    env = fingerprint("cpu", {}, 1, "float32")
    assert env["distributions"] == lockfile.installed() and len(env["distributions"]) > 150
    assert env["distributions"]["scipy"] == metadata.version("scipy")
    stamp = lockfile.read_stamp()
    if stamp:  # installed by workflow/env.sh: the stamp's locks, as they are in the repository now
        assert env["lock"]["files"] == stamp and env["lock"]["installed_by"] == "workflow/env.sh"
        assert all(lockfile.sha256(ROOT / name) == sha for name, sha in stamp.items())
    else:
        assert env["lock"]["files"] == {"requirements.lock": lockfile.sha256(ROOT / "requirements.lock")}


def _shadow(site: Path, name: str, version: str) -> None:
    """A distribution's metadata in a folder read before the real site-packages: this version is seen."""
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.mark.parametrize("name", ["scipy", "protobuf"])  # neither among the 12 framework packages shown in tables
def test_a_changed_package_version_changes_the_fingerprint(tmp_path, monkeypatch, name):
    before = fingerprint("cpu", {}, 1, "float32")
    site = lockfile.site_dirs()
    monkeypatch.setattr(lockfile, "site_dirs", lambda: [str(tmp_path), *site])  # first in the environment
    _shadow(tmp_path, name, "0.0.1")
    after = fingerprint("cpu", {}, 1, "float32")
    assert after["distributions"][name] == "0.0.1" != before["distributions"][name]
    assert after["fingerprint"] != before["fingerprint"] and name in after["lock"]["differs"]
    _shadow(tmp_path, name, before["distributions"][name])  # the same version again: the same fingerprint
    assert fingerprint("cpu", {}, 1, "float32")["fingerprint"] == before["fingerprint"]


def test_a_changed_lock_changes_the_fingerprint(tmp_path, monkeypatch):
    before = fingerprint("cpu", {}, 1, "float32")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # a venv whose stamp names another lock content
    (tmp_path / lockfile.STAMP).write_text('{"requirements.lock": "' + "0" * 64 + '"}\n')
    after = fingerprint("cpu", {}, 1, "float32")
    assert after["lock"]["files"] == {"requirements.lock": "0" * 64} and after["fingerprint"] != before["fingerprint"]


def test_a_lock_line_without_hash_is_refused(tmp_path):
    bad = tmp_path / "requirements.lock"
    bad.write_text("numpy==2.4.6\n")
    with pytest.raises(lockfile.LockError, match="python -m workflow.scripts.locks"):
        lockfile.read_lock(bad)


def test_install_plan_reuses_a_venv_that_holds_the_needed_locks(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for exe in ("python", "fwbench"):
        (venv / "bin" / exe).touch()
    runtime, dev = ROOT / "requirements.lock", ROOT / lockfile.DEV_LOCK
    assert lockfile.to_install(venv, [runtime]) == [runtime]  # no stamp: install
    lockfile.write_stamp(venv, [runtime, dev])
    assert lockfile.to_install(venv, [runtime]) == []  # the test command's venv serves the benchmark
    assert lockfile.to_install(venv, [runtime, dev]) == []
    (venv / lockfile.STAMP).write_text('{"requirements.lock": "' + "0" * 64 + '"}\n')  # the lock moved on
    assert lockfile.to_install(venv, [runtime, dev]) == [runtime, dev]
