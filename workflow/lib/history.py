"""Every commit's figures, read back from the MLflow store: one point per parent run (a pipeline
invocation at one git commit and config) and training (experiment, backend, device), in commit order.

    python -m workflow.lib.history [--results results] [--tracking-uri URI] [--experiment NAME]
        [--out results/history.json] [--json] [--figure train_samples_per_s]

What a point holds (plain JSON rows, the only thing reports/ sees): the parent's commit and commit
date (tag fwbench.commit_time, set when the parent is created; older parents fall back to their start
time), the child runs' environment fingerprint, framework versions, variant and a hash of the trained
spec (params spec.*, preprocess.*, dataset), and each figure as {value, samples}: train samples/s
(the timed seed's median; samples: the medians of the fresh processes that timed it, metric
train_samples_per_s_process_median with step = process, or every timed repetition where one process
timed it, metric train_samples_per_s_raw, or the run's result.json for runs logged before those),
compile seconds (the timed seed), each quality metric (value: median over the seeds; samples: one
per seed) and parity (the largest loss-curve deviation over the seeds). Points are like for like
only with the same fingerprint and spec (`like` key); reports/history.py joins those into series,
finds change points and renders them. Reading happens under the store lock on SQLite, as tracking does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from workflow.lib.parent import COMMIT_TIME_TAG
from workflow.lib.run_record import GIT_COMMIT_TAG
from workflow.lib.stats import has_probe, units
from workflow.lib.store import StoreError, check_reachable, client_for, default_uri, redact, resolve_uri, store_lock
from workflow.lib.tracking import PARENT_KEY_TAG, PARENT_RUN_TAG

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

SCHEMA_VERSION = 1
RAW_METRIC = "train_samples_per_s_raw"  # run_record.run_metrics logs it, step = repetition
PROBE_METRIC = "process_probe_gflops"  # run_record.run_metrics logs it, step = fresh process
PROCESS_METRIC = "train_samples_per_s_process_median"  # run_record.run_metrics logs it, step = fresh process
QUALITY = [f"{split}_{m}" for split in ("test", "train") for m in ("accuracy", "f1", "mse", "r2")]
PARITY = "parity_max_rel_loss_deviation"
PAGE = 1000


class HistoryError(RuntimeError):
    """The store or experiment cannot be read; the message names the fix."""


def read_history(uri: str, experiment: str) -> dict:
    """The history of one MLflow experiment as plain rows: {parents, points} in commit order."""
    check_reachable(uri)
    with store_lock(uri):
        client = client_for(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in client.search_experiments())
            raise HistoryError(
                f"no MLflow experiment {experiment!r} in {redact(uri)} (it has: {', '.join(names) or 'none'}); "
                "pass --experiment NAME (the config's mlflow.experiment)"
            )
        runs = _all_runs(client, exp.experiment_id)
        parents = sorted((_parent(r) for r in runs if PARENT_KEY_TAG in r.data.tags), key=_order)
        ids = {p["run_id"] for p in parents}
        children: dict[str, list] = {}
        for r in runs:
            parent = r.data.tags.get(PARENT_RUN_TAG)
            if parent in ids and r.info.status == "FINISHED" and r.data.tags.get("status") == "ok":
                children.setdefault(parent, []).append(r)
        points = []
        for order, p in enumerate(parents):
            p["order"] = order
            groups: dict[tuple, list] = {}
            for r in children.get(p["run_id"], []):
                t = r.data.tags
                groups.setdefault((t.get("experiment"), t.get("backend"), t.get("device"), _like(r)), []).append(r)
            for (exp_name, backend, device, like), rs in sorted(groups.items(), key=lambda kv: kv[0]):
                points.append(_point(client, p, exp_name, backend, device, like, rs))
    for p in parents:
        p.pop("_start", None)
    return {
        "schema_version": SCHEMA_VERSION,
        "tracking_uri": redact(uri),
        "experiment": experiment,
        "read_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parents": parents,
        "points": points,
    }


def _all_runs(client: MlflowClient, exp_id: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs([exp_id], max_results=PAGE, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _parent(run) -> dict:
    t = run.data.tags
    return {
        "run_id": run.info.run_id,
        "commit": t.get(GIT_COMMIT_TAG),
        "commit_time": t.get(COMMIT_TIME_TAG) or None,
        "start_time": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds"),
        "_start": run.info.start_time,
        "status": run.info.status,
        "config_hash": t.get("fwbench.config_hash"),
        "fingerprint": t.get("fingerprint"),
        "versions": {k.removeprefix("version."): v for k, v in sorted(t.items()) if k.startswith("version.")},
    }


def _order(p: dict) -> tuple:
    """Commit date where recorded (git's committer date), else the parent's start; then its start."""
    when = p["commit_time"]
    key = datetime.fromisoformat(when).timestamp() if when else p["_start"] / 1000
    return (key, p["_start"])


def _like(run) -> str:
    """fingerprint/spec hash: what two points must share to be joined into one series."""
    spec = {k: v for k, v in run.data.params.items() if k.startswith(("spec.", "preprocess.")) or k == "dataset"}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    return f"{run.data.tags.get('fingerprint')}/{digest}"


def _seed(run) -> int:
    try:
        return int(run.data.tags.get("seed", 0))
    except ValueError:
        return 0


def _point(client: MlflowClient, parent: dict, experiment: str, backend: str, device: str, like: str, rs: list) -> dict:
    rs = sorted(rs, key=_seed)
    timed = next((r for r in rs if "train_samples_per_s_median" in r.data.metrics), None)
    figures: dict[str, dict] = {}
    if timed is not None:
        m = timed.data.metrics
        samples, per_probe = _units(client, timed)
        figures["train_samples_per_s"] = {"value": m["train_samples_per_s_median"], "samples": samples}
        if per_probe:
            figures["train_samples_per_s"]["probe_samples"] = per_probe
        if "compile_seconds" in m:
            figures["compile_seconds"] = {"value": m["compile_seconds"], "samples": [m["compile_seconds"]]}
    for name in QUALITY:
        values = [r.data.metrics[name] for r in rs if name in r.data.metrics]
        if values:
            figures[name] = {"value": statistics.median(values), "samples": values}
    parity = [r.data.metrics[PARITY] for r in rs if PARITY in r.data.metrics]
    if parity:
        figures["parity"] = {"value": max(parity), "samples": parity}
    t = (timed or rs[0]).data.tags
    return {
        "parent_run_id": parent["run_id"],
        "order": parent["order"],
        "commit": parent["commit"],
        "commit_time": parent["commit_time"] or parent["start_time"],
        "experiment": experiment,
        "backend": backend,
        "device": device,
        "mode": t.get("mode"),
        "like": like,
        "fingerprint": t.get("fingerprint"),
        "variant": t.get("variant"),
        "flags": [f for f in (t.get("flags") or "").split("; ") if f],  # the timed run's (tracking.py)
        "versions": {k.removeprefix("version."): v for k, v in sorted(t.items()) if k.startswith("version.")},
        "seeds": [_seed(r) for r in rs],
        "run_ids": [r.info.run_id for r in rs],
        "figures": figures,
    }


def _units(client: MlflowClient, run) -> tuple[list[float], list[float] | None]:
    """The samples/s a change is tested on (workflow.lib.stats.units): the medians of the fresh processes
    that timed the run (metric PROCESS_METRIC, a step each) where 2 or more did, else every timed
    repetition (RAW_METRIC); else the run's result.json artifact. Beside them, the same per GFLOP/s of
    the speed probe read with each (None where the run has no reading: logged before the probe)."""
    for name in (PROCESS_METRIC, RAW_METRIC):
        hist = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        if len(hist) >= 2 or (hist and name == RAW_METRIC):
            values = [m.value for m in hist]
            return values, _per_probe(client, run, values, per_process=name == PROCESS_METRIC)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run.info.run_id, "result.json", tmp)
            figure = json.loads(Path(path).read_text())["timings"]["train_samples_per_s"]
            return units(figure), (units(figure, per_probe=True) if has_probe(figure) else None)
    except Exception:  # noqa: BLE001 - no artifact, no raw samples: the point keeps its median alone
        return [run.data.metrics["train_samples_per_s_median"]], None


def _per_probe(client: MlflowClient, run, values: list[float], per_process: bool) -> list[float] | None:
    """`values` over the speed probe: each process median over its process's reading (PROBE_METRIC, a step
    each), repetitions over the run's one reading (metric probe_gflops); None without a reading for each."""
    if per_process:
        probes = [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, PROBE_METRIC), key=lambda m: m.step)
        ]
    else:
        probes = [run.data.metrics.get("probe_gflops")] * len(values)
    if len(probes) != len(values) or not all(p is not None and p > 0 for p in probes):
        return None
    return [v / p for v, p in zip(values, probes)]


