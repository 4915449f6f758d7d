"""README's per-job tables: workflow/scripts/job_table.py on Snakemake benchmark files of the real format."""

from __future__ import annotations

from workflow.scripts import job_table

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_longest_first_with_totals(tmp_path, capsys):
    bench = tmp_path / "benchmarks"
    (bench / "train").mkdir(parents=True)
    (bench / "sweeps/moons-mlp").mkdir(parents=True)
    (bench / "train/torch-cpu.tsv").write_text(HEADER + "100.0\t0:01:40\t900\t0\t0\t0\t0\t0\t50\t60.5\n")
    # a rerun appends a line: the last one counts
    (bench / "sweeps/moons-mlp/jax-cpu.tsv").write_text(
        HEADER + "500.0\t0:08:20\t300\t0\t0\t0\t0\t0\t50\t400\n" + "30.0\t0:00:30\t300\t0\t0\t0\t0\t0\t50\t20\n"
    )
    df = job_table.job_table(tmp_path)
    assert list(df.job) == ["train/torch-cpu", "sweeps/moons-mlp/jax-cpu"]
    assert list(df.cpu_s) == [60.5, 20.0]
    assert job_table.main(["--results", str(tmp_path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `train/torch-cpu` | 100 | 60 | 900 |" in out and "| all 2 benchmarked jobs | 130 | 80 | |" in out


def test_no_benchmarks_is_a_clear_error(tmp_path, capsys):
    assert job_table.main(["--results", str(tmp_path)]) == 2
    assert "run the pipeline first" in capsys.readouterr().err
