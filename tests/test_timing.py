"""The timing rules: CPU layout, timing slots, the proof of threads, foreign load, statistics, and the
measurement of a real backend (workflow.lib.timing, workflow.lib.measure)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext, suppress

import numpy as np
import pytest

import backends
from backends.spec import OptimizerSpec, Spec, init_params
from workflow.lib import stats, timing
from workflow.lib.flops import train_flops_per_sample
from workflow.lib.measure import TimingConfig, measure

CPUS = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs 2 CPUs to run a section beside another")


def test_layout_keeps_one_cpu_out_of_the_slots():
    assert timing.layout(1, [0, 1]) == timing.Layout(slots=((1,),), untimed=(0, 1))
    assert timing.layout(1, [0]) == timing.Layout(slots=((0,),), untimed=(0,))
    eight = timing.layout(2, list(range(8)))
    assert eight.slots == ((2, 3), (4, 5), (6, 7)) and eight.untimed == tuple(range(8))
    assert timing.layout(2, [0, 1]) == timing.Layout(slots=((0, 1),), untimed=(0, 1))


def test_untimed_work_yields_to_a_timed_section(tmp_path):
    """A job's untimed work runs at SCHED_IDLE; inside its slot it runs at normal priority, then idle again."""
    code = (
        "import os, sys; from workflow.lib import timing\n"
        "lay = timing.prepare_process(1); before = os.sched_getscheduler(0)\n"
        "with timing.timed_slot(sys.argv[1], lay, 1): inside = os.sched_getscheduler(0)\n"
        "print(before == os.SCHED_IDLE, inside == os.SCHED_OTHER, os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr


def test_summary_flags_a_wide_spread():
    steady = timing.summarize([100.0, 101.0, 99.0, 100.5, 99.5])
    assert steady["median"] == 100.0 and not steady["unstable"]
    iv = steady["interval"]
    assert iv["low"] <= 100.0 <= iv["high"] and steady["n"] == 5 and iv["level"] == pytest.approx(0.9375)
    assert timing.summarize([100.0, 150.0, 60.0, 100.0, 130.0])["unstable"]
    assert timing.summarize([])["median"] is None


def test_mnist_mlp_flop_count():
    """784-128-64-10 at batch 100 with SGD: ~455k FLOP per training sample (forward 2*in*out per layer,
    backward 2*in*out for dW and for dX, no dX for the first layer, plus bias/activation/update)."""
    sgd = OptimizerSpec(name="sgd", learning_rate=0.1)
    spec = Spec(
        kind="mlp", n_inputs=784, n_outputs=10, hidden=(128, 64), activation="relu", head="softmax", optimizer=sgd
    )
    gemm = 2 * (784 * 128 + 128 * 64 + 64 * 10) * 2 + 2 * (128 * 64 + 64 * 10)
    flops = train_flops_per_sample(spec, 100)
    assert gemm < flops < gemm * 1.02


def test_one_slot_at_a_time(tmp_path):
    lay = timing.Layout(slots=((CPUS[-1],),), untimed=tuple(CPUS))
    with timing.timed_slot(tmp_path, lay, 1):
        holder = subprocess.run(
            [sys.executable, "-c", _TRY_SLOT, str(tmp_path), str(CPUS[-1])], capture_output=True, text=True, timeout=60
        )
    assert holder.stdout.strip() == "busy", holder.stderr
    with timing.timed_slot(tmp_path, lay, 1) as sec:
        assert os.sched_getaffinity(0) == {CPUS[-1]}
    assert os.sched_getaffinity(0) == set(CPUS)  # back where it was
    assert sec.waited_s < 5


_TRY_SLOT = """
import sys
from filelock import FileLock, Timeout
from workflow.lib import stats, timing
try:
    FileLock(str(timing.slot_dir(sys.argv[1]) / "slot-0.lock")).acquire(timeout=0)
    print("free")
except Timeout:
    print("busy")
"""


@two_cpus
@pytest.mark.serial  # needs both CPUs to itself to show CPU/wall above 1
def test_more_threads_than_asked_are_flagged(tmp_path):
    """A section given two CPUs while it claims one thread, running a two-thread BLAS: flagged."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((768, 768)).astype(np.float32)
    lay = timing.Layout(slots=(tuple(CPUS[:2]),), untimed=tuple(CPUS))
    with threadpool_limits(limits=2), timing.timed_slot(tmp_path, lay, threads=1) as sec:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            a @ a
    assert sec.cpu_per_wall > 1.15, sec.to_dict()
    assert any(f.startswith("threads not honoured") for f in sec.flags)


BURN = (
    "import os,time; os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)); {pin}"
    "t=time.time()\nwhile time.time()-t<{seconds}: pass"
)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def foreign(code: str):
    """A process outside this one's tree running `code` (another job's: the job's own children are its
    helpers, not foreign load), killed on exit."""
    cmd = '"$0" -c "$1" >/dev/null 2>&1 & echo $!'  # the shell exits: the process is nobody's child here
    out = subprocess.run(["sh", "-c", cmd, sys.executable, code], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    try:
        yield pid
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@two_cpus
def test_overlapping_work_is_flagged(tmp_path):
    """A busy process (another job's, at normal priority) on the slot's CPU during the section: foreign
    load, flagged."""
    cpu = CPUS[-1]
    with foreign(BURN.format(pin=f"os.sched_setaffinity(0,{{{cpu}}}); ", seconds=4)):
        time.sleep(0.3)
        lay = timing.Layout(slots=((cpu,),), untimed=tuple(CPUS))
        with timing.timed_slot(tmp_path, lay, threads=1) as sec:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 1.0:
                pass
    assert sec.foreign_share > timing.FOREIGN_LOAD_LIMIT, sec.to_dict()
    assert any(f.startswith("foreign load") for f in sec.flags)


@two_cpus
@pytest.mark.serial  # judges CPU/wall and foreign load: needs the machine to itself
def test_the_jobs_own_children_are_not_foreign(tmp_path):
    """A compiler-like subprocess the job starts and waits for, on the slot's CPU, inside the quoted part:
    its CPU time is the job's (RUSAGE_CHILDREN), so CPU/wall stays near 1 and nothing is flagged."""
    cpu = CPUS[-1]
    lay = timing.Layout(slots=((cpu,),), untimed=tuple(CPUS))
    with timing.timed_slot(tmp_path, lay, threads=1) as sec, sec.quoted():
        subprocess.run([sys.executable, "-c", BURN.format(pin="", seconds=1.0)], check=True)  # inherits the pin
    assert 0.9 <= sec.cpu_per_wall <= timing.CPU_WALL_TOLERANCE, sec.to_dict()
    assert sec.foreign_share <= timing.FOREIGN_LOAD_LIMIT and sec.flags == [], sec.to_dict()


@two_cpus
@pytest.mark.serial  # judges CPU/wall and foreign load: needs the machine to itself
def test_foreign_load_is_judged_on_the_quoted_part(tmp_path):
    """Another process busy on the slot's CPU while the section compiles (unquoted) is not held against
    the quoted figure; the same process during the quoted part is flagged."""
    cpu = CPUS[-1]
    lay = timing.Layout(slots=((cpu,),), untimed=tuple(CPUS))

    def spin(seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            pass

    pin = f"os.sched_setaffinity(0,{{{cpu}}}); "
    for during_quoted in (False, True):
        with timing.timed_slot(tmp_path, lay, threads=1) as sec:
            with foreign(BURN.format(pin=pin, seconds=5.0)) if not during_quoted else nullcontext() as pid:
                spin(1.4)  # "compiling", not quoted; the other process is killed at its end
                other_cpu = _cpu_seconds(pid) if pid else None
            with foreign(BURN.format(pin=pin, seconds=1.4)) if during_quoted else nullcontext():
                time.sleep(0.1 if during_quoted else 0)
                with sec.quoted():
                    spin(1.0)
        flagged = any(f.startswith("foreign load") for f in sec.flags)
        assert flagged == during_quoted, (during_quoted, sec.to_dict())
        if not during_quoted:
            assert other_cpu > 0.3, other_cpu  # it did share the slot's CPU during the section


@two_cpus
@pytest.mark.serial  # judges foreign load: needs the machine to itself
def test_idle_work_in_the_sections_gaps_is_not_foreign(tmp_path):
    """A section that sleeps half its time (a step waiting on its own threads), with a SCHED_IDLE burner
    on the slot's CPU (another job's untimed work) filling the gaps: the CPU is busy throughout, but the
    burner yields whenever the section runs, so nothing is taken from it and nothing is flagged. The
    same burner at normal priority makes the section wait for the CPU and is flagged."""
    cpu = CPUS[-1]
    lay = timing.Layout(slots=((cpu,),), untimed=tuple(CPUS))
    idle = f"os.sched_setaffinity(0,{{{cpu}}}); os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)); "
    for policy, pin in (("idle", idle), ("normal", f"os.sched_setaffinity(0,{{{cpu}}}); ")):
        with foreign(BURN.format(pin=pin, seconds=5.0)):
            time.sleep(0.3)
            with timing.timed_slot(tmp_path, lay, threads=1) as sec, sec.quoted() as w:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 1.5:
                    t1 = time.perf_counter()
                    while time.perf_counter() - t1 < 0.005:
                        pass
                    time.sleep(0.005)
        assert (w.busy_s - w.cpu_s) / w.wall_s > 0.3, (policy, sec.to_dict())  # the CPU was busy in the gaps
        flagged = any(f.startswith("foreign load") for f in sec.flags)
        assert flagged == (policy == "normal"), (policy, sec.foreign_share, sec.normal_priority_others_s, w)


def test_measure_a_real_backend(tmp_path):
    """The NumPy reference measured as a job measures it: time-boxed repetitions, proof, FLOP rate;
    with an absurdly low ceiling the figure is marked impossible."""
    spec = Spec(kind="mlp", n_inputs=2, n_outputs=1, hidden=(4, 2), activation="tanh", head="sigmoid", epochs=50)
    X = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    be = backends.get_backend(backends.REFERENCE, threads=1)
    cfg = TimingConfig(threads=1, repeats=5, min_repeat_seconds=0.02, inference_batch=128, results=str(tmp_path))
    t = measure(be, spec, X, Y, init_params(spec, 0), 1, "cpu", cfg, ceiling=1e-9)
    train = t["train_samples_per_s"]
    assert train["n"] == 5 and train["median"] > 0 and len(train["raw"]) == 5
    assert t["epochs_per_repeat"] >= 1 and t["compile_seconds"] >= 0
    assert 0 < t["section"]["cpu_per_wall"] <= 1.15
    assert t["train_gflops"] == pytest.approx(train["median"] * t["flops_per_train_sample"] / 1e9)
    assert t["percent_of_ceiling"] > 100 and any(f.startswith("impossible") for f in t["flags"])
    assert t["variant"] == "numpy"
    # the machine's speed read in the slot beside the section, on the figure as well (stats.units)
    assert t["probe_gflops"] > 0 and train["probe_gflops"] == t["probe_gflops"]
    assert stats.units(train, per_probe=True) == pytest.approx([v / t["probe_gflops"] for v in train["raw"]])


def test_unstable_is_judged_within_a_process():
    """Three steady processes 30% apart: not unstable (each is steady), the shift is the between spread."""
    steady = [[100.0, 101.0, 99.0], [130.0, 131.0, 129.0], [115.0, 116.0, 114.0]]
    s = timing.summarize(None, steady)
    assert not s["unstable"] and s["within_process_spread"] < 0.02
    assert s["between_process_spread"] == pytest.approx(0.30)
    noisy = [[100.0, 130.0, 80.0], [100.0, 125.0, 85.0], [100.0, 120.0, 90.0]]
    assert timing.summarize(None, noisy)["unstable"]


def test_a_replica_compiles_outside_the_slot(tmp_path):
    """measure_compiled_first: one untimed epoch compiles the network first, so the probe in the compile
    lane finds it compiled; its compile time is that untimed epoch's, and both sections are recorded."""
    from workflow.lib.measure import measure_compiled_first

    spec = Spec(kind="mlp", n_inputs=2, n_outputs=1, hidden=(4, 2), activation="tanh", head="sigmoid", epochs=5)
    X = np.random.default_rng(0).standard_normal((256, 2)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    cfg = TimingConfig(threads=1, repeats=3, min_repeat_seconds=0.02, inference_batch=128, results=str(tmp_path))
    fused = backends.get_backend("fused", threads=1)
    t = measure_compiled_first(fused, spec, X, Y, init_params(spec, 0), 1, "cpu", cfg, ceiling=None)
    assert t["compile_measured"].startswith("untimed") and t["compile_seconds"] >= 0
    assert t["train_samples_per_s"]["n"] == 3 and t["section"]["wall_s"] > 0
    assert t["compile_section"]["cpus"] and t["compile_section"]["wall_s"] > 0


def test_compilation_runs_in_its_own_lane(tmp_path):
    """The compile lane is the CPUs outside the slots, at normal priority, one holder at a time; on a
    machine whose every CPU is a slot's it is a slot."""
    lay = timing.layout(1, [0, 1])
    assert timing.lane_cpus(lay) == (0,)
    if os.sched_getaffinity(0) >= {0, 1}:
        with timing.compile_lane(tmp_path, lay, 1) as sec:
            assert os.sched_getaffinity(0) == {0} and os.sched_getscheduler(0) == os.SCHED_OTHER
            with pytest.raises(TimeoutError):  # held: a second holder waits
                with timing.compile_lane(tmp_path, lay, 1, wait_s=0.2):
                    pass
        assert sec.cpus == (0,) and sec.wall_s > 0
    one = timing.layout(1, [0])
    assert timing.lane_cpus(one) == ()
