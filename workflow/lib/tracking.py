"""MLflow logging: one run per run result, safe under parallel Snakemake jobs.

Every write to the store happens under one file lock beside it, so parallel jobs never meet
SQLite's "database is locked"; training itself runs outside the lock, so timings are not
affected. While holding the lock, any run still RUNNING belongs to a dead process (all
logging is done in one locked block) and is marked KILLED. A rerun of the same
(experiment, backend, device) soft-deletes the run it replaces, so the UI never shows two
runs that look like distinct results.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

LOCK_TIMEOUT_S = 900
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


def default_uri(results: str | Path) -> str:
    return f"sqlite:///{Path(results).resolve() / 'mlflow.db'}"


def resolve_uri(configured: str | None, results: str | Path) -> str:
    return configured or default_uri(results)


@contextmanager
def store_lock(results: str | Path):
    Path(results).mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(results) / "mlflow.lock"), timeout=LOCK_TIMEOUT_S):
        yield


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def init_store(uri: str, experiment: str, results: str | Path) -> str:
    """Create the store and the MLflow experiment once, before parallel jobs start."""
    with store_lock(results):
        return _ensure_experiment(_client(uri), experiment, results)


def _ensure_experiment(client, experiment: str, results: str | Path) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        artifacts = (Path(results).resolve() / "mlartifacts").as_uri()
        return client.create_experiment(experiment, artifact_location=artifacts)
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def sweep_orphans(client, experiment_id: str) -> list[str]:
    """Mark runs left RUNNING by a killed job as KILLED (call with the store lock held)."""
    orphans = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in orphans:
        client.set_tag(run.info.run_id, "fwbench.orphaned", "true")
        client.set_terminated(run.info.run_id, status="KILLED")
    return [r.info.run_id for r in orphans]


def run_key(result: dict) -> str:
    return f"{result['experiment']}/{result['backend']}/{result['device']}"


def log_run(result: dict, artifacts: Iterable[str | Path], uri: str, experiment: str, results: str | Path) -> dict:
    """Log one run result; returns the mlflow record {run_id, experiment_id, tracking_uri}.

    The result dict gets its "mlflow" entry before the JSON artifact is written, so the
    artifact and the results file agree.
    """
    from mlflow.entities import Metric, Param, RunTag

    for attempt in range(5):
        try:
            with store_lock(results):
                client = _client(uri)
                exp_id = _ensure_experiment(client, experiment, results)
                sweep_orphans(client, exp_id)
                key = run_key(result)
                for old in client.search_runs([exp_id], filter_string=f"tags.run_key = '{key}'", max_results=1000):
                    client.delete_run(old.info.run_id)
                run = client.create_run(exp_id, run_name=key, tags={"run_key": key})
                run_id = run.info.run_id
                try:
                    result["mlflow"] = {"run_id": run_id, "experiment_id": exp_id, "tracking_uri": uri}
                    now = int(time.time() * 1000)
                    metrics = [Metric(k, v, now, s) for k, v, s in _metrics(result)]
                    params = [Param(k, v) for k, v in _params(result).items()]
                    tags = [RunTag(k, v) for k, v in _tags(result).items()]
                    for chunk in _chunks(metrics, MAX_METRICS):
                        client.log_batch(run_id, metrics=chunk)
                    for chunk in _chunks(params, MAX_PARAMS):
                        client.log_batch(run_id, params=chunk)
                    for chunk in _chunks(tags, MAX_TAGS):
                        client.log_batch(run_id, tags=chunk)
                    for path in artifacts:
                        client.log_artifact(run_id, str(path))
                    client.log_text(run_id, json.dumps(result, indent=2, default=str), "result.json")
                    status = "FINISHED" if result["status"] == "ok" else "FAILED"
                    client.set_terminated(run_id, status=status)
                except BaseException:
                    client.set_terminated(run_id, status="FAILED")
                    client.delete_run(run_id)
                    raise
                return result["mlflow"]
        except Exception as e:  # noqa: BLE001 - retried, then re-raised with the cause
            if "locked" not in str(e).lower() or attempt == 4:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _metrics(r: dict) -> list[tuple[str, float, int]]:
    out: list[tuple[str, float, int]] = []
    for e, v in enumerate(r.get("loss_history") or []):
        out.append(("loss", float(v) if v is not None else float("nan"), e))
    t = r.get("timings") or {}
    for e, v in enumerate(t.get("epoch_seconds") or []):
        out.append(("epoch_seconds", float(v), e))
    for name, hist in (r.get("metric_history") or {}).items():
        for e, v in enumerate(hist):
            if _finite(v):
                out.append((name, float(v), e))
    for split, m in (r.get("metrics") or {}).items():
        for k, v in (m or {}).items():
            if _finite(v):
                out.append((f"{split}_{k}", float(v), 0))
    for k in ("compile_seconds", "first_epoch_seconds", "total_train_seconds"):
        if _finite(t.get(k)):
            out.append((k, float(t[k]), 0))
    for k in ("train_samples_per_s", "inference_samples_per_s"):
        for stat in ("median", "p20", "p80"):
            v = (t.get(k) or {}).get(stat)
            if _finite(v):
                out.append((f"{k}_{stat}", float(v), 0))
    ttt = t.get("time_to_target") or {}
    if _finite(ttt.get("seconds")):
        out.append(("time_to_target_seconds", float(ttt["seconds"]), 0))
    for k, v in (r.get("memory") or {}).items():
        if _finite(v):
            out.append((k, float(v), 0))
    par = r.get("parity") or {}
    if _finite(par.get("max_rel_loss_deviation")):
        out.append(("parity_max_rel_loss_deviation", float(par["max_rel_loss_deviation"]), 0))
    for fig in r.get("reported") or []:
        if _finite(fig.get("measured")):
            out.append((f"reported_{fig['split']}_{fig['metric']}_measured", float(fig["measured"]), 0))
    return out


def _flat(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(f"{prefix}{k}.", v))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _params(r: dict) -> dict[str, str]:
    p = {**_flat("spec.", r["spec"]), **_flat("preprocess.", r.get("preprocessing") or {})}
    p.update({k: r[k] for k in ("dataset", "seed", "threads", "repeats") if k in r})
    return {k: json.dumps(v) if isinstance(v, (list, tuple)) else str(v) for k, v in p.items()}


def _tags(r: dict) -> dict[str, str]:
    env = r.get("environment") or {}
    tags = {k: str(r[k]) for k in ("experiment", "dataset", "backend", "framework", "mode", "device", "status")}
    tags["fingerprint"] = str(env.get("fingerprint"))
    tags["git_commit"] = str(env.get("git_commit"))
    tags["device_name"] = str(env.get("device_name"))
    for pkg, v in (env.get("versions") or {}).items():
        tags[f"version.{pkg}"] = v
    if r.get("message"):
        tags["message"] = str(r["message"])[:5000]
    return tags


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
