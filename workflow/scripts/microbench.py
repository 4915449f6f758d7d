"""Steady-state training throughput per backend and mode, printed as a table.

    python -m workflow.scripts.microbench [--repeats 5] [--threads 1] [--backends torch jax ...]

Cases: moons-mlp (2-4-2-1 tanh, Adam, batch 32) and mnist10k-mlp (784-128-64-10 relu, SGD, batch 100),
as in the catalogue. Each backend is measured in its own subprocess (fair thread settings, no
framework sharing a process with another); samples/s = samples of the epochs after the first divided
by their seconds, median and 20-80 percentile of `repeats` trainings, all measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = {"moons-mlp": 20, "mnist10k-mlp": 3}  # experiment -> epochs per timed training


def measure(backend_name: str, experiment: str, epochs: int, repeats: int, threads: int) -> dict:
    import backends
    import datasets
    from backends.spec import init_params, make_schedule
    from workflow.lib import catalogue
    from workflow.lib.metrics import summarize
    from workflow.lib.runner import prepare, steady_throughput

    exp = catalogue.load()[experiment]
    prep = prepare(datasets.build(exp.dataset), exp)
    spec = exp.spec(prep.X_train.shape[1], prep.n_outputs)
    spec = type(spec).from_dict({**spec.to_dict(), "epochs": epochs})
    be = backends.get_backend(backend_name, threads=threads)
    p0, sched = init_params(spec, 0), make_schedule(spec, len(prep.X_train), 1)
    Y = prep.Y_train.astype(spec.dtype)
    first = be.train(spec, prep.X_train, Y, p0, sched)  # compiles
    rates = [steady_throughput(sched, be.train(spec, prep.X_train, Y, p0, sched).epoch_seconds) for _ in range(repeats)]
    return {"compile_seconds": float(first.compile_seconds), **summarize(rates)}


def main(argv: list[str] | None = None) -> None:
    import backends

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="*", default=None, help="default: every available backend")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("BACKEND", "CASE"), help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], CASES[args.one[1]], args.repeats, args.threads)))
        return
    names = args.backends or backends.available()
    rows = []
    print(f"{'case':14} {'backend':18} {'samples/s median':>17} {'p20':>12} {'p80':>12} {'compile s':>10}")
    for case in args.cases:
        for name in names:
            cmd = [
                sys.executable,
                "-m",
                "workflow.scripts.microbench",
                "--one",
                name,
                case,
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{case:14} {name:18} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"case": case, "backend": name, **r})
            print(
                f"{case:14} {name:18} {r['median']:17,.0f} {r['p20']:12,.0f} {r['p80']:12,.0f} "
                f"{r['compile_seconds']:10.2f}",
                flush=True,
            )
        fastest = max((r["median"] for r in rows if r["case"] == case), default=None)
        for r in (r for r in rows if r["case"] == case):
            print(f"  {case}: {r['backend']:18} {r['median'] / fastest:6.2f} x the fastest")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
