"""From the config to the list of jobs: validation with clear messages, experiment selection,
backend availability, and which devices each backend gets."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import backends
from workflow.lib import catalogue as cat

SCHEMA = "workflow/schemas/config.schema.yaml"


class PlanError(ValueError):
    """The configuration cannot be run; the message names the problem and the fix."""


@dataclass(frozen=True)
class TrainGroup:
    """One Snakemake rule's worth of training jobs: backends that train the same experiments on the
    same seeds. A job is one (backend, device) of the group, every experiment and seed in one
    process, so a framework is imported once per backend rather than once per experiment."""

    rule: str
    backends: tuple[str, ...]
    experiments: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass
class Plan:
    experiments: dict[str, cat.Experiment]
    backends: list[str]
    jobs: list[tuple[str, str, str]]  # (experiment, backend, device): one training per seed of seeds_for(backend)
    seeds: list[int]
    devices: dict[str, dict]  # backend -> {"devices": [...], "gpu": bool, "reason": str}
    notes: list[str] = field(default_factory=list)
    sweep_jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (sweep, backend, device)
    first_seed_only: frozenset[str] = frozenset()  # backends trained on seeds[0] only (config first_seed_only)

    def seeds_for(self, backend: str) -> list[int]:
        return self.seeds[:1] if backend in self.first_seed_only else list(self.seeds)

    def experiments_for(self, backend: str) -> list[str]:
        """The experiments a backend trains, in catalogue order."""
        return [e for e in self.experiments if any(j[:2] == (e, backend) for j in self.jobs)]

    def train_groups(self) -> list[TrainGroup]:
        """Backends grouped by (experiments, seeds): each group is one rule (its outputs are fixed
        lists). "train" is the group of `backends:` on every seed; the others are named by what
        sets them apart (peers: peers.experiments only; first_seed: config first_seed_only)."""
        groups: dict[tuple, list[str]] = {}
        for b in self.backends:
            exps = tuple(self.experiments_for(b))
            if exps:
                groups.setdefault((exps, tuple(self.seeds_for(b))), []).append(b)
        every = tuple(self.experiments)
        out = []
        for (exps, seeds), names in groups.items():
            name = "train" + ("_peers" if exps != every else "") + ("_first_seed" if seeds != tuple(self.seeds) else "")
            out.append(TrainGroup(name, tuple(names), exps, seeds))
        return out

    def sweep_files(self, results: str = "results") -> list[str]:
        return [f"{results}/sweeps/{s}/{b}-{d}.json" for s, b, d in self.sweep_jobs]

    @property
    def datasets(self) -> list[str]:
        return sorted({e.dataset for e in self.experiments.values()})

    def job_files(self, experiment: str, backend: str, device: str, results: str = "results") -> list[str]:
        """One (experiment, backend, device)'s run results: one per seed it trains."""
        return [run_file(experiment, backend, device, s, results) for s in self.seeds_for(backend)]

    def run_files(self, results: str = "results") -> list[str]:
        return [f for job in self.jobs for f in self.job_files(*job, results=results)]


def run_file(experiment: str, backend: str, device: str, seed: int, results: str = "results") -> str:
    """Where one training's run result lives (the one definition of the layout)."""
    return f"{results}/runs/{experiment}/{backend}-{device}/seed{seed}.json"


