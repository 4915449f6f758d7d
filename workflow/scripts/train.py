"""Train one (backend, device) on its experiments, once per seed: a run result and an MLflow run per
training.

One process for every experiment and seed: the framework is imported once (TensorFlow's import alone
costs about 6 s of CPU, more than most of its trainings). Per experiment, only the first seed's
training (or every seed's, --time-all-seeds) is timed; the others are trained for quality only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from workflow.lib import timing

PER_RUN_FIGURES = ("confusion",)  # with the decision boundary of a 2-D dataset; MLflow charts the loss metric itself


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--experiments", nargs="+", required=True, help="names in --resolved, trained in this order")
    ap.add_argument("--resolved", required=True, help="results/experiments.json: name -> resolved experiment")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--reference-backend", default="", help="parity against this backend's run results (cpu)")
    ap.add_argument(
        "--reference-seeds",
        type=int,
        nargs="*",
        default=None,
        help="the seeds the reference trained (default: --seeds): parity judges final metrics against their spread",
    )
    ap.add_argument("--machine", default="", help="results/machine.json, for the ceiling")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--min-repeat-seconds", type=float, required=True)
    ap.add_argument("--time-all-seeds", action="store_true", help="time every seed, not only the first")
    ap.add_argument("--inference-batch", type=int, required=True)
    ap.add_argument("--epochs-scale", type=float, required=True)
    ap.add_argument("--results", default="results", help="datasets are read from and run results written under it")
    ap.add_argument("--uri", default="")
    ap.add_argument("--mlflow-experiment", required=True)
    ap.add_argument("--no-mlflow", action="store_true", help="write the run results only")
    ap.add_argument("--no-mlflow-figures", action="store_true", help="log no figures as MLflow artifacts")
    ap.add_argument(
        "--timing-replica",
        metavar="OUT",
        default="",
        help="time every experiment's first seed only, as the training job would, and write the timings to OUT "
        "(one more fresh process for the spread between processes); no training for quality, no MLflow",
    )
    ap.add_argument(
        "--timing-processes",
        type=int,
        default=1,
        help="fresh processes that time each experiment: this job plus N-1 timing replicas it starts at its end",
    )
    args = ap.parse_args(argv)
    # Before any framework starts: thread variables set, NumPy's BLAS limited, pinned off the timing CPUs.
    timing.prepare_process(args.threads)
    if not args.timing_replica:
        _private_compile_cache()

    from workflow.lib import catalogue
    from workflow.lib.plan import run_file
    from workflow.lib.runner import JobConfig, run_job

    resolved = json.loads(Path(args.resolved).read_text())
    missing = [e for e in args.experiments if e not in resolved]
    if missing:
        raise SystemExit(f"experiments {missing} are not in {args.resolved}; rerun the workflow to rewrite it")
    machine = json.loads(Path(args.machine).read_text()) if args.machine else {}
    # A replica quotes no compile time, so it skips the framework's start-up network: its first
    # experiment's untimed compile absorbs it (and loads the job's compiled graphs from the job's cache).
    warmup = None if args.timing_replica else _warm_up(args.backend, args.device, args.threads)
    # What the replicas will be told, asked before the first experiment compiles (Backend.replica_env).
    replica_env = {} if args.timing_replica else _replica_env(args.backend, args.threads)
    cfg = JobConfig(
        threads=args.threads,
        repeats=args.repeats,
        seeds=args.seeds,
        time_all_seeds=args.time_all_seeds,
        inference_batch=args.inference_batch,
        epochs_scale=args.epochs_scale,
        min_repeat_seconds=args.min_repeat_seconds,
        results=args.results,
        ceiling_gflops=machine.get("ceiling_gflops"),
        framework_warmup_seconds=warmup,
    )
    if args.timing_replica:
        return _time_replica(args, resolved, cfg)
    held = []  # the first seed's runs: written once the replicas' timings are pooled in
    for name in args.experiments:
        exp = catalogue.Experiment(**resolved[name])
        dataset = Path(args.results) / "datasets" / f"{exp.dataset}.npz"
        references = {}
        if args.reference_backend and args.reference_backend != args.backend:
            for seed in sorted({*args.seeds, *(args.reference_seeds or [])}):
                ref = Path(run_file(name, args.reference_backend, "cpu", seed, args.results))
                references[seed] = json.loads(ref.read_text())
        for result in run_job(exp, args.backend, args.device, dataset, cfg, references):
            if result["seed"] == args.seeds[0] and args.timing_processes > 1:
                held.append(result)
            else:
                _finish(result, args)
    if held:
        replicas = _run_replicas(argv if argv is not None else sys.argv[1:], args, replica_env)
        for result in held:
            pool_into(result, replicas.get(result["experiment"], []))
            _finish(result, args)
    return 0


def _finish(result: dict, args: argparse.Namespace) -> None:
    """Print, log to MLflow, write: one run result."""
    from workflow.lib.plan import run_file

    run = f"{result['experiment']} {args.backend}-{args.device} seed {result['seed']}"
    print(f"{run}: {result['status']} {result['message']}")
    for flag in result.get("flags", []):
        print(f"flag: {flag}")
    if not args.no_mlflow:
        _log(result, args)
    write_result(result, Path(run_file(result["experiment"], args.backend, args.device, result["seed"], args.results)))
    sys.stdout.flush()


def pool_into(result: dict, replicas: list[dict]) -> None:
    """The run's timings pooled with its replicas' (measure.pool_processes); the run's flags follow."""
    from workflow.lib.measure import pool_processes

    own = result["timings"]
    if not replicas or not own.get("train_samples_per_s"):
        return
    pooled = pool_processes([own, *replicas])
    others = [f for f in result["flags"] if f not in own["flags"]]  # parity, variant: not timing flags
    for key in ("timed", "framework_warmup_seconds", "training_wall", "time_to_target"):
        if key in own:
            pooled[key] = own[key]
    result["timings"], result["flags"] = pooled, pooled["flags"] + others


