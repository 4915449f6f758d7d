"""MLflow logging: one run per run result, safe under parallel Snakemake jobs on any store.

The store (embedded SQLite, an `mlflow server`, PostgreSQL) and its one-time creation are in
`workflow.lib.store`. On SQLite every write happens under one file lock beside the database, so
parallel jobs never meet "database is locked"; training itself runs outside the lock, so timings
are not affected.

Each run is a child of the pipeline invocation's parent run (`workflow.lib.parent`), named by
`results/mlflow/parent.json`; without that file (a job run by hand, no store at onstart) it is a
top-level run. A rerun of the same (experiment, backend, device, seed) under the same parent
soft-deletes the run it replaces, so the UI never shows two runs that look like distinct results;
the children of other parents (other commits or configs) stay.

What a run holds besides its params, tags and metrics: its dataset's splits as inputs
(`workflow.lib.run_inputs`), its trained weights and, for the Keras peers and torch-idiomatic, the
framework's own logged model (`workflow.lib.artifacts`). Tags start from MLflow's own context
(`resolve_tags`: user, source name and type, git), per-epoch points carry their epoch's end time.

Runs left RUNNING by a killed job are marked KILLED by the next job that logs: on SQLite every
RUNNING run is such an orphan (all logging is done in one locked block); on a shared store,
where other jobs log at the same moment, only the earlier attempts of the same job (Snakemake
never runs one job twice at once) and runs RUNNING for longer than ORPHAN_AFTER_S. Parent runs are
RUNNING for a whole invocation and are never swept here (`workflow.lib.parent` ends them).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workflow.lib.artifacts import log_framework_model, log_weights
from workflow.lib.run_inputs import log_dataset_inputs
from workflow.lib.run_record import (
    epoch_ends_ms,
    run_metrics,
    run_params,
    run_tags,
)
from workflow.lib.store import (
    StoreError,
    check_reachable,
    client_for,
    default_uri,
    ensure_experiment,
    init_store,
    kind,
    marked_experiment,
    public_uri,
    resolve_uri,
    store_lock,
)

if TYPE_CHECKING:
    import numpy as np
    from mlflow.tracking import MlflowClient

__all__ = ["StoreError", "default_uri", "init_store", "log_run", "read_parent", "resolve_uri", "sweep_orphans"]

MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_BATCH = 1000, 100, 100, 1000  # MLflow's log_batch limits
ORPHAN_AFTER_S = 3600  # one job's logging block takes seconds
TRANSIENT = ("locked", "deadlock", "could not serialize")
PARENT = Path("mlflow") / "parent.json"  # under --results; written by the Snakefile's onstart
PARENT_KEY_TAG = "fwbench.parent_key"  # tags a parent run: git commit / config hash
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tags, which its UI shows
MODEL_ERROR_TAG = "fwbench.log_model_error"  # why the framework's log_model failed (the run is kept)


def context_tags(tags: dict[str, str]) -> dict[str, str]:
    """MLflow's own resolved tags (mlflow.user, mlflow.source.name/type, git where the entry point is in
    a work tree), which MlflowClient.create_run leaves out, with ours over them."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(tags)


def sweep_orphans(client: MlflowClient, experiment_id: str, key: str | None = None, shared: bool = False) -> list[str]:
    """Mark runs left RUNNING by killed jobs as KILLED; returns their ids.

    shared=False (SQLite, called with the store lock held): every RUNNING run. shared=True: the
    RUNNING runs of this job's key, and any RUNNING for longer than ORPHAN_AFTER_S.
    """
    running = "attributes.status = 'RUNNING'"
    filters = [running]
    if shared:
        old = int((time.time() - ORPHAN_AFTER_S) * 1000)
        filters = [f"{running} and attributes.start_time < {old}"]
        if key is not None:
            filters.append(f"{running} and tags.run_key = '{key}'")
    orphans = {}
    for f in filters:
        for run in client.search_runs([experiment_id], filter_string=f, max_results=1000):
            if PARENT_KEY_TAG not in run.data.tags:  # a parent is RUNNING while its pipeline runs
                orphans[run.info.run_id] = run
    for run_id in orphans:
        client.set_tag(run_id, "fwbench.orphaned", "true")
        client.set_terminated(run_id, status="KILLED")
    return list(orphans)


def run_key(result: dict) -> str:
    """experiment/backend/device, and /seed{n} where the result names its seed (a job logs one run per seed)."""
    key = f"{result['experiment']}/{result['backend']}/{result['device']}"
    return f"{key}/seed{result['seed']}" if result.get("seed") is not None else key


def read_parent(results: str | Path, uri: str, experiment_id: str) -> str | None:
    """The parent run id onstart recorded for this store and experiment, or None (a top-level run)."""
    try:
        record = json.loads((Path(results) / PARENT).read_text())
    except (OSError, ValueError):
        return None
    same_store = record.get("tracking_uri") == public_uri(uri, results)
    if same_store and str(record.get("experiment_id")) == str(experiment_id) and record.get("run_id"):
        return str(record["run_id"])
    return None