def write_history(history: dict, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp")
    tmp.write_text(json.dumps(history, indent=1) + "\n")
    tmp.replace(out)
    return out


def _defaults(results: Path, uri: str | None, experiment: str | None) -> tuple[str, str]:
    """The store and experiment of a results folder's config (results/config.json), unless given."""
    config = {}
    path = results / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
    store = config.get("mlflow") or {}
    uri = resolve_uri(uri or store.get("tracking_uri"), results) if (uri or store.get("tracking_uri")) else None
    experiment = experiment or store.get("experiment")
    if not experiment:
        raise HistoryError(
            f"no experiment named: {path} not found or without mlflow.experiment; pass --experiment NAME "
            "(the config's mlflow.experiment, e.g. fwbench)"
        )
    return uri or default_uri(results), experiment


def main(argv: list[str] | None = None) -> int:
    from reports import history as render

    ap = argparse.ArgumentParser(prog="fwbench history", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--results", default="results", help="results folder whose config names the store (default: results)"
    )
    ap.add_argument("--tracking-uri", default=None, help="the store (default: the config's, else RESULTS/mlflow.db)")
    ap.add_argument(
        "--experiment", default=None, help="the MLflow experiment (default: the config's mlflow.experiment)"
    )
    ap.add_argument("--out", default=None, help="also write the history rows as JSON to this file")
    ap.add_argument("--json", action="store_true", help="print the series and change points as JSON")
    ap.add_argument("--figure", default=None, choices=sorted(render.FIGURES), help="the table's figure (default: all)")
    args = ap.parse_args(argv)
    try:
        uri, experiment = _defaults(Path(args.results), args.tracking_uri, args.experiment)
        history = read_history(uri, experiment)
    except (HistoryError, StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_history(history, args.out)
    if args.json:
        print(json.dumps(render.analyse(history), indent=1))
    else:
        print(render.table(history, [args.figure] if args.figure else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