def _run_replicas(argv: list[str], args: argparse.Namespace, extra_env: dict[str, str]) -> dict[str, list[dict]]:
    """Start the timing replicas, each a fresh process (`--timing-replica`), all at once, and read
    their timings back: experiment -> one timings dict per replica that timed it. A replica that fails
    costs its samples (a warning), never the job's results.

    All at once: a replica's untimed work (its imports, its untimed compile epochs) runs at SCHED_IDLE
    beside the other replicas' timed sections, which still take the timing slot one at a time; one
    after the other, each replica's start-up waited for the last one's timing, and on an idle CPU."""
    import subprocess

    env = {**os.environ, **extra_env}
    out: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"replica{r}.json" for r in range(1, args.timing_processes)]
        cmd = [sys.executable, "-m", "workflow.scripts.train", *argv, "--timing-replica"]
        procs = [subprocess.Popen([*cmd, str(p)], stdout=sys.stdout, stderr=sys.stderr, env=env) for p in paths]
        for r, (proc, path) in enumerate(zip(procs, paths), 1):
            code = proc.wait()
            if code != 0 or not path.exists():
                print(f"warning: timing replica {r} failed (exit {code})", file=sys.stderr)
                continue
            for name, t in json.loads(path.read_text())["experiments"].items():
                out.setdefault(name, []).append(t)
    return out


def _replica_env(backend: str, threads: int) -> dict[str, str]:
    """The adapter's variables for the timing replicas (Backend.replica_env); none where it cannot say."""
    import backends

    try:
        return backends.get_backend(backend, threads=threads).replica_env()
    except Exception as e:  # noqa: BLE001 - the replicas then find out for themselves
        print(f"warning: no replica settings ({type(e).__name__}: {e})", file=sys.stderr)
        return {}