def validate_config(config: dict, repo: Path) -> None:
    """snakemake.utils.validate against the schema (it also fills defaults); on failure the
    message names the offending key, what is wrong with it, and where the keys are described."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, schema=str(repo / SCHEMA))
    except WorkflowError as e:
        raise PlanError(
            f"invalid configuration: {_describe(config, repo) or _first_line(e)}\n"
            f"Fix the key or value in your config (config/config.yaml, --configfile or --config); every key is "
            f"described in {SCHEMA} and config/config.yaml."
        ) from None


def _describe(config: dict, repo: Path) -> str:
    """The schema violation with its key path, e.g. "threads: 0 is less than the minimum of 1"."""
    import jsonschema

    schema = yaml.safe_load((repo / SCHEMA).read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if err is None:
        return ""
    where = ".".join(str(p) for p in err.absolute_path)
    return f"{where}: {err.message}" if where else err.message


def plan_from_config(config: dict, repo: Path) -> Plan:
    validate_config(config, repo)
    try:
        catalogue = cat.load(repo / config["catalogue"])
        chosen = cat.select(catalogue, config["experiments"], config["full_mnist"])
    except cat.CatalogueError as e:
        raise PlanError(str(e)) from None
    notes: list[str] = []
    if config["full_mnist"] or any(e.needs_full_mnist for e in chosen):
        missing = _missing_mnist(config["mnist_dir"])
        if missing:
            skipped = [e.name for e in chosen if e.needs_full_mnist]
            chosen = [e for e in chosen if not e.needs_full_mnist]
            if skipped:
                notes.append(
                    f"skipping {', '.join(skipped)}: the full MNIST files are absent ({missing}); put the four IDX "
                    "files in a directory and set mnist_dir to it, or set full_mnist: false to use mnist10k"
                )

    peers = config["peers"]
    names = list(dict.fromkeys([*config["backends"], *peers["backends"]]))
    unknown = [b for b in names if b not in backends.REGISTRY]
    if unknown:
        raise PlanError(
            f"unknown backend(s) {unknown} in config `backends:` or `peers.backends:`; registered backends: "
            f"{', '.join(backends.REGISTRY)}"
        )
    unavailable = [b for b in names if not backends.is_available(b)]
    if unavailable:
        raise PlanError(
            f"backend(s) {unavailable} are registered but their framework is not installed in this environment "
            f"({sys.executable}); install requirements.txt or remove them from `backends:` / `peers.backends:`"
        )
    if backends.REFERENCE not in names:
        notes.append(f"the reference backend {backends.REFERENCE!r} is not in `backends:`: no parity figures")

    unknown_exp = [e for e in peers["experiments"] if e not in catalogue]
    if unknown_exp:
        raise PlanError(
            f"peers.experiments {unknown_exp} are not in the catalogue {config['catalogue']}; "
            f"use names from it, e.g. {', '.join(list(catalogue)[:3])}"
        )
    idle = [e for e in peers["experiments"] if e not in {x.name for x in chosen}]
    if idle and peers["backends"]:
        notes.append(f"peers.experiments {idle} are not run by this config: no peer jobs for them")

    def runs(exp: str, backend: str) -> bool:
        """Every experiment on `backends:`; the peers only on peers.experiments."""
        return backend in config["backends"] or exp in peers["experiments"]

    swept = sweep_backends(config, config["backends"])
    every = resolve_devices(list(dict.fromkeys([*names, *swept])), config["devices"])
    devices = {b: every[b] for b in names}
    jobs = [(e.name, b, d) for e in chosen for b in names if runs(e.name, b) for d in devices[b]["devices"]]
    sweep_jobs = [(s, b, d) for s in config["sweeps"]["specs"] for b in swept for d in every[b]["devices"]]
    for b, info in every.items():
        if info.get("reason"):
            notes.append(f"{b}: {info['reason']}")
    single = config["first_seed_only"]
    unknown_single = [b for b in single if b not in backends.REGISTRY]
    if unknown_single:
        raise PlanError(
            f"unknown backend(s) {unknown_single} in config `first_seed_only:`; registered backends: "
            f"{', '.join(backends.REGISTRY)}"
        )
    if backends.REFERENCE in single and len(config["seeds"]) > 1:
        raise PlanError(
            f"the reference backend {backends.REFERENCE!r} is in `first_seed_only:`, so seeds after the first would "
            "have no parity figures; remove it from first_seed_only"
        )
    experiments = {e.name: e for e in chosen}
    return Plan(experiments, list(names), jobs, list(config["seeds"]), devices, notes, sweep_jobs, frozenset(single))


def sweep_backends(config: dict, names: list[str]) -> list[str]:
    """The backends of the sweeps (none when sweeps are off): sweeps.backends, or by default every
    backend of `backends:` but the reference, plus `fused` (the practical ceiling) where it is installed."""
    sweeps = config["sweeps"]
    if not sweeps["enabled"]:
        return []
    chosen = sweeps["backends"]
    if chosen is None:
        chosen = [b for b in names if b != backends.REFERENCE]
        if "fused" in backends.REGISTRY and "fused" not in chosen and backends.is_available("fused"):
            chosen.append("fused")
    unknown = [b for b in chosen if b not in backends.REGISTRY]
    if unknown:
        known = ", ".join(backends.REGISTRY)
        raise PlanError(f"unknown backend(s) {unknown} in `sweeps.backends:`; registered backends: {known}")
    unavailable = [b for b in chosen if not backends.is_available(b)]
    if unavailable:
        raise PlanError(
            f"sweep backend(s) {unavailable} are registered but their framework is not installed ({sys.executable}); "
            "install requirements.txt or remove them from `sweeps.backends:`"
        )
    return chosen


def resolve_devices(names: list[str], wanted: list[str]) -> dict[str, dict]:
    """cpu where asked. `gpu`: a gpu job for every backend with a CUDA path, without probing this
    host (a cluster's submit host has no GPU); each job checks its device where it runs and records
    a failed run if it has none. `auto`: probe here and schedule gpu jobs only where a CUDA device is
    seen (local runs); never an error for want of a GPU, the reason is kept."""
    want_cpu = "cpu" in wanted or "auto" in wanted
    probe = "auto" in wanted and "gpu" not in wanted
    seen = probe_gpus(names) if probe else {}
    out = {}
    for b in names:
        devs = ["cpu"] if want_cpu else []
        reason = ""
        if "gpu" in wanted or probe:
            if not backends.gpu_capable(b):
                reason = "no gpu job: this backend has no GPU implementation"
            elif not probe or seen.get(b, {}).get("gpu"):
                devs.append("gpu")
            else:
                reason = f"no gpu job: {seen.get(b, {}).get('reason') or 'no CUDA device seen'}"
        out[b] = {"devices": devs, "gpu": "gpu" in devs, "reason": reason}
    return out


def probe_gpus(names: list[str]) -> dict[str, dict]:
    """Ask each backend, in a subprocess (imports are heavy and GPU state is process-wide)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workflow.scripts.probe_devices", *names],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(__file__).resolve().parents[2],
        )
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, json.JSONDecodeError, IndexError) as e:
        return {b: {"gpu": False, "reason": f"device probe failed: {e}"} for b in names}


def _missing_mnist(directory: str | None) -> str:
    """Why the full MNIST cannot be built, judged as the loader will (mnist_dir, else FWBENCH_MNIST_DIR)."""
    from datasets.mnist import DIR_ENV, configured_directory, missing_files

    d = configured_directory(directory)
    if d is None:
        return f"neither mnist_dir nor {DIR_ENV} is set"
    missing = missing_files(d)
    return f"missing in {d}: {', '.join(missing)}" if missing else ""


def _first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    interesting = [ln for ln in lines if "ValidationError" in ln or "not allowed" in ln or "is not" in ln]
    return (interesting or lines or [repr(e)])[0].strip()
