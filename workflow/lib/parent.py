"""One MLflow parent run per pipeline invocation; every training run is its child.

A parent is keyed by (git commit of the repository, hash of the resolved config), recorded in its
tag `fwbench.parent_key`: rerunning the pipeline at the same commit and config finds the same
parent, so a rerun's trainings replace its children; a new commit or config makes a new parent, and
the earlier ones keep their children, so history across commits stays browsable.

The Snakefile's `onstart` calls start_parent, which writes `results/mlflow/parent.json`; each
training job reads it (`tracking.log_run`). The file is no rule's input or output, so writing it
never makes Snakemake rerun a job. `onsuccess` calls end_parent (the report and summary as
artifacts, FINISHED), `onerror` ends it FAILED. Snakemake runs these hooks in its main process
only, when it executes jobs: not on dry runs, not when nothing is to be done, not in cluster jobs
(which it starts with --no-hooks). Writes follow tracking's discipline: under the store lock on
SQLite. A store that does not answer costs the invocation its parent, never its jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from workflow.lib.run_record import GIT_COMMIT_TAG, NOTE_TAG, flatten, param_value
from workflow.lib.store import (
    check_reachable,
    client_for,
    kind,
    marked_experiment,
    prepare_store,
    public_uri,
    redact,
    store_lock,
)
from workflow.lib.tracking import (
    MAX_PARAMS,
    MAX_TAGS,
    PARENT,
    PARENT_KEY_TAG,
    PARENT_RUN_TAG,
    chunks,
    context_tags,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["config_hash", "end_parent", "parent_key", "start_parent"]

INVOCATIONS_TAG = "fwbench.invocations"
COMMIT_TIME_TAG = "fwbench.commit_time"  # the commit's committer date, ISO 8601
MAX_KEY = 250  # MLflow's limit on a param's key


def public_config(config: dict) -> dict:
    """The config as the parent records it: plain JSON, the tracking URI without its password."""
    out = json.loads(json.dumps(dict(config), default=str))
    store = out.get("mlflow") or {}
    if store.get("tracking_uri"):
        store["tracking_uri"] = redact(store["tracking_uri"])
    return out


def config_hash(config: dict) -> str:
    """12 hex digits over the resolved config (keys sorted), the same for the same settings."""
    text = json.dumps(public_config(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parent_key(commit: str | None, config: dict) -> str:
    """'COMMIT/CONFIGHASH' ('no-git/...' outside git): what makes two invocations the same one."""
    return f"{commit or 'no-git'}/{config_hash(config)}"


def start_parent(
    uri: str, experiment: str, results: str | Path, key: str, config: dict, commit: str | None
) -> dict | None:
    """Find or create this invocation's parent run; write and return parent.json's record.

    The record is {run_id, experiment_id, key, tracking_uri} (the URI as run results record it).
    Creates the store and experiment where the `mlflow_store` job has not yet (a first run). Where
    the store does not answer: a warning, no parent.json (training runs are top-level), None.
    """
    path = Path(results) / PARENT
    path.unlink(missing_ok=True)  # an earlier invocation's parent never adopts this one's runs
    try:
        check_reachable(uri)
        exp_id = marked_experiment(results, uri, experiment) or prepare_store(uri, experiment)
        with store_lock(uri):
            client = client_for(uri)
            if kind(uri) == "sqlite":  # one invocation per results folder: other RUNNING parents are dead
                _end_dead_parents(client, exp_id, key)
            run_id = _find_or_create(client, exp_id, key, config, commit)
    except Exception as e:  # noqa: BLE001 - the jobs run without a parent
        print(
            f"fwbench: warning: no MLflow parent run for this invocation, training runs are logged as top-level "
            f"runs: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return None
    record = {"run_id": run_id, "experiment_id": exp_id, "key": key, "tracking_uri": public_uri(uri, results)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)
    print(f"fwbench: MLflow parent run {run_id} ({key}) in {redact(uri)}", file=sys.stderr)
    return record


def end_parent(uri: str, results: str | Path, status: str, artifacts: Iterable[str | Path] = ()) -> bool:
    """End the invocation's parent with `status` (FINISHED, FAILED), logging the artifacts this
    invocation wrote (a file older than parent.json is an earlier run's: left out). False where
    there is no parent or the store does not answer (a warning)."""
    path = Path(results) / PARENT
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if record.get("tracking_uri") != public_uri(uri, results):
        return False
    since = path.stat().st_mtime
    try:
        check_reachable(uri)
        with store_lock(uri):
            client = client_for(uri)
            for a in map(Path, artifacts):
                if a.is_file() and a.stat().st_mtime >= since:
                    client.log_artifact(record["run_id"], str(a))
            client.set_terminated(record["run_id"], status=status)
    except Exception as e:  # noqa: BLE001 - the pipeline's own outcome stands
        why = f"{type(e).__name__}: {e}"
        print(f"fwbench: warning: MLflow parent run {record['run_id']} not ended: {why}", file=sys.stderr)
        return False
    return True


def _find_or_create(client: MlflowClient, exp_id: str, key: str, config: dict, commit: str | None) -> str:
    """The active parent of this key, set RUNNING again, or a new one with the config and machine."""
    from mlflow.entities import RunTag

    found = client.search_runs(
        [exp_id], filter_string=f"tags.`{PARENT_KEY_TAG}` = '{key}'", max_results=1, order_by=["start_time DESC"]
    )
    if found:
        run_id = found[0].info.run_id
        invocation = int(found[0].data.tags.get(INVOCATIONS_TAG, "1")) + 1
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = _create(client, exp_id, key, config, commit)
        invocation = 1
    note = _note(config, key, commit, invocation, run_id)
    client.log_batch(run_id, tags=[RunTag(INVOCATIONS_TAG, str(invocation)), RunTag(NOTE_TAG, note)])
    return run_id


def _create(client: MlflowClient, exp_id: str, key: str, config: dict, commit: str | None) -> str:
    from mlflow.entities import Param, RunTag

    from workflow.lib.environment import fingerprint, git_commit_time

    env = fingerprint("cpu", {}, int(config.get("threads") or 1), "float32")
    tags = {PARENT_KEY_TAG: key, "fwbench.config_hash": config_hash(config), "fingerprint": env["fingerprint"]}
    tags |= {"cpu": env["cpu"], "os": env["os"], "python": env["python"]}
    tags |= {f"version.{pkg}": v for pkg, v in env["versions"].items()}
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        tags[COMMIT_TIME_TAG] = git_commit_time(commit) or ""  # orders the history (workflow.lib.history)
    name = f"pipeline {(commit or 'no-git')[:10]} {config_hash(config)}"
    run_id = client.create_run(exp_id, run_name=name, tags=context_tags({PARENT_KEY_TAG: key})).info.run_id
    public = public_config(config)
    params = [Param(_param_key(k), param_value(v)) for k, v in flatten("", public).items()]
    for chunk in chunks(params, MAX_PARAMS):
        client.log_batch(run_id, params=chunk)
    for chunk in chunks([RunTag(k, str(v)) for k, v in tags.items()], MAX_TAGS):
        client.log_batch(run_id, tags=chunk)
    client.log_dict(run_id, public, "config.json")
    client.log_dict(run_id, env, "environment.json")
    return run_id


def _param_key(key: str) -> str:
    """A config key as MLflow takes it: letters, digits and _-. /, at most 250 characters."""
    return re.sub(r"[^\w\-. /]", "_", key)[:MAX_KEY]


def _end_dead_parents(client: MlflowClient, exp_id: str, key: str) -> None:
    """Parents of other keys left RUNNING by a killed invocation (no onerror ran): KILLED."""
    for run in client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        other = run.data.tags.get(PARENT_KEY_TAG)
        if other is not None and other != key:
            client.set_tag(run.info.run_id, "fwbench.orphaned", "true")
            client.set_terminated(run.info.run_id, status="KILLED")


def _listed(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _note(config: dict, key: str, commit: str | None, invocation: int, run_id: str) -> str:
    """The parent's description in the UI: what this invocation trains and where its runs are."""
    seeds = config.get("seeds", config.get("seed"))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        f"fwbench pipeline at commit {commit or '(not in git)'}, config {config_hash(config)} (key {key}).\n\n"
        f"Experiments: {_listed(config.get('experiments'))}; backends: {_listed(config.get('backends'))}; "
        f"devices: {_listed(config.get('devices'))}; seeds: {_listed(seeds)}; threads: {config.get('threads')}.\n\n"
        f"Invocation {invocation} at this commit and config, started {started}. Every training it ran is a "
        f"child run (search: tags.`{PARENT_RUN_TAG}` = '{run_id}'); the report (index.html) and "
        "summary.csv are logged here when the pipeline succeeds."
    )
