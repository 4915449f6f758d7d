"""The dependency locks (requirements*.lock, `uv pip compile --generate-hashes` output): what they
pin, which installed distributions they do not hold, and the stamp workflow/env.sh leaves in a
virtual environment naming the locks it installed. Imports nothing outside the standard library
and packaging, so env.sh can run it before the project is installed."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Which locks each route installs (the test command adds the dev lock), one place for env.sh,
# the fingerprint and the tests.
RUNTIME_LOCK = {"cpu": "requirements.lock", "gpu": "requirements-gpu.lock"}
DEV_LOCK = "requirements-dev.lock"
# The top-level pins each lock is compiled from.
SOURCES = {
    "requirements.lock": "requirements.txt",
    "requirements-gpu.lock": "requirements-gpu.txt",
    "requirements-dev.lock": "requirements-dev.txt",
}
# Installed beside the locks by env.sh itself: the installers and the project (editable).
INSTALLER = {"pip", "uv", "fwbench"}
STAMP = ".fwbench-lock.json"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


class LockError(ValueError):
    pass


def read_lock(path: Path) -> dict[str, dict]:
    """{canonical name: {"version", "hashes"}} of one lock file; a line that is not `name==version`
    with at least one hash is refused, naming the refresh command."""
    from packaging.utils import canonicalize_name

    out: dict[str, dict] = {}
    logical = re.sub(r"\\\n", " ", path.read_text())
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        hashes = _HASH.findall(line)
        if not m or not hashes:
            raise LockError(
                f"{path.name}: {line[:80]!r} is not 'name==version --hash=sha256:...'; "
                "regenerate the locks with `python -m workflow.scripts.locks`"
            )
        out[canonicalize_name(m.group(1))] = {"version": m.group(2), "hashes": sorted(hashes)}
    return out


def versions(path: Path) -> dict[str, str]:
    return {name: pin["version"] for name, pin in read_lock(path).items()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def site_dirs() -> list[str]:
    """The running environment's site-packages folders (pure and platform), in import order."""
    return list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))


def installed() -> dict[str, str]:
    """Every distribution installed in the running environment, {canonical name: version}.

    Only the environment's own site-packages are read, not sys.path: importing setuptools appends
    its `_vendor` folder (jaraco-*, more-itertools, ...) to sys.path, which would otherwise make the
    list, and the fingerprint built on it, depend on what the process happened to import first."""
    from packaging.utils import canonicalize_name

    out: dict[str, str] = {}
    for dist in metadata.distributions(path=site_dirs()):
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist.version)
    return dict(sorted(out.items()))


def extras(locks: list[Path], present: dict[str, str] | None = None) -> list[str]:
    """Installed distributions no lock holds (env.sh removes them, so the venv is the locks)."""
    wanted = set().union(*(versions(p) for p in locks)) | INSTALLER
    return sorted(set(installed() if present is None else present) - wanted)


def write_stamp(venv: Path, locks: list[Path]) -> None:
    (venv / STAMP).write_text(json.dumps({p.name: sha256(p) for p in locks}, indent=1) + "\n")


def read_stamp(prefix: Path | None = None) -> dict[str, str] | None:
    """The locks env.sh installed into this interpreter's environment, {file: sha256}, or None."""
    try:
        return json.loads((Path(prefix or sys.prefix) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def to_install(venv: Path, needed: list[Path]) -> list[Path]:
    """The locks env.sh must install into venv: none when every needed lock is installed as it is now
    (a venv with the dev lock too serves the benchmark command); otherwise the needed ones plus the
    ones installed before, so a refresh does not drop what the other command put there."""
    stamp = read_stamp(venv) or {}
    current = {p.name: sha256(p) for p in needed}
    fresh = all(stamp.get(n) == sha for n, sha in current.items()) and all(
        (REPO / n).is_file() and sha256(REPO / n) == sha for n, sha in stamp.items()
    )
    if fresh and (venv / "bin" / "python").exists() and (venv / "bin" / "fwbench").exists():
        return []
    before = [REPO / n for n in stamp if n in SOURCES and (REPO / n).is_file() and n not in current]
    return [*needed, *before]


def record(route: str = "cpu") -> dict:
    """The environment's lock for the run result: the files and their sha256 (from env.sh's stamp, or
    the repository's lock of the route where no stamp is), and every installed distribution whose
    version differs from the locks' or that they lack."""
    stamp = read_stamp()
    files = stamp if stamp else {RUNTIME_LOCK[route]: _sha_or_none(REPO / RUNTIME_LOCK[route])}
    pinned: dict[str, str] = {}
    for name in files:
        if (REPO / name).is_file():
            pinned |= versions(REPO / name)
    present = installed()
    return {
        "files": files,
        "installed_by": "workflow/env.sh" if stamp else None,
        "differs": sorted(n for n, v in present.items() if n not in INSTALLER and pinned.get(n) != v),
        "missing": sorted(set(pinned) - set(present)),
    }


def _sha_or_none(path: Path) -> str | None:
    return sha256(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    """`python -m workflow.lib.lockfile plan|extras|stamp ...`: env.sh's steps."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ("plan", "extras", "stamp"):
        print("usage: python -m workflow.lib.lockfile plan VENV LOCK... | extras LOCK... | stamp VENV LOCK...")
        return 2
    if args[0] == "plan":
        for path in to_install(Path(args[1]), [Path(p) for p in args[2:]]):
            print(path)
    elif args[0] == "extras":
        for name in extras([Path(p) for p in args[1:]]):
            print(name)
    else:
        write_stamp(Path(args[1]), [Path(p) for p in args[2:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