def _time_replica(args: argparse.Namespace, resolved: dict, cfg) -> int:
    """A timing replica: every experiment's first seed timed in this fresh process, to one file."""
    import backends
    from workflow.lib import catalogue
    from workflow.lib.runner import time_only

    backend = backends.get_backend(args.backend, threads=args.threads)
    out: dict = {"backend": args.backend, "device": args.device, "seed": args.seeds[0], "experiments": {}}
    for name in args.experiments:
        exp = catalogue.Experiment(**resolved[name])
        dataset = Path(args.results) / "datasets" / f"{exp.dataset}.npz"
        try:
            out["experiments"][name] = time_only(exp, backend, args.device, dataset, cfg)
        except Exception as e:  # noqa: BLE001 - the job's own run records the failure; this process adds nothing
            print(f"warning: {name} not timed in this replica ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        t = out["experiments"][name]
        print(f"{name} {args.backend}-{args.device}: {t['train_samples_per_s']['median']:.4g} samples/s {t['flags']}")
    write_json(out, Path(args.timing_replica))
    return 0


def _private_compile_cache() -> None:
    """The frameworks' on-disk compile caches (torch.compile's, JAX's and TensorFlow's XLA) in a folder
    of this job's own, removed when it ends: its compile time is a cold compile on every run and machine
    (with the shared default under /tmp it depended on whether an earlier run had compiled the same
    graphs), and its timing replicas, which inherit the folder, load what it compiled (measured on the
    moons MLP: a replica's first epoch 1.30 -> 1.02 s on TensorFlow, 0.69 -> 0.28 s on JAX, and torch's
    scan graph about 5 s less). Set before any framework is imported: each reads these at start-up."""
    import atexit
    import shutil

    path = tempfile.mkdtemp(prefix="fwbench-compile-cache-")
    os.environ.update(compile_cache_env(path, os.environ.get("TF_XLA_FLAGS", "")))
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def compile_cache_env(path: str, tf_xla_flags: str = "") -> dict[str, str]:
    """The variables that put torch.compile's, JAX's and TensorFlow's XLA caches under path."""
    return {
        "TORCHINDUCTOR_CACHE_DIR": path,
        "JAX_COMPILATION_CACHE_DIR": os.path.join(path, "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # the default 1 s skips every small net
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "TF_XLA_FLAGS": f"{tf_xla_flags} --tf_xla_persistent_cache_directory={os.path.join(path, 'xla')}".strip(),
    }


def _warm_up(backend: str, device: str, threads: int) -> float | None:
    """The framework's one-time start-up, paid before the first experiment (measure.warm_up). A
    failure here (say, no such device) is left to each training, which records it."""
    import backends
    from workflow.lib.measure import warm_up

    try:
        seconds = warm_up(backends.get_backend(backend, threads=threads), device)
    except Exception as e:  # noqa: BLE001 - every training records its own failure
        print(f"warning: framework warm-up failed ({type(e).__name__}: {e})", file=sys.stderr)
        return None
    print(f"{backend}-{device}: framework warm-up {seconds:.2f} s")
    return seconds


def _log(result: dict, args: argparse.Namespace) -> None:
    """One MLflow run with the training's weights (and framework model, for the peers); its figures only
    for a timed training (the seeds' curves are in the report), and no throughput chart (one bar per
    run: the report compares the backends)."""
    from reports.plots import write_figures
    from workflow.lib.tracking import log_run, resolve_uri

    with tempfile.TemporaryDirectory() as tmp:
        try:
            timed = bool(result["timings"].get("timed"))
            plots = (
                write_figures([result], Path(tmp), args.results, kinds=PER_RUN_FIGURES)
                if timed and not args.no_mlflow_figures
                else []
            )
            uri = resolve_uri(args.uri or None, args.results)
            weights = getattr(result, "weights", None)  # runner.RunResult's trained params, never in the JSON
            log_run(result, plots, uri, args.mlflow_experiment, args.results, weights=weights)
        except Exception as e:  # noqa: BLE001 - the computed result is kept either way
            result["mlflow"] = {"error": f"{type(e).__name__}: {e}"}
            print(f"warning: MLflow logging failed, run result kept: {e}", file=sys.stderr)


def write_result(result: dict, path: Path) -> None:
    """A run result, validated against its schema first: a writer bug fails here, not in a reader."""
    from reports import run_schema

    clean = _clean(result)
    bad = run_schema.problems(clean)
    if bad:
        raise ValueError(f"run result for {path} breaks {run_schema.PATH.name}: {'; '.join(bad[:3])}")
    write_json(clean, path)


def write_json(obj: dict, path: Path) -> None:
    """Atomically: a reader never sees half a file, a killed job leaves none.

    The file gets the mode a plain open() would give it (0666 less the umask), not mkstemp's
    0600, so a team's shared results folder stays readable by the team.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, "w") as f:
        json.dump(_clean(obj), f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _clean(o):
    """JSON-safe: NumPy to Python, NaN/inf to null (strict JSON readers reject NaN)."""
    import math

    import numpy as np

    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


if __name__ == "__main__":
    sys.exit(main())
