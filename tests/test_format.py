"""The Snakemake files are snakefmt-clean (settings in pyproject.toml's [tool.snakefmt])."""

import subprocess
import sys

from tests.paths import ROOT


def snakemake_files() -> list[str]:
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"expected Snakemake files are missing: {missing}"
    return [str(f.relative_to(ROOT)) for f in files]


def test_snakemake_files_are_snakefmt_formatted():
    files = snakemake_files()
    assert len(files) >= 2, f"only {files}: workflow/rules/*.smk not found"
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "--diff", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 123, f"snakefmt could not parse a file:\n{proc.stderr}"
    assert proc.returncode == 0, (
        f"snakefmt would reformat these files; run `.venv/bin/snakefmt Snakefile workflow/rules` and commit:\n"
        f"{proc.stdout}{proc.stderr}"
    )
