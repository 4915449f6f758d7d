"""Where MLflow runs go: the store URI, its checks, and its one-time creation before parallel jobs.

Three kinds of store (config key `mlflow.tracking_uri`):

- null: the embedded SQLite store `results/mlflow.db`, artifacts in `results/mlartifacts`; one
  user, one machine. Writers serialize under a file lock beside the database (SQLite allows one
  writer at a time).
- `http://host:port`: an `mlflow server`, which decides where artifacts go (its
  `--artifacts-destination`); the store for a team or a cluster. No lock: the server's database
  takes concurrent writers.
- `postgresql://user:password@host:port/database`: straight to the database; its schema is
  created once (`mlflow db upgrade`) before the jobs start. Artifacts go to MLflow's default
  artifact root for the store (a server is the better way to share artifacts).

`init_store` runs once (the `mlflow_store` rule) and writes the experiment id into the marker
`results/mlflow/.store-ready`, so the training jobs never race to create the experiment.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

LOCK_TIMEOUT_S = 900
CONNECT_TIMEOUT_S = 10
MARKER = Path("mlflow") / ".store-ready"  # under --results: common.smk's STORE
HTTP_SCHEMES = ("http", "https")
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2")
FIX = (
    "set mlflow.tracking_uri to null (the embedded SQLite store results/mlflow.db), to http://HOST:PORT "
    "(a running `mlflow server`) or to postgresql://USER:PASSWORD@HOST:PORT/DATABASE, in the config file "
    "or with --config mlflow='{tracking_uri: http://HOST:PORT}'"
)


class StoreError(RuntimeError):
    """The configured MLflow store cannot be used; the message names the problem and the fix."""


def default_uri(results: str | Path) -> str:
    """The embedded SQLite store of one results folder."""
    return f"sqlite:///{Path(results).resolve() / 'mlflow.db'}"


def resolve_uri(configured: str | None, results: str | Path) -> str:
    """The tracking URI to use: the configured one, checked, or the embedded default."""
    if not configured:
        return default_uri(results)
    uri = configured.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    shown = redact(uri)
    if scheme in HTTP_SCHEMES or scheme in POSTGRES_SCHEMES:
        if not parts.hostname:
            raise StoreError(f"mlflow.tracking_uri {shown!r} names no host; {FIX}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise StoreError(f"mlflow.tracking_uri {shown!r} has a bad port; {FIX}") from None
        if scheme in POSTGRES_SCHEMES and not parts.path.strip("/"):
            raise StoreError(f"mlflow.tracking_uri {shown!r} names no database (postgresql://.../DATABASE); {FIX}")
        return uri
    if scheme == "sqlite":
        if not _sqlite_path(uri):
            raise StoreError(f"mlflow.tracking_uri {shown!r} names no database file (sqlite:///PATH); {FIX}")
        return uri
    raise StoreError(f"mlflow.tracking_uri {shown!r}: unsupported store {scheme or '(no scheme)'!r}; {FIX}")


def kind(uri: str) -> str:
    """'sqlite', 'http' or 'postgresql'."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in HTTP_SCHEMES:
        return "http"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    return "sqlite"


def redact(uri: str) -> str:
    """The URI without its password (for messages and run results)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def public_uri(uri: str, results: str | Path) -> str:
    """The URI as a run result records it: no password, no absolute path of the writing machine.

    The embedded store is named relative to the pipeline's working directory, the folder that
    holds `results/`.
    """
    if uri == default_uri(results):
        return f"sqlite:///{Path(results).resolve().name}/mlflow.db"
    return redact(uri)


def _sqlite_path(uri: str) -> str:
    return uri[len("sqlite:///") :] if uri.lower().startswith("sqlite:///") else ""


def store_lock(uri: str) -> AbstractContextManager:
    """A file lock beside a SQLite database; no lock for a server or PostgreSQL."""
    if kind(uri) != "sqlite":
        return nullcontext()
    db = Path(_sqlite_path(uri))
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{db}.lock", timeout=LOCK_TIMEOUT_S)


def artifact_location(uri: str) -> str | None:
    """Artifacts beside a SQLite database; None (the server's or store's own choice) otherwise."""
    if kind(uri) != "sqlite":
        return None
    return (Path(_sqlite_path(uri)).resolve().parent / "mlartifacts").as_uri()


_CLIENTS: dict[str, MlflowClient] = {}


def client_for(uri: str) -> MlflowClient:
    """An MlflowClient, one per URI and process (a job that logs many runs builds it once);
    against a server, bounded retries (about 15 s) instead of MLflow's minutes."""
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    if kind(uri) == "http":
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    from mlflow.tracking import MlflowClient

    client = _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return client


