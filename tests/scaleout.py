"""Real daemons for the scale-out tests: munge + slurmctld + slurmd, PostgreSQL, `mlflow server`.

Everything listens on 127.0.0.1 on free ports, keeps its state in a temporary folder, runs in the
foreground as a direct child in its own process group, and is stopped by that group's id with
bounded waits. Where a binary or root is missing, `skip_reason` says what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
INSTALL = "bash workflow/run-tests.sh installs it as root, or: apt-get install -y slurm-wlm munge postgresql"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find(name: str) -> str | None:
    return shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def skip_reason(kind: str) -> str | None:
    """Why the daemons of `kind` ('slurm' or 'postgres') cannot run here, or None."""
    if os.geteuid() != 0:
        return f"the {kind} test starts its daemons as root (Slurm's SlurmUser, PostgreSQL's postgres user)"
    if kind == "slurm":
        missing = [b for b in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "srun") if not find(b)]
        return f"{', '.join(missing)} not found: {INSTALL}" if missing else None
    if pg_bindir() is None or not find("runuser"):
        return f"PostgreSQL's initdb/postgres (or runuser) not found: {INSTALL}"
    return None


class Daemon:
    """One foreground daemon, a direct child in its own process group, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, **popen) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **popen
            )

    def tail(self, n: int = 3000) -> str:
        return f"--- {self.name} ({self.log}) ---\n{self.log.read_text(errors='replace')[-n:]}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal the process group, wait (bounded), then SIGKILL whatever is left of the group."""
        pgid = self.proc.pid  # start_new_session: the group's id is the child's pid
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(pgid, s)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timeout = 10


def wait_for(check: Callable[[], bool], timeout: float, what: str, daemons: list[Daemon]) -> float:
    """Poll `check` until true; fail with the daemons' logs when one dies or the time is up."""
    t0 = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        dead = [d for d in daemons if d.proc.poll() is not None]
        if dead or time.monotonic() - t0 > timeout:
            why = f"{dead[0].name} exited ({dead[0].proc.returncode})" if dead else f"not after {timeout:.0f} s"
            logs = "\n".join(d.tail() for d in daemons)
            raise RuntimeError(f"{what}: {why}\n{logs}")
        time.sleep(0.3)


def run_bounded(cmd: list[str], env: dict[str, str], timeout: float, **popen) -> subprocess.CompletedProcess:
    """A command (snakemake) in its own process group, the group killed past the timeout: Snakemake
    can ignore SIGTERM while it waits on jobs. stdout and stderr together in .stdout."""
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        **popen,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        raise AssertionError(f"{cmd[2:4]} did not finish in {timeout:.0f} s, killed:\n{out[-6000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def _tmpdir(prefix: str) -> Path:
    """Short (Unix socket paths are limited to 107 bytes) and traversable by daemon users."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


# --- Slurm ------------------------------------------------------------------------------------

SLURM_CONF = """\
ClusterName=fwbench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge/munge.socket
StateSaveLocation={dir}/slurm/state
SlurmdSpoolDir={dir}/slurm/spool/%n
SlurmctldPidFile={dir}/slurm/slurmctld.pid
SlurmdPidFile={dir}/slurm/slurmd.pid
SlurmctldLogFile={dir}/slurm/log/slurmctld.log
SlurmdLogFile={dir}/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/slurm/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
DefMemPerCPU=500
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge={min_job_age}
KillWait=5
Waittime=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket={cpus} ThreadsPerCore=1 \
RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    dir: Path
    conf: Path
    env: dict[str, str]  # SLURM_CONF, and PATH with the srun wrapper first
    jobcomp: Path

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)


