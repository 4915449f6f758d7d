"""One clock for every timed section: CPU sets, the machine-wide timing slots, proof of threads,
foreign load, and the statistics quoted for a timing.

Why: two timed sections sharing a core, or untimed work (imports, quality trainings, MLflow
logging) landing on a timed core, moved medians by 0.1-3x between `--cores 1` and `--cores 8`.
So the CPUs are split once per machine into timing slots (the last `threads * slots` CPUs; one
CPU stays out of every slot where the machine has more than one slot needs). A job starts as
untimed work: every thread at SCHED_IDLE priority (it runs only on CPU time nothing else wants),
free to use every CPU. Its timed part waits for a slot (a file lock per host, so slots are shared
by every job on the machine whichever Snakemake started it), then runs at normal priority with
every thread pinned to the slot's CPUs, where untimed work can only take the time it leaves idle.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from workflow.lib import cpu_load

CPU_WALL_TOLERANCE = 1.15  # a timed section may use at most threads x this of CPU per wall second
FOREIGN_LOAD_LIMIT = 0.10  # share of the slot CPUs' time other processes took from the section before a flag
UNSTABLE_SPREAD = 0.10  # interquartile range / median above this flags a timing "unstable" (pyperf's rule)
SLOT_WAIT_S = 6 * 3600
CPUS_ENV = "FWBENCH_CPUS"  # the CPU set the first fwbench process was given, inherited by its children
_START_CPUS = sorted(
    int(c) for c in (os.environ.get(CPUS_ENV) or ",".join(map(str, os.sched_getaffinity(0)))).split(",")
)

# The scheduling policy this process started with, before any of it was lowered: SCHED_IDLE for every
# job of a local pipeline run (the Snakefile's onstart lowers Snakemake's own, which its jobs inherit).
START_POLICY = os.sched_getscheduler(0)


@dataclass(frozen=True)
class Layout:
    """Which CPUs time (one tuple per slot) and which take untimed work."""

    slots: tuple[tuple[int, ...], ...]
    untimed: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"slots": [list(s) for s in self.slots], "untimed": list(self.untimed)}


def layout(threads: int, cpus: list[int] | None = None) -> Layout:
    """Slots of `threads` CPUs each from the end of the CPU list, keeping at least one CPU out of
    them where the machine has more CPUs than one slot needs; untimed work may use every CPU."""
    cpus = sorted(cpus if cpus is not None else _START_CPUS)
    threads = max(1, min(int(threads), len(cpus)))
    n_slots = max(1, (len(cpus) - 1) // threads) if len(cpus) > threads else 1
    timed = cpus[len(cpus) - n_slots * threads :]
    slots = tuple(tuple(timed[i * threads : (i + 1) * threads]) for i in range(n_slots))
    return Layout(slots, tuple(cpus))


def prepare_process(threads: int) -> Layout:
    """First thing a job does: thread variables for the frameworks it will import, NumPy's BLAS
    pool limited now (it may already be loaded), every thread at idle priority on the untimed CPUs."""
    from threadpoolctl import threadpool_limits

    from backends.base import set_thread_env

    os.environ[CPUS_ENV] = ",".join(map(str, _START_CPUS))
    set_thread_env(threads)
    threadpool_limits(limits=threads)
    lay = layout(threads)
    pin(lay.untimed)
    set_policy(os.SCHED_IDLE)
    return lay


def set_policy(policy: int) -> None:
    """Scheduling policy of every thread of this process (SCHED_IDLE for untimed work)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(tid), policy, os.sched_param(0))
        except OSError:  # a thread that ended meanwhile, or a policy this kernel refuses
            continue


def pin(cpus: tuple[int, ...] | list[int]) -> None:
    """Pin every thread of this process (frameworks start their pools early) to `cpus`."""
    cpus = set(cpus)
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # a thread that ended meanwhile
            continue


def _cpu_seconds() -> float:
    """CPU time of this process (every thread) plus that of its children that ended and were waited
    for: a compiler a framework runs as a subprocess (inductor's gcc) is the job's own work, not
    foreign load."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


@dataclass
class Window:
    """Wall time, the job's CPU time, the CPUs' busy time and the CPU time of other normal-priority
    processes that may run on them (None where /proc does not tell) over one stretch of a section."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    busy_s: float = 0.0
    others_s: float | None = 0.0

    def __add__(self, other: Window) -> Window:
        others = None if self.others_s is None or other.others_s is None else self.others_s + other.others_s
        return Window(self.wall_s + other.wall_s, self.cpu_s + other.cpu_s, self.busy_s + other.busy_s, others)