def check_reachable(uri: str) -> None:
    """Fail fast, with the fix, when the server or database does not answer."""
    k = kind(uri)
    if k == "http":
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as r:
                body = r.read(100).decode(errors="replace").strip()
        except (OSError, urllib.error.URLError) as e:
            raise StoreError(
                f"MLflow server {redact(uri)} is not reachable ({getattr(e, 'reason', e)}). Start it, e.g. "
                "`mlflow server --backend-store-uri postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
                "--artifacts-destination DIR --host HOST --port PORT`, or point the pipeline elsewhere: "
                f"{FIX}"
            ) from None
        if body != "OK":
            raise StoreError(f"{url} answered {body[:60]!r}, not an MLflow server's 'OK'; {FIX}")
    elif k == "postgresql":
        _engine(uri).dispose()


def _engine(uri: str):  # -> sqlalchemy.engine.Engine
    """A SQLAlchemy engine that has connected once (StoreError with the fix where it cannot)."""
    import sqlalchemy

    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg2: pip install psycopg2-binary==2.9.13 (pinned in requirements.txt)"
        ) from None
    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        engine.connect().close()
    except sqlalchemy.exc.OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise StoreError(
            f"PostgreSQL store {redact(uri)} is not usable: {reason}. Check that the server runs and listens on "
            "that host and port, that the user and password are right, and that the database exists "
            f"(createdb DATABASE); or {FIX}"
        ) from None
    return engine


def prepare_schema(uri: str) -> None:
    """`mlflow db upgrade URI` on a fresh PostgreSQL database, once, before parallel writers.

    (Parallel first writers to an empty database race on the schema's creation and fail.)
    An existing database is left alone: MLflow itself says when it needs `mlflow db upgrade`.
    """
    import sqlalchemy

    engine = _engine(uri)
    try:
        fresh = not sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if fresh:
        from mlflow.db import upgrade

        upgrade.callback(uri)


def ensure_experiment(client: MlflowClient, experiment: str, uri: str) -> str:
    """The experiment's id: created (with the SQLite store's artifact location) or restored."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            return client.create_experiment(experiment, artifact_location=artifact_location(uri))
        except MlflowException as e:  # another writer created it first
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(experiment)
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def prepare_store(uri: str, experiment: str) -> str:
    """Create the store (a fresh PostgreSQL database's schema) and the experiment; returns its id.

    Writes no marker: the marker is the `mlflow_store` job's output, and the Snakefile's onstart
    (which calls this on every run, before that job on a first one) would make it newer than every
    run result, so Snakemake would rerun them all.
    """
    check_reachable(uri)
    with store_lock(uri):
        if kind(uri) == "postgresql":
            prepare_schema(uri)
        return ensure_experiment(client_for(uri), experiment, uri)


def init_store(uri: str, experiment: str, results: str | Path) -> str:
    """Create the store and the experiment once; write the marker with its id. Returns the id."""
    exp_id = prepare_store(uri, experiment)
    marker = Path(results) / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    record = {"tracking_uri": public_uri(uri, results), "experiment": experiment, "experiment_id": exp_id}
    marker.write_text(json.dumps(record) + "\n")
    return exp_id


def marked_experiment(results: str | Path, uri: str, experiment: str) -> str | None:
    """The experiment id init_store recorded for this store and experiment, if it did."""
    try:
        record = json.loads((Path(results) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if record.get("tracking_uri") == public_uri(uri, results) and record.get("experiment") == experiment:
        return str(record["experiment_id"])
    return None
