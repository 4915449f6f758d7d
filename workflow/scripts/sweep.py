"""One sweep job: a spec at every batch size and hidden width on one backend and device, each point
timed in a timing slot by workflow.lib.measure (as a run is); writes
results/sweeps/{sweep}/{backend}-{device}.json and logs one MLflow run (metrics keyed by step =
batch size, or = width for the width sweep).

    python -m workflow.scripts.sweep --sweep moons-mlp --spec-json '{...}' --backend jax --device cpu \\
        --batch-sizes 8 32 --widths 16 64 --threads 1 --repeats 3 --min-repeat-seconds 0.05 \\
        --steps-per-epoch 4 --seed 0 --machine results/machine.json --results results \\
        --mlflow-experiment fwbench --out results/sweeps/moons-mlp/jax-cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from workflow.lib import timing

SCHEMA_VERSION = 1


def measure_point(be, point, args, ceiling: float | None) -> dict:
    """One sweep point's row: its timings (workflow.lib.measure) and the figures the fits use."""
    from backends.spec import init_params
    from workflow.lib.measure import TimingConfig, measure_compiled_first
    from workflow.lib.sweep import rows_for, synthetic

    spec = point.spec
    n = rows_for(point.batch_size, args.steps_per_epoch)
    row = {"axis": point.axis, "value": point.value, "batch_size": point.batch_size, "width": point.width}
    row.update({"hidden": list(spec.hidden), "rows": n, "status": "ok", "message": ""})
    try:
        X, Y = synthetic(spec, n, args.seed)
        cfg = TimingConfig(args.threads, args.repeats, args.min_repeat_seconds, point.batch_size, args.results)
        p0 = init_params(spec, args.seed)
        t = measure_compiled_first(be, spec, X, Y, p0, args.seed + 1, args.device, cfg, ceiling)
    except Exception as e:  # noqa: BLE001 - a failed point is recorded, the sweep goes on
        row.update(status="failed", message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        print(f"{point.axis}={point.value}: failed: {e}", file=sys.stderr)
        return row
    rate = t["train_samples_per_s"]["median"]
    row.update(
        train_samples_per_s=rate,
        seconds_per_step=point.batch_size / rate if rate else None,
        gflops=t["train_gflops"],
        percent_of_ceiling=t["percent_of_ceiling"],
        compile_seconds=t["compile_seconds"],
        cpu_per_wall=t["section"]["cpu_per_wall"],
        variant=t["variant"],
        flags=t["flags"],
        timings=t,
    )
    print(f"{point.axis}={point.value}: {rate:,.0f} samples/s, {t['train_gflops']:.3g} GFLOP/s {t['flags'] or ''}")
    return row


def log_mlflow(result: dict, uri: str, experiment: str, results: str) -> dict:
    """One MLflow run for the sweep job (the store and experiment come from the mlflow_store rule):
    train_samples_per_s / gflops / percent_of_ceiling with step = batch size, width_* with step = width,
    the fits as metrics, the spec as params, backend/device/sweep as tags. A rerun soft-deletes the run
    it replaces."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from workflow.lib.tracking import store_lock, sweep_orphans

    key = f"sweep/{result['sweep']}/{result['backend']}/{result['device']}"
    now = int(time.time() * 1000)
    metrics = []
    for p in result["points"]:
        prefix = "" if p["axis"] == "batch" else "width_"
        for name in ("train_samples_per_s", "gflops", "percent_of_ceiling", "seconds_per_step"):
            if p.get(name) is not None:
                metrics.append(Metric(prefix + name, float(p[name]), now, int(p["value"])))
    for name, v in result["fit"].items():
        if isinstance(v, (int, float)) and v is not None:
            metrics.append(Metric(f"fit_{name}", float(v), now, 0))
    spec = {f"spec.{k}": v for k, v in result["spec"].items() if k != "optimizer"}
    spec.update({f"spec.optimizer.{k}": v for k, v in result["spec"]["optimizer"].items()})
    spec.update(batch_sizes=result["batch_sizes"], widths=result["widths"], threads=result["threads"])
    params = [Param(k, json.dumps(v) if isinstance(v, list) else str(v)) for k, v in spec.items()]
    tags = {"run_key": key, "kind": "sweep", "sweep": result["sweep"], "backend": result["backend"]}
    tags.update(mode=result["mode"], device=result["device"], data="synthetic")
    with store_lock(uri):  # the lock beside the SQLite database (none for a server or PostgreSQL)
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {experiment!r} not found in {uri}; the mlflow_store rule creates it "
                "(run the pipeline, or python -m workflow.scripts.init_store first)"
            )
        sweep_orphans(client, exp.experiment_id)
        for old in client.search_runs([exp.experiment_id], filter_string=f"tags.run_key = '{key}'"):
            client.delete_run(old.info.run_id)
        run_id = client.create_run(exp.experiment_id, run_name=key, tags=tags).info.run_id
        try:
            for i in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[i : i + 1000])
            client.log_batch(run_id, params=params[:100])
            client.set_terminated(run_id, status="FINISHED")
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
    return {"run_id": run_id, "experiment_id": exp.experiment_id, "tracking_uri": uri}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", required=True, help="the sweep's name (a key of sweeps.specs)")
    ap.add_argument("--spec-json", required=True, help="its entry of sweeps.specs, as JSON")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--batch-sizes", type=int, nargs="+", required=True)
    ap.add_argument("--widths", type=int, nargs="*", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--min-repeat-seconds", type=float, required=True)
    ap.add_argument("--steps-per-epoch", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--machine", required=True, help="results/machine.json, for the ceiling")
    ap.add_argument("--results", default="results")
    ap.add_argument("--uri", default="")
    ap.add_argument("--mlflow-experiment", default="", help="empty: no MLflow run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    # Before any framework starts: thread variables set, NumPy's BLAS limited, pinned off the timing CPUs.
    timing.prepare_process(args.threads)

    import backends
    from workflow.lib.environment import fingerprint
    from workflow.lib.sweep import points, summarize_points
    from workflow.lib.tracking import resolve_uri
    from workflow.scripts.train import write_json

    entry = json.loads(args.spec_json)
    sweep_points = points(entry, args.batch_sizes, args.widths)
    machine = json.loads(Path(args.machine).read_text())
    ceiling = machine.get("ceiling_gflops")
    be = backends.get_backend(args.backend, threads=args.threads)
    if args.device not in be.devices():
        raise SystemExit(f"backend {args.backend!r} has no device {args.device!r} here (it sees {be.devices()})")
    rows = [measure_point(be, p, args, ceiling) for p in sweep_points]
    result = {
        "schema_version": SCHEMA_VERSION,
        "sweep": args.sweep,
        "backend": args.backend,
        "mode": be.mode,
        "framework": be.framework,
        "device": args.device,
        "data": "synthetic: standard normal X, random one-hot (softmax) or 0/1 (sigmoid) targets, seeded",
        "spec": sweep_points[0].spec.to_dict() | {"batch_size": entry["batch_size"]},
        "batch_sizes": sorted(args.batch_sizes),
        "widths": sorted(args.widths),
        "threads": args.threads,
        "repeats": args.repeats,
        "min_repeat_seconds": args.min_repeat_seconds,
        "seed": args.seed,
        "machine_ceiling_gflops": ceiling,
        "points": rows,
        "fit": summarize_points([r for r in rows if r["status"] == "ok"], ceiling),
        "environment": fingerprint(args.device, be.device_info(args.device), args.threads, "float32"),
    }
    if args.mlflow_experiment:
        try:
            result["mlflow"] = log_mlflow(
                result, resolve_uri(args.uri or None, args.results), args.mlflow_experiment, args.results
            )
        except Exception as e:  # noqa: BLE001 - the measured sweep is kept either way
            result["mlflow"] = {"error": f"{type(e).__name__}: {e}"}
            print(f"warning: MLflow logging failed, sweep result kept: {e}", file=sys.stderr)
    write_json(result, Path(args.out))
    fit = result["fit"]
    print(f"{args.sweep} {args.backend}-{args.device}: fixed {fit['fixed_us_per_step']} us/step, ", end="")
    print(f"{fit['us_per_sample']} us/sample, half ceiling at batch {fit['half_ceiling_batch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