def log_run(
    result: dict,
    artifacts: Iterable[str | Path],
    uri: str,
    experiment: str,
    results: str | Path,
    weights: Sequence[np.ndarray] | None = None,
) -> dict:
    """Log one run result; returns the mlflow record {run_id, experiment_id, tracking_uri[, model_uri]}.

    weights: the training's final params [W0, b0, ...] (runner.RunResult.weights): weights.npz and,
    for an ok run of a backend with a framework model, its log_model. The result dict gets its
    "mlflow" entry before the JSON artifact is written, so the artifact and the results file agree.
    The experiment id comes from init_store's marker where there is one. Raises StoreError (with
    the fix) when the store does not answer.
    """
    check_reachable(uri)
    shared = kind(uri) != "sqlite"
    for attempt in range(5):
        try:
            with store_lock(uri):
                client = client_for(uri)
                exp_id = marked_experiment(results, uri, experiment) or ensure_experiment(client, experiment, uri)
                key = run_key(result)
                parent = read_parent(results, uri, exp_id)
                sweep_orphans(client, exp_id, key, shared=shared)
                start, end = _span_ms(result)
                tags = context_tags({"run_key": key, **({PARENT_RUN_TAG: parent} if parent else {})})
                run_id = client.create_run(exp_id, start_time=start, run_name=key, tags=tags).info.run_id
                try:
                    result["mlflow"] = {
                        "run_id": run_id,
                        "experiment_id": exp_id,
                        "tracking_uri": public_uri(uri, results),
                        **({"parent_run_id": parent} if parent else {}),
                    }
                    _log_contents(client, run_id, result, artifacts, results)
                    if weights is not None:
                        _log_model(client, uri, run_id, result, weights)
                    client.log_text(run_id, json.dumps(result, indent=2, default=str), "result.json")
                    status = "FINISHED" if result["status"] == "ok" else "FAILED"
                    client.set_terminated(run_id, status=status, end_time=end)
                except BaseException:
                    client.set_terminated(run_id, status="FAILED")
                    client.delete_run(run_id)
                    raise
                # Replaced only once the new run is complete: a failed rerun leaves the old one.
                for old in _same_job(client, exp_id, key, parent):
                    if old != run_id:
                        client.delete_run(old)
                return result["mlflow"]
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - retried, then re-raised with the cause
            if not any(t in str(e).lower() for t in TRANSIENT) or attempt == 4:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _same_job(client: MlflowClient, exp_id: str, key: str, parent: str | None) -> list[str]:
    """The active runs of this key under the same parent (without one: the top-level runs of the
    key); a rerun replaces only these, so the children of other invocations' parents stay."""
    query = f"tags.run_key = '{key}'"
    if parent:
        query += f" and tags.`{PARENT_RUN_TAG}` = '{parent}'"
    runs = client.search_runs([exp_id], filter_string=query, max_results=1000)
    return [r.info.run_id for r in runs if r.data.tags.get(PARENT_RUN_TAG) == parent]


def _span_ms(result: dict) -> tuple[int | None, int | None]:
    """The training's own wall-clock start and end (ms), so the UI's Duration is the training's;
    None (MLflow's own clock) for a run that failed before training."""
    span = (result.get("timings") or {}).get("training_wall") or {}
    if "start" not in span:
        return None, None
    return int(span["start"] * 1000), int(span["end"] * 1000)


def _log_contents(
    client: MlflowClient, run_id: str, result: dict, artifacts: Iterable[str | Path], results: str | Path
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = _span_ms(result)[1] or int(time.time() * 1000)
    ends = epoch_ends_ms(result)
    metrics = [Metric(k, v, ends[s] if e and s < len(ends) else now, s) for k, v, s, e in run_metrics(result)]
    params = [Param(k, v) for k, v in run_params(result).items()]
    tags = [RunTag(k, v) for k, v in run_tags(result).items()]
    for batch in batches(metrics, params, tags):
        client.log_batch(run_id, **batch)
    log_dataset_inputs(client, run_id, result, results)
    for path in artifacts:
        client.log_artifact(run_id, str(path))


def _log_model(client: MlflowClient, uri: str, run_id: str, result: dict, weights: Sequence[np.ndarray]) -> None:
    """weights.npz; for an ok run, the framework's own model, its URI in the result's mlflow record
    (a log_model failure is tagged and warned about, and the run kept)."""
    log_weights(client, run_id, result["spec"], weights)
    if result["status"] == "ok":
        try:
            model_uri = log_framework_model(uri, run_id, result, weights)
        except Exception as e:  # noqa: BLE001 - the run and its weights.npz stand without it
            why = f"{type(e).__name__}: {e}"
            client.set_tag(run_id, MODEL_ERROR_TAG, why[:5000])
            print(f"warning: {result['backend']}'s log_model failed, weights.npz kept: {why}", file=sys.stderr)
        else:
            if model_uri:
                result["mlflow"]["model_uri"] = model_uri


def batches(metrics: list, params: list, tags: list) -> Iterable[dict[str, list]]:
    """log_batch arguments in as few calls as MLflow's limits allow: at most MAX_METRICS metrics,
    MAX_PARAMS params, MAX_TAGS tags and MAX_BATCH entries in all per call."""
    m = p = t = 0
    while m < len(metrics) or p < len(params) or t < len(tags):
        n_p = min(MAX_PARAMS, len(params) - p)
        n_t = min(MAX_TAGS, len(tags) - t, MAX_BATCH - n_p)
        n_m = min(MAX_METRICS, len(metrics) - m, MAX_BATCH - n_p - n_t)
        yield {"metrics": metrics[m : m + n_m], "params": params[p : p + n_p], "tags": tags[t : t + n_t]}
        m, p, t = m + n_m, p + n_p, t + n_t


def chunks(items: list, n: int) -> Iterable[list]:
    """Batches of at most n: MLflow's log_batch refuses larger ones."""
    for i in range(0, len(items), n):
        yield items[i : i + n]