@contextmanager
def _window(cpus: tuple[int, ...]):
    """Measure the enclosed stretch into the yielded Window."""
    w = Window()
    others0 = cpu_load.others_ticks(cpus)
    busy0, cpu0, w0 = cpu_load.busy_ticks(cpus), _cpu_seconds(), time.perf_counter()
    try:
        yield w
    finally:
        w.wall_s, w.cpu_s = time.perf_counter() - w0, _cpu_seconds() - cpu0
        w.busy_s = (cpu_load.busy_ticks(cpus) - busy0) / os.sysconf("SC_CLK_TCK")
        w.others_s = cpu_load.normal_priority_seconds(others0, cpu_load.others_ticks(cpus))


@dataclass
class Section:
    """What one timed section measured about itself (not the figure it timed).

    wall_s, cpu_s, foreign_share and the flags are those of the *quoted* part: the stretches whose
    throughput is reported (`with sec.quoted():`), not compilation or probes. The whole section (slot
    held to released) is recorded apart in `whole`. Where nothing was marked quoted, the whole is judged."""

    cpus: tuple[int, ...]
    threads: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    foreign_share: float = 0.0
    normal_priority_others_s: float | None = None
    loadavg_before: float = 0.0
    loadavg_after: float = 0.0
    waited_s: float = 0.0
    flags: list[str] = field(default_factory=list)
    whole: dict = field(default_factory=dict)
    _quoted: list[Window] = field(default_factory=list, repr=False)

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @contextmanager
    def quoted(self):
        """Mark a stretch whose figures are quoted: CPU/wall and foreign load are judged on these."""
        with _window(self.cpus) as w:
            yield w
        self._quoted.append(w)

    def finish(self, whole: Window) -> None:
        """Fill in the judged figures from the quoted stretches (or the whole section), and the flags."""
        self.whole = {
            "wall_s": whole.wall_s,
            "cpu_s": whole.cpu_s,
            "foreign_share": _foreign(whole, self.cpus),
            "normal_priority_others_s": whole.others_s,
        }
        judged = sum(self._quoted, Window()) if self._quoted else whole
        self.wall_s, self.cpu_s, self.foreign_share = judged.wall_s, judged.cpu_s, _foreign(judged, self.cpus)
        self.normal_priority_others_s = judged.others_s
        self.flags = judge(self)

    def to_dict(self) -> dict:
        return {
            "cpus": list(self.cpus),
            "threads": self.threads,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "cpu_per_wall": self.cpu_per_wall,
            "foreign_share": self.foreign_share,
            "normal_priority_others_s": self.normal_priority_others_s,
            "judged_on": "quoted part" if self._quoted else "whole section",
            "whole": dict(self.whole),
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
            "waited_for_slot_s": self.waited_s,
            "process_started_idle": START_POLICY == os.SCHED_IDLE,
            "flags": list(self.flags),
        }


def _foreign(w: Window, cpus: tuple[int, ...]) -> float:
    """Share of the CPUs' time over the window that other processes than this job (and its children)
    took: their busy time not the job's, but no more than other normal-priority processes used
    (workflow.lib.cpu_load: SCHED_IDLE work in the gaps of a waiting step takes nothing)."""
    other = max(0.0, w.busy_s - w.cpu_s)
    if w.others_s is not None:
        other = min(other, w.others_s)
    return other / max(w.wall_s * len(cpus), 1e-9)


def judge(sec: Section) -> list[str]:
    """The flags a section earns: threads not honoured, or foreign load on its CPUs."""
    flags = []
    if sec.cpu_per_wall > sec.threads * CPU_WALL_TOLERANCE:
        flags.append(
            f"threads not honoured: CPU/wall {sec.cpu_per_wall:.2f} > {sec.threads} thread(s) x {CPU_WALL_TOLERANCE}"
        )
    if sec.foreign_share > FOREIGN_LOAD_LIMIT:
        flags.append(f"foreign load: other processes used {sec.foreign_share:.0%} of the timed CPUs")
    return flags


def slot_dir(results: str | Path) -> Path:
    return Path(results) / ".timing" / socket.gethostname()


@contextmanager
def timed_slot(results: str | Path, lay: Layout, threads: int, wait_s: float = SLOT_WAIT_S):
    """Hold one timing slot (waiting for a free one), pinned to its CPUs; yields the Section,
    filled in on exit. The process goes back to the CPUs it had before (a job's untimed CPUs)."""
    d = slot_dir(results)
    d.mkdir(parents=True, exist_ok=True)
    t_wait = time.perf_counter()
    lock, cpus = None, None
    while lock is None:
        for i, slot in enumerate(lay.slots):
            candidate = FileLock(str(d / f"slot-{i}.lock"))
            try:
                candidate.acquire(timeout=0)
                lock, cpus = candidate, slot
                break
            except Timeout:
                continue
        if lock is None:
            if time.perf_counter() - t_wait > wait_s:
                raise TimeoutError(f"no timing slot free in {wait_s:.0f} s; is another benchmark holding {d}?")
            time.sleep(0.05)
    try:
        with _held(cpus, threads, time.perf_counter() - t_wait) as sec:
            yield sec
    finally:
        lock.release()


