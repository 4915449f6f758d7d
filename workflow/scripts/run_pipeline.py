"""`fwbench run`: the pipeline, i.e. Snakemake from the repository root with the default profile.

--experiments and --backends are short for `--config experiments=[...] backends=[...]`; every other
argument goes to snakemake as it is (e.g. --configfile config/test.yaml, -n, a target file).
Without --cores/--jobs it runs on every core, as `bash workflow/run-benchmark.sh` does; without
--workflow-profile it takes profiles/default (e.g. `--executor slurm --workflow-profile profiles/slurm`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILE = "profiles/default"
CORES_FLAGS = ("--cores", "-c", "--jobs", "-j")
CONFIG_FLAGS = ("--config", "-C")


def snakemake_command(argv: list[str]) -> list[str]:
    """The snakemake command line for `fwbench run ARGV`."""
    ap = argparse.ArgumentParser(
        prog="fwbench run", description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--experiments", nargs="+", metavar="NAME", help="catalogue names (config key experiments)")
    ap.add_argument("--backends", nargs="+", metavar="NAME", help="registry names (config key backends)")
    args, rest = ap.parse_known_args(argv)
    items = [
        f"{key}=[{','.join(v)}]" for key, v in (("experiments", args.experiments), ("backends", args.backends)) if v
    ]
    cmd = [_snakemake()]
    if not any(a == "--workflow-profile" or a.startswith("--workflow-profile=") for a in rest):
        cmd += ["--workflow-profile", PROFILE]  # the user's own (e.g. profiles/slurm) replaces it
    if not any(a in CORES_FLAGS or a.startswith(("--cores=", "--jobs=")) for a in rest):
        cmd += ["--cores", "all"]
    if items:
        # snakemake keeps only the last --config: ours join the user's, or stand alone
        at = next((i for i, a in enumerate(rest) if a in CONFIG_FLAGS), None)
        rest = [*rest[: at + 1], *items, *rest[at + 1 :]] if at is not None else [*rest, "--config", *items]
    return cmd + rest


def _snakemake() -> str:
    """The snakemake beside this interpreter (the venv's), else the one on PATH."""
    here = Path(sys.executable).parent / "snakemake"
    found = str(here) if here.exists() else shutil.which("snakemake")
    if not found:
        sys.exit(
            "fwbench run: snakemake is not installed here; create the environment with `bash workflow/run-benchmark.sh`"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    cmd = snakemake_command(sys.argv[1:] if argv is None else argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    print(f"fwbench run: {' '.join(cmd)}", file=sys.stderr)
    return subprocess.run(cmd, cwd=REPO, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
