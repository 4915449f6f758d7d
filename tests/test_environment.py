"""The pip and conda routes pin the same versions; torch is pinned exactly on the CPU route."""

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tests.paths import ROOT


def pins_from_requirements(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
            assert m, f"{path.name}: {line!r} is not pinned exactly (name==version)"
            out[m.group(1).lower()] = m.group(3)
    return out


def pins_from_environment(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            out.update(pins_from_requirements_lines(dep["pip"]))
        elif "=" in dep and not dep.startswith("python="):
            name, version = dep.split("=", 1)
            out[name.lower()] = version
    return out


def pins_from_requirements_lines(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==(\S+)", line.strip())
        assert m, f"pip entry {line!r} is not pinned exactly"
        out[m.group(1).lower()] = m.group(3)
    return out


@pytest.mark.parametrize(
    "req, env", [("requirements.txt", "environment.yml"), ("requirements-gpu.txt", "environment-gpu.yml")]
)
def test_pip_and_conda_routes_pin_the_same_versions(req, env):
    assert pins_from_requirements(ROOT / req) == pins_from_environment(ROOT / env)


def test_cpu_and_gpu_routes_share_versions():
    cpu, gpu = pins_from_requirements(ROOT / "requirements.txt"), pins_from_requirements(ROOT / "requirements-gpu.txt")
    cpu["tensorflow"] = cpu.pop("tensorflow-cpu")
    assert cpu == gpu


def test_torch_is_pinned_exactly_for_the_cpu_route():
    assert pins_from_requirements(ROOT / "requirements.txt")["torch"] == "2.13.0"


def test_installed_versions_match_the_pins():
    """The environment the tests run in is the pinned one (a drifted venv is caught here)."""
    for name, version in pins_from_requirements(ROOT / "requirements.txt").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is pinned in requirements.txt but not installed; rerun workflow/run-tests.sh")
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"
