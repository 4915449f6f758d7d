"""The timed part of a job: compile time in the compile lane, then steady-state training and
inference throughput in a timing slot (workflow.lib.timing).

One definition of compile time for every backend: the first epoch of the experiment's first
training in the job's process minus the median steady-state epoch, so it holds tracing,
compilation, autotuning and first-touch allocation of that network, whatever the framework calls
them. A job trains every experiment of its backend in one process, so the framework's one-time
start-up (runtime and compiler initialization, thread pools) is paid first by `warm_up` on a network
no experiment uses, and no experiment's compile time depends on its place in the job.

Steady state is time-boxed: one training of `(1 + repeats) * k` epochs after the probe has compiled
the network, k chosen so that each repetition (k consecutive epochs) lasts at least
`min_repeat_seconds`; the first repetition (a warm-up, discarded as pyperf does; it also absorbs the
first epoch of a new training call) is not counted; a repetition's rate is its samples over its
seconds. Slow eager modes thus cost seconds, not whole trainings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from backends.spec import Spec, init_params, make_schedule
from workflow.lib import speed_probe, timing
from workflow.lib.flops import predict_flops_per_sample, train_flops_per_sample

# Repetitions run and discarded before the timed ones (pyperf's warm-up values): torch's first
# block after compilation ran up to 30% slower on mnist10k-mlp (154k-172k against 214k-232k samples/s).
WARMUP_REPEATS = 1
MAX_SCHEDULE_INDICES = 5_000_000  # caps the time-boxed schedule's memory (40 MB of int64 indices)


@dataclass(frozen=True)
class TimingConfig:
    threads: int
    repeats: int
    min_repeat_seconds: float
    inference_batch: int
    results: str


def _with_epochs(spec: Spec, epochs: int) -> Spec:
    return Spec.from_dict({**spec.to_dict(), "epochs": int(epochs)})


WARM_UP_SPEC = Spec(kind="mlp", n_inputs=3, n_outputs=1, hidden=(5,), epochs=2, batch_size=4)


def warm_up(backend, device: str) -> float:
    """Train and predict a 3-5-1 network (no experiment's shape) once, untimed: the framework's
    one-time start-up cost, paid before the first experiment. Returns its wall seconds."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    t0 = time.perf_counter()
    run = backend.train(WARM_UP_SPEC, X, Y, init_params(WARM_UP_SPEC, 0), make_schedule(WARM_UP_SPEC, 12, 1), device)
    backend.predict(WARM_UP_SPEC, run.params, X, device)
    return time.perf_counter() - t0


def measure(backend, spec: Spec, X, Y, p0, seed: int, device: str, cfg: TimingConfig, ceiling: float | None) -> dict:
    """Every timed figure of one job: the compiling probe in the compile lane, the repetitions in a
    timing slot. Returns the run result's "timings" entry (with both sections' proofs and the flags)
    and the variant that ran. The lane's proof is recorded, not judged: a probe that compiles nothing
    (NumPy, a cached numba kernel) lasts a few of /proc/stat's 10 ms ticks, too few to judge a share."""
    lay = timing.layout(cfg.threads)
    n = len(X)
    probe_spec = _with_epochs(spec, 2)
    with timing.compile_lane(cfg.results, lay, cfg.threads) as lane:  # compilation: its own lane, not the slot
        probe = backend.train(probe_spec, X, Y, p0, make_schedule(probe_spec, n, seed), device)
    first, second = (float(s) for s in probe.epoch_seconds[:2])
    with timing.timed_slot(cfg.results, lay, cfg.threads) as sec:
        probe_before = speed_probe.blocks(cfg.threads)  # the machine's speed as this section starts
        k = max(1, math.ceil(cfg.min_repeat_seconds / max(second, 1e-6)))
        k = max(1, min(k, (MAX_SCHEDULE_INDICES // n) // (WARMUP_REPEATS + cfg.repeats)))
        steady_spec = _with_epochs(spec, (WARMUP_REPEATS + cfg.repeats) * k)
        schedule = make_schedule(steady_spec, n, seed)
        with sec.quoted():  # CPU/wall and foreign load are judged here, not on the compiling probe
            steady = backend.train(steady_spec, X, Y, p0, schedule, device)
        epochs = np.asarray(steady.epoch_seconds[WARMUP_REPEATS * k :], dtype=np.float64).reshape(cfg.repeats, k)
        rates = [schedule.samples_per_epoch * k / float(block.sum()) for block in epochs]
        with sec.quoted():
            inference = _inference(backend, spec, steady.params, X, cfg, device)
        machine = speed_probe.reading(probe_before, speed_probe.blocks(cfg.threads))
    train = timing.summarize(rates) | {"probe_gflops": machine}
    epoch_median = float(np.median(epochs))
    flops = train_flops_per_sample(spec, schedule.batch_size)
    gflops = train["median"] * flops / 1e9 if train["median"] else None
    flags = list(sec.flags) + _figure_flags(train, gflops, ceiling)
    percent = 100 * gflops / ceiling if gflops is not None and ceiling else None
    variants = {probe.extra.get("variant"), steady.extra.get("variant")} - {None}
    return {
        "compile_seconds": max(0.0, first - epoch_median),
        "first_epoch_seconds": first,
        "steady_epoch_seconds": epoch_median,
        "epochs_per_repeat": k,
        "samples_per_epoch": schedule.samples_per_epoch,
        "steps_per_epoch": schedule.steps_per_epoch,
        "train_samples_per_s": train,
        "inference_samples_per_s": {
            **timing.summarize(inference),
            "batch_size": cfg.inference_batch,
            "probe_gflops": machine,
        },
        "flops_per_train_sample": flops,
        "flops_per_inference_sample": predict_flops_per_sample(spec),
        "train_gflops": gflops,
        "machine_ceiling_gflops": ceiling,
        "percent_of_ceiling": percent,
        "probe_gflops": machine,
        "probe_source": speed_probe.SOURCE,
        "section": sec.to_dict(),
        "compile_section": lane.to_dict(),
        "flags": flags,
        "variant": " + ".join(sorted(variants)) or None,
        "fallback": probe.extra.get("fallback") or steady.extra.get("fallback"),
    }


def measure_compiled_first(
    backend, spec: Spec, X, Y, p0, seed: int, device: str, cfg: TimingConfig, ceiling: float | None
) -> dict:
    """measure() after one untimed epoch at SCHED_IDLE that compiles the network: for figures whose
    compile time is not the quoted one (a timing replica, whose job's own process compiled cold; a sweep
    point). Compilers stay out of the slot, the run's one serial resource (torch.compile's ~14 s a shape
    held it for 102 s of the moons sweep's 104), and out of the compile lane, which the jobs' quoted cold
    compiles queue for. compile_seconds is then this untimed epoch minus a steady one.

    A per-step eager loop (mode "eager") compiles nothing worth moving, and its epochs are the slow ones
    (tensorflow-eager's blobs4-softmax: 2.65 s an epoch): measure()'s probe, in the lane, is its first
    epoch, and no epoch is spent apart."""
    first = None
    if backend.mode != "eager" or not timing.lane_cpus(timing.layout(cfg.threads)):
        one = _with_epochs(spec, 1)
        first = backend.train(one, X, Y, p0, make_schedule(one, len(X), seed), device)
    t = measure(backend, spec, X, Y, p0, seed, device, cfg, ceiling)
    median = (t.get("train_samples_per_s") or {}).get("median")
    if first is not None and median and len(first.epoch_seconds):
        t["compile_seconds"] = max(0.0, float(first.epoch_seconds[0]) - t["samples_per_epoch"] / median)
    t["compile_measured"] = "untimed, outside the timing slot"
    return t


def _figure_flags(train: dict, gflops: float | None, ceiling: float | None) -> list[str]:
    """Flags of a throughput figure itself: above the machine ceiling (impossible), or a wide spread."""
    flags = []
    percent = 100 * gflops / ceiling if gflops is not None and ceiling else None
    if percent is not None and percent > 100:
        flags.append(f"impossible: {gflops:.1f} GFLOP/s is {percent:.0f}% of the machine ceiling {ceiling:.1f}")
    if train["unstable"]:
        where = "within a process " if "within_process_spread" in train else ""
        flags.append(f"unstable: interquartile range {where}above {timing.UNSTABLE_SPREAD:.0%} of the median")
    return flags


def _inference(backend, spec: Spec, params, X, cfg: TimingConfig, device: str) -> list[float]:
    """Predictions on a fixed batch of `inference_batch` rows: warm-up, then `repeats` repetitions
    of at least min_repeat_seconds / 5 each (inference of a small net is micro-seconds)."""
    reps = int(np.ceil(cfg.inference_batch / len(X)))
    batch = np.tile(X, (reps, 1))[: cfg.inference_batch]
    backend.predict(spec, params, batch, device)  # warm-up (compilation)
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < cfg.min_repeat_seconds / 20 or k == 0:
        backend.predict(spec, params, batch, device)
        k += 1
    out = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        for _ in range(4 * k):
            backend.predict(spec, params, batch, device)
        out.append(4 * k * len(batch) / (time.perf_counter() - t0))
    return out


def pool_processes(timings: list[dict]) -> dict:
    """One run's timings from several fresh processes (the job's own first, then its timing replicas,
    `python -m workflow.scripts.train --timing-replica`): every throughput figure pooled over them with the spread
    within and between processes (timing.summarize's groups); compile time stays the job's own (its
    process compiled first), each process's kept beside it; a flag of any process is the run's."""
    if len(timings) == 1:
        return timings[0]
    out = dict(timings[0])
    for key in ("train_samples_per_s", "inference_samples_per_s"):
        groups = [list(t[key].get("raw") or []) for t in timings]
        extra = {"batch_size": timings[0][key]["batch_size"]} if "batch_size" in timings[0][key] else {}
        out[key] = {**timing.summarize(None, groups), **extra}
        if len(out[key]["processes"]) == len(timings):  # each process's figure beside its own probe
            for proc, t in zip(out[key]["processes"], timings):
                proc["probe_gflops"] = t[key].get("probe_gflops")
        out[key]["probe_gflops"] = _median_or_none([t[key].get("probe_gflops") for t in timings])
    out["compile_seconds_by_process"] = [t["compile_seconds"] for t in timings]
    out["probe_gflops"] = _median_or_none([t.get("probe_gflops") for t in timings])
    out["processes"] = len(timings)
    out["process_sections"] = [t["section"] for t in timings[1:]]  # the replicas'; the job's is "section"
    median = out["train_samples_per_s"]["median"]
    out["train_gflops"] = median * out["flops_per_train_sample"] / 1e9 if median else None
    ceiling = out.get("machine_ceiling_gflops")
    out["percent_of_ceiling"] = 100 * out["train_gflops"] / ceiling if out["train_gflops"] and ceiling else None
    flags = [f for f in timings[0]["flags"] if not f.startswith(("unstable", "impossible"))]
    for i, t in enumerate(timings[1:], start=1):
        flags += [f"process {i + 1}: {f}" for f in t["flags"] if not f.startswith(("unstable", "impossible"))]
    out["flags"] = flags + _figure_flags(out["train_samples_per_s"], out["train_gflops"], ceiling)
    variants = {t.get("variant") for t in timings} - {None}
    out["variant"] = " + ".join(sorted(variants)) or None
    return out


def _median_or_none(values: list) -> float | None:
    """The median of the readings, None unless every process has one (a tree from before the probe)."""
    return float(np.median(values)) if values and all(v is not None for v in values) else None