def lane_cpus(lay: Layout) -> tuple[int, ...]:
    """The CPUs outside every timing slot: the compile lane's (empty where every CPU is a slot's)."""
    timed = {c for slot in lay.slots for c in slot}
    return tuple(c for c in lay.untimed if c not in timed)


@contextmanager
def compile_lane(results: str | Path, lay: Layout, threads: int, wait_s: float = SLOT_WAIT_S):
    """Where a job's quoted compile time is measured: the CPUs outside the slots, at normal priority
    (the untimed work there runs at SCHED_IDLE and yields), one job at a time (a file lock per host).
    Compiling in the timing slot made the slot, the run's one serial resource, wait on compilers
    (torch.compile's ~8 s a network, 18 networks a job); here compilation runs beside the timed
    sections of other jobs. Where every CPU is a slot's, the compile runs in a slot as before."""
    cpus = lane_cpus(lay)
    if not cpus:
        with timed_slot(results, lay, threads, wait_s) as sec:
            yield sec
        return
    d = slot_dir(results)
    d.mkdir(parents=True, exist_ok=True)
    t_wait = time.perf_counter()
    lock = FileLock(str(d / "compile-lane.lock"))
    try:
        lock.acquire(timeout=wait_s, poll_interval=0.05)
    except Timeout:
        why = f"the compile lane was not free in {wait_s:.0f} s; is another benchmark holding {d}?"
        raise TimeoutError(why) from None
    try:
        with _held(cpus, threads, time.perf_counter() - t_wait) as sec:
            yield sec
    finally:
        lock.release()


@contextmanager
def _held(cpus: tuple[int, ...], threads: int, waited_s: float):
    """The body of a held slot or lane: normal priority, pinned to `cpus`, measured into the yielded
    Section; afterwards the process's CPUs and policy as they were."""
    sec = Section(cpus=cpus, threads=threads, waited_s=waited_s)
    before = tuple(os.sched_getaffinity(0))  # the untimed CPUs in a job (prepare_process); all of them elsewhere
    policy = os.sched_getscheduler(0)
    try:
        set_policy(os.SCHED_OTHER)
        pin(cpus)
        sec.loadavg_before = os.getloadavg()[0]
        with _window(cpus) as whole:
            yield sec
        sec.loadavg_after = os.getloadavg()[0]
        sec.finish(whole)
    finally:
        pin(before)
        set_policy(policy)


def summarize(values: list[float], groups: list[list[float]] | None = None) -> dict:
    """Median, quartiles, an order-statistic interval of the median at its real confidence level
    (workflow.lib.stats), the raw values, and an "unstable" flag when the interquartile range exceeds
    UNSTABLE_SPREAD of the median.

    With `groups` (the samples of each fresh process; `values` is then ignored) the figures are those
    of every sample pooled, and the interval is that of the process medians: samples of one process
    are not independent draws of what a rerun gives (the process's own layout, placement and code
    alignment shift them together), so only the processes count as independent. Beside it: each
    process's own figures, the within-process spread (median over processes of IQR / median) and the
    between-process spread (largest over smallest process median, minus 1); "unstable" is then judged
    on the within-process spread."""
    import numpy as np

    from workflow.lib.stats import median_interval

    def finite(vs):
        return [float(v) for v in vs if v is not None and np.isfinite(v)]

    groups = [g for g in (finite(g) for g in groups) if g] if groups is not None else None
    a = np.asarray([v for g in groups for v in g] if groups is not None else finite(values), dtype=np.float64)
    if a.size == 0:
        return {"median": None, "q1": None, "q3": None, "interval": None, "raw": [], "n": 0, "unstable": None}
    med = float(np.median(a))
    q1, q3 = (float(v) for v in np.percentile(a, [25, 75]))
    out = {
        "median": med,
        "q1": q1,
        "q3": q3,
        "interval": median_interval(a),
        "raw": a.tolist(),
        "n": int(a.size),
        "unstable": bool(med > 0 and (q3 - q1) / med > UNSTABLE_SPREAD),
    }
    if groups is not None:
        procs = [summarize(g) for g in groups]
        medians = [p["median"] for p in procs]
        out["interval"] = {**median_interval(medians), "method": f"order statistics of {len(procs)} process medians"}
        out["processes"] = [{k: p[k] for k in ("median", "q1", "q3", "n")} for p in procs]  # raw: in order, pooled
        within = [(p["q3"] - p["q1"]) / p["median"] for p in procs if p["median"]]
        out["within_process_spread"] = float(np.median(within)) if within else None
        out["between_process_spread"] = float(max(medians) / min(medians) - 1) if min(medians) > 0 else None
        # "unstable" is a process's own noise; the pooled IQR would hold the between-process shifts too
        # (reported beside it), and then flag most figures on any machine.
        out["unstable"] = bool(
            out["within_process_spread"] is not None and out["within_process_spread"] > UNSTABLE_SPREAD
        )
    return out