@contextmanager
def slurm_cluster(cpus: int = 2, mem_mb: int = 20000, min_job_age: int = 300) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd of Debian's packages: a one-node cluster on 127.0.0.1.

    MinJobAge must stay >= 3 x the profile's slurm-init-seconds-before-status-checks, or the
    Slurm executor plugin quietly goes back to sacct, which fails without slurmdbd.
    """
    base = _tmpdir("fwslurm-")
    for sub in ("munge", "slurm/state", "slurm/spool", "slurm/log", "bin"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "munge").chmod(0o755)  # munged refuses a socket folder others cannot traverse
    key = base / "munge/munge.key"
    subprocess.run([find("mungekey"), "--create", f"--keyfile={key}"], check=True, timeout=30, capture_output=True)
    key.chmod(0o600)
    host = socket.gethostname().split(".")[0]  # slurmd finds its node by the short hostname
    conf = base / "slurm/slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            dir=base,
            ctld_port=free_port(),
            slurmd_port=free_port(),
            cpus=cpus,
            mem_mb=mem_mb,
            min_job_age=min_job_age,
        )
    )
    # The plugin's job step clears every SLURM_* variable (SLURM_CONF too) before its nested
    # srun: a wrapper first on PATH puts SLURM_CONF back.
    wrapper = base / "bin/srun"
    wrapper.write_text(f'#!/bin/sh\nexport SLURM_CONF="{conf}"\nexec "{find("srun")}" "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{base / 'bin'}:{os.environ['PATH']}:/usr/sbin"}
    cluster = SlurmCluster(base, conf, env, base / "slurm/log/jobcomp.txt")
    daemons: list[Daemon] = []
    try:
        munge = base / "munge"
        daemons.append(
            Daemon(
                "munged",
                [find("munged"), "-F", f"--key-file={key}", f"--socket={munge}/munge.socket"]
                + [f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log", f"--seed-file={munge}/seed"],
                base / "munged.out",
            )
        )
        wait_for(lambda: (munge / "munge.socket").exists(), 30, "munged socket", daemons)
        daemons.append(
            Daemon("slurmctld", [find("slurmctld"), "-D", "-c", "-f", str(conf)], base / "ctld.out", env=env)
        )
        daemons.append(Daemon("slurmd", [find("slurmd"), "-D", "-f", str(conf)], base / "slurmd.out", env=env))

        def idle() -> bool:
            return cluster.run("sinfo", "-h", "-o", "%T", timeout=10).stdout.strip() == "idle"

        wait_for(idle, 60, "Slurm node idle in sinfo", daemons)
        yield cluster
    finally:
        if len(daemons) == 3:  # no job outlives the test
            try:
                cluster.run("scancel", "--user", "root")
                wait_for(lambda: not cluster.run("squeue", "-h").stdout.strip(), 30, "jobs cancelled", daemons)
            except (RuntimeError, subprocess.SubprocessError):
                pass
        for d in reversed(daemons):
            d.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- PostgreSQL and mlflow server -------------------------------------------------------------


@dataclass
class Postgres:
    dir: Path
    port: int

    def uri(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def sql(self, *statements: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
        finally:
            conn.close()


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder: initdb through runuser (it refuses root), then
    `postgres` itself in the foreground as the postgres user, on 127.0.0.1 and a free port."""
    import psycopg2

    base = _tmpdir("fwpg-")
    data, sock = base / "pg", base / "sock"
    for d in (data, sock):
        d.mkdir()
        shutil.chown(d, "postgres", "postgres")
    bindir = pg_bindir()
    initdb = [find("runuser"), "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(data)]
    initdb += ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
    proc = subprocess.run(initdb, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    pg = Postgres(base, free_port())
    cmd = [str(bindir / "postgres"), "-D", str(data), "-p", str(pg.port), "-k", str(sock)]
    cmd += ["-c", "listen_addresses=127.0.0.1"]
    server = None
    try:
        server = Daemon("postgres", cmd, base / "postgres.log", user="postgres", group="postgres", extra_groups=[])

        def ready() -> bool:
            psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres").close()
            return True

        wait_for(ready, 60, "PostgreSQL accepting connections", [server])
        yield pg
    finally:
        if server is not None:
            server.stop(signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, workers: int = 2) -> Iterator[str]:
    """`mlflow server` on a free port of 127.0.0.1; yields its URL once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri]
    cmd += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    # uvicorn's supervisor kills a worker that misses a 5 s health ping: on a loaded 2-core CI
    # machine that restarts workers forever.
    cmd += ["--uvicorn-opts", "--timeout-worker-healthcheck 120"]
    artifacts.mkdir(parents=True, exist_ok=True)
    server = Daemon("mlflow server", cmd, artifacts.parent / f"mlflow-server-{port}.log")
    try:

        def healthy() -> bool:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                return r.status == 200

        wait_for(healthy, 240, "mlflow server /health", [server])
        yield url
    finally:
        server.stop()


def rest(url: str, path: str, body: dict | None = None, timeout: float = 60) -> dict:
    """One call of MLflow's REST API: GET with no body, else POST JSON."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)
