"""Where a pipeline run's time went, job by job, from Snakemake's `benchmark:` files.

    python -m workflow.scripts.job_table --results results [--markdown]

One row per job (results/benchmarks/**/*.tsv: wall seconds, CPU seconds, peak RSS), longest first, with
the totals; README's per-job tables of the default run are printed by it (--markdown).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def job_table(results: str | Path) -> pd.DataFrame:
    """job, wall_s, cpu_s, max_rss_mb per benchmark file; the last benchmarked run of each job."""
    root = Path(results) / "benchmarks"
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no benchmark files under {root}: run the pipeline first (fwbench run)")
    rows = []
    for path in files:
        last = pd.read_csv(path, sep="\t").iloc[-1]
        job = str(path.relative_to(root).with_suffix(""))
        rows.append(
            {
                "job": job,
                "wall_s": float(last["s"]),
                "cpu_s": float(last["cpu_time"]),
                "max_rss_mb": float(last["max_rss"]),
            }
        )
    return pd.DataFrame(rows).sort_values("wall_s", ascending=False, ignore_index=True)


def markdown(df: pd.DataFrame) -> str:
    lines = ["| job | wall s | CPU s | peak RSS MB |", "|---|---|---|---|"]
    lines += [f"| `{r.job}` | {r.wall_s:.0f} | {r.cpu_s:.0f} | {r.max_rss_mb:.0f} |" for r in df.itertuples()]
    lines.append(f"| all {len(df)} benchmarked jobs | {df.wall_s.sum():.0f} | {df.cpu_s.sum():.0f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workflow.scripts.job_table", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--markdown", action="store_true", help="a markdown table (README's)")
    args = ap.parse_args(argv)
    try:
        df = job_table(args.results)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(df) if args.markdown else df.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
