"""Where a whole run's CPU goes, by job, from the kernel's process accounting: every process that ends
is counted, however short-lived (Snakemake's benchmark files sample a job's process tree every few
seconds and miss the timing replicas' and compilers' last seconds).

    python -m workflow.scripts.cpu_accounting [--out DIR] -- bash workflow/run-benchmark.sh

Runs the command with BSD process accounting on (`accton`, Debian package `acct`; needs root) and a
`ps` listing each second (the accounting names a process by its first 16 characters only; the
listing gives its arguments, and its parent chain gives its job), then prints CPU seconds (user +
system) per job: the training job's own process, its timing replicas, a sweep, Snakemake itself,
the report, and so on. The raw records stay in DIR (default: a temporary folder) for a second look:
`python -m workflow.scripts.cpu_accounting --summarize DIR`.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


def record(cmd: list[str], out: Path) -> int:
    """Run cmd with process accounting into out/pacct and a ps listing each second into out/ps.txt."""
    if shutil.which("accton") is None or shutil.which("dump-acct") is None:
        raise SystemExit("accton / dump-acct not found: install the Debian package `acct` (apt-get install acct)")
    out.mkdir(parents=True, exist_ok=True)
    pacct, listing = out / "pacct", out / "ps.txt"
    pacct.touch()
    subprocess.run(["accton", str(pacct)], check=True, capture_output=True)
    stop = threading.Event()

    def sample() -> None:
        with listing.open("a") as f:
            while not stop.is_set():
                f.write(subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout)
                stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rc = subprocess.run(cmd, check=False).returncode
    finally:
        stop.set()
        sampler.join()
        subprocess.run(["accton", "off"], check=False, capture_output=True)
    (out / "pacct.txt").write_text(subprocess.run(["dump-acct", str(pacct)], capture_output=True, text=True).stdout)
    return rc


def _label(pid: int, args: dict[int, str], parent: dict[int, int]) -> str:
    """The job a process belongs to: the nearest ancestor (or itself) whose arguments name one."""
    for _ in range(40):
        a = args.get(pid, "")
        m = re.search(r"workflow\.scripts\.(\w+)", a)
        if m:
            backend = re.search(r"--backend (\S+)", a)
            name = f"{m.group(1)} {backend.group(1)}" if backend else m.group(1)
            return f"{name} (timing replica)" if "--timing-replica" in a else name
        m = re.search(r"-m (reports\.\w+|workflow\.lib\.\w+)", a)
        if m:
            return m.group(1)
        if "snakemake" in a:
            return "snakemake"
        if re.search(r"\b(pip|uv)\b", a):
            return "install"
        if pid not in parent:
            break
        pid = parent[pid]
    return "other"


def summarize(out: Path) -> list[tuple[str, float, int]]:
    """(job, CPU seconds, processes), largest first, from a recorded folder."""
    args: dict[int, str] = {}
    parent: dict[int, int] = {}
    for line in (out / "ps.txt").read_text().splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit():
            args[int(parts[0])], parent[int(parts[0])] = parts[2], int(parts[1])
    cpu: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    records = []
    for line in (out / "pacct.txt").read_text().splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) > 10 and f[9].isdigit():  # v3 records: comm, version, utime, stime, ..., pid, ppid
            records.append((int(f[9]), int(f[10]), (float(f[2]) + float(f[3])) / 100))
    for pid, ppid, _ in records:
        parent.setdefault(pid, ppid)
    for pid, _, seconds in records:
        job = _label(pid, args, parent)
        cpu[job] += seconds
        count[job] += 1
    return [(job, cpu[job], count[job]) for job, _ in cpu.most_common()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="", help="folder for the raw records (default: a temporary one)")
    ap.add_argument("--summarize", metavar="DIR", default="", help="only print the table of a recorded folder")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = ap.parse_args(argv)
    if args.summarize:
        out, rc = Path(args.summarize), 0
    else:
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            ap.error("give the command to run after --")
        out = Path(args.out or tempfile.mkdtemp(prefix="fwbench-acct-"))
        rc = record(cmd, out)
    rows = summarize(out)
    total = sum(s for _, s, _ in rows)
    print("| job | CPU s | share | processes |\n|---|---|---|---|")
    for job, seconds, n in rows:
        print(f"| {job} | {seconds:.0f} | {100 * seconds / total:.0f}% | {n} |")
    print(f"| all | {total:.0f} | 100% | {sum(n for *_, n in rows)} |")
    print(f"raw records: {out}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
