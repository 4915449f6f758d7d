"""What a timed section's CPUs did besides the section: their busy time (/proc/stat) and the CPU time of
the other processes that run at normal priority where they may land on those CPUs (/proc/<pid>/stat).

Why both: a timed step that waits on its framework's own threads leaves its CPU idle in between (Keras
on TensorFlow at CPU/wall 0.6-0.8); the other jobs' untimed work, at SCHED_IDLE, runs in those gaps
and yields the moment a timed thread wakes. That time is busy on the slot's CPUs but taken from no
one, and counting it flagged Keras-on-TF's mnist10k-mlp in the default run at ed4dcad (19%). So the
foreign load of a section is the slot CPUs' busy time not its own, but no more than the CPU time of
other normal-priority processes allowed on those CPUs. (The threads' own run-queue wait cannot tell
the two apart: Keras-on-TF's threads waited 1.36 s of a 3.1 s section for one another on an idle
machine.) A process's own CPU time only: its waited-for children's (cutime) arrives whole when they
are reaped, whenever they ran (a burner killed before the window, reaped by init inside it, added its
1.3 s to init's). So a normal-priority process that starts and ends inside a window is missed, and one
that ran on other CPUs is counted (the bound errs towards flagging there)."""

from __future__ import annotations

import os
from pathlib import Path


def busy_ticks(cpus: tuple[int, ...]) -> int:
    """Busy clock ticks (all but idle and iowait) of these CPUs since boot, from /proc/stat."""
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            v = [int(x) for x in vals]
            total += sum(v[:8]) - v[3] - v[4]
    return total


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, scheduling policy, clock ticks of its own CPU time, user and system)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        f = text[text.rfind(")") + 2 :].split()  # f[k - 3] is field k of proc(5); the name may hold spaces
        out[int(name)] = (int(f[1]), int(f[38]), int(f[11]) + int(f[12]))
    return out


def others_ticks(cpus: tuple[int, ...]) -> dict[int, tuple[int, int]] | None:
    """pid -> (policy, CPU ticks) of every process but this one and its descendants that may run on
    `cpus`; None where /proc does not tell."""
    try:
        procs = _processes()
    except (OSError, IndexError, ValueError):
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    mine, todo = set(), [os.getpid()]
    while todo:  # this process and its descendants
        pid = todo.pop()
        mine.add(pid)
        todo.extend(children.get(pid, []))
    out = {}
    want = set(cpus)
    for pid, (_, policy, ticks) in procs.items():
        if pid in mine:
            continue
        try:
            if not want & os.sched_getaffinity(pid):
                continue
        except OSError:
            continue
        out[pid] = (policy, ticks)
    return out


def normal_priority_seconds(before: dict | None, after: dict | None) -> float | None:
    """CPU seconds used between two `others_ticks` snapshots by the processes at normal priority at the
    end (SCHED_IDLE ones yield to a timed thread; a process new in the window counts whole)."""
    if before is None or after is None:
        return None
    ticks = sum(max(0, t - before.get(pid, (0, 0))[1]) for pid, (policy, t) in after.items() if policy != os.SCHED_IDLE)
    return ticks / os.sysconf("SC_CLK_TCK")
