"""workflow.scripts.cpu_accounting: a process's CPU goes to the job its parent chain leads to, the
timing replicas apart from their job."""

from __future__ import annotations

from workflow.scripts.cpu_accounting import summarize


def _acct(comm: str, utime: int, stime: int, pid: int, ppid: int) -> str:
    """One line of dump-acct's output (v3 records): CPU in clock ticks of 1/100 s."""
    return f"{comm:16s}|v3|{utime:9.2f}|{stime:9.2f}|1.00|0|0|100.00|0.00|{pid:8d}|{ppid:8d}|     |"


def test_cpu_goes_to_the_job_of_its_parent_chain(tmp_path):
    (tmp_path / "ps.txt").write_text(
        "10 1 python -m snakemake --cores all\n"
        "20 10 python -m workflow.scripts.train --backend torch --device cpu\n"
        "30 20 python -m workflow.scripts.train --backend torch --device cpu --timing-replica /tmp/r1.json\n"
        "40 10 python -m reports.html --results results\n"
    )
    (tmp_path / "pacct.txt").write_text(
        "\n".join(
            [
                _acct("python", 500, 100, 20, 10),  # the job itself: 6 s
                _acct("cc1plus", 150, 50, 21, 20),  # its compiler, never listed by ps: 2 s to the job
                _acct("python", 250, 50, 30, 20),  # a replica: 3 s
                _acct("cc1plus", 100, 0, 31, 30),  # the replica's compiler: 1 s to the replica
                _acct("python", 90, 10, 40, 10),  # the report: 1 s
                _acct("jemalloc_bg_thd", 40, 10, 10, 1),  # snakemake: 0.5 s
            ]
        )
        + "\n"
    )
    rows = {job: (seconds, n) for job, seconds, n in summarize(tmp_path)}
    assert rows["train torch"] == (8.0, 2)
    assert rows["train torch (timing replica)"] == (4.0, 2)
    assert rows["reports.html"] == (1.0, 1)
    assert rows["snakemake"] == (0.5, 1)
