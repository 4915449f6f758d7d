"""Steady-state training throughput per backend and mode, under the pipeline's timing rules.

    python -m workflow.scripts.microbench [--repeats 5] [--threads 1 2] [--backends torch jax ...]

Cases: moons-mlp (2-4-2-1 tanh, Adam, batch 32) and mnist10k-mlp (784-128-64-10 relu, SGD, batch 100),
as in the catalogue. First the machine ceiling (workflow.scripts.calibrate) for each thread count;
then each backend in its own process, measured exactly as a pipeline job measures it
(workflow.lib.measure: a timing slot, time-boxed repetitions, CPU/wall, foreign load). Prints
samples/s (median and quartiles), CPU/wall, GFLOP/s, percent of the ceiling, compile seconds,
the variant that ran, any flag, and each backend's ratio to the fastest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("moons-mlp", "mnist10k-mlp")
MIN_REPEAT_SECONDS = 0.5


def measure_one(backend_name: str, experiment: str, repeats: int, threads: int, ceiling: float, results: str) -> dict:
    from workflow.lib import timing

    timing.prepare_process(threads)
    import backends
    import datasets
    from backends.spec import init_params
    from workflow.lib import catalogue
    from workflow.lib.measure import TimingConfig, measure, warm_up
    from workflow.lib.runner import prepare

    exp = catalogue.load()[experiment]
    prep = prepare(datasets.build(exp.dataset), exp)
    spec = exp.spec(prep.X_train.shape[1], prep.n_outputs)
    be = backends.get_backend(backend_name, threads=threads)
    warm_up(be, "cpu")  # the framework's one-time start-up, outside compile time, as in a pipeline job
    cfg = TimingConfig(threads, repeats, MIN_REPEAT_SECONDS, 1024, results)
    Y = prep.Y_train.astype(spec.dtype)
    return measure(be, spec, prep.X_train, Y, init_params(spec, 0), 1, "cpu", cfg, ceiling)


def _k(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def _print_fused_ratio(case: str, threads: int, done: list[dict]) -> None:
    """fused / the fastest framework (every other backend) of one case, the issue-25 figure."""
    fused = [r["train_samples_per_s"]["median"] for r in done if r["backend"] == "fused"]
    others = [r["train_samples_per_s"]["median"] for r in done if r["backend"] != "fused"]
    if fused and others:
        print(f"  {case} threads {threads}: fused / fastest framework {fused[0] / max(others):6.2f}")


def main(argv: list[str] | None = None) -> None:
    import backends

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="*", default=None, help="default: every available backend")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--one", nargs=4, metavar=("BACKEND", "CASE", "CEILING", "RESULTS"), help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.one:
        name, case, ceiling, results = args.one
        print(json.dumps(measure_one(name, case, args.repeats, args.threads[0], float(ceiling), results)))
        return
    names = args.backends or backends.available()
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for threads in args.threads:
            machine = Path(results) / f"machine-{threads}.json"
            cal = [sys.executable, "-m", "workflow.scripts.calibrate", "--threads", str(threads)]
            subprocess.run(cal + ["--results", results, "--out", str(machine)], check=True, capture_output=True)
            ceiling = json.loads(machine.read_text())["ceiling_gflops"]
            print(f"\nthreads {threads}: machine ceiling {ceiling:.1f} GFLOP/s")
            head = f"{'case':13} {'backend':17} {'samples/s':>9} {'q1-q3':>15} {'CPU/wall':>8} {'GFLOP/s':>8}"
            print(f"{head} {'%ceil':>6} {'compile s':>9}  variant / flags")
            for case in args.cases:
                for name in names:
                    cmd = [sys.executable, "-m", "workflow.scripts.microbench", "--one", name, case, str(ceiling)]
                    cmd += [results, "--repeats", str(args.repeats), "--threads", str(threads)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"{case:13} {name:17} failed: {proc.stderr.strip().splitlines()[-1:]}")
                        continue
                    t = json.loads(proc.stdout.strip().splitlines()[-1])
                    tr = t["train_samples_per_s"]
                    rows.append({"case": case, "backend": name, "threads": threads, **t})
                    print(
                        f"{case:13} {name:17} {_k(tr['median']):>9} {_k(tr['q1']) + '-' + _k(tr['q3']):>15} "
                        f"{t['section']['cpu_per_wall']:8.2f} {t['train_gflops']:8.2f} {t['percent_of_ceiling']:6.1f} "
                        f"{t['compile_seconds']:9.2f}  {t['variant']} {'; '.join(t['flags'])}",
                        flush=True,
                    )
                done = [r for r in rows if r["case"] == case and r["threads"] == threads]
                fastest = max((r["train_samples_per_s"]["median"] for r in done), default=None)
                for r in done:
                    ratio = r["train_samples_per_s"]["median"] / fastest
                    print(f"  {case} threads {threads}: {r['backend']:17} {ratio:6.2f} x the fastest")
                _print_fused_ratio(case, threads, done)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
