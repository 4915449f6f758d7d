"""Real results trees for the report and checker tests, written by the pipeline's own code path.

Datasets come from workflow.scripts.make_dataset (datasets.build, .save, datasets.plots.plot),
experiments from the real catalogue (workflow.lib.catalogue), every run from
workflow.lib.runner.run_job on real backends (the NumPy reference, torch, JAX...) and every file
from workflow.scripts.train.write_json: the files a `snakemake` run writes, less MLflow.
Runs are short (epochs scaled by EPOCHS_SCALE) so a tree builds in seconds; a short run misses
some of its documents' figures, which the tests use (a figure out of tolerance, a target not reached).

With problems=True the tree also holds runs that really diverge (a real catalogue entry trained
with SGD at a learning rate of 1e30) and a run that really fails (the NumPy reference asked for a
GPU, which it never has).
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import backends
from workflow.lib import catalogue, plan
from workflow.lib.catalogue import Experiment
from workflow.lib.runner import JobConfig, run_job
from workflow.scripts import make_dataset
from workflow.scripts.train import write_json

NAMES = ("numpy", "torch", "jax-eager")
# moons: binary, 2-D; blobs4: multiclass, 2-D, its 0.9225 test accuracy out of a short run's reach;
# hotels-mlp: 2-D regression (a decision grid of predicted values).
EXPERIMENTS = ("moons-logistic", "moons-mlp", "blobs4-softmax", "hotels-mlp")
DIVERGING = "hotels-diverge"  # hotels-mlp with SGD at learning rate 1e30: the squared error overflows
DIVERGING_FROM = "hotels-mlp"
FAILING = ("moons-mlp", backends.REFERENCE, "gpu")  # experiment, backend, device: NumPy has no GPU, the job fails
EPOCHS_SCALE = 0.2
SEEDS = (0, 1)  # every training twice: the reports' statistics over seeds have something to aggregate
NOT_SEEN = "no CUDA device seen on this machine"


def job_config(seeds: tuple[int, ...], results_dir: Path) -> JobConfig:
    """Short: 5 repetitions of at least 20 ms in one process (the units a comparison tests, see
    workflow/lib/stats.py units); the timing slots live in results_dir."""
    return JobConfig(
        threads=1,
        repeats=5,
        seeds=list(seeds),
        inference_batch=256,
        epochs_scale=EPOCHS_SCALE,
        min_repeat_seconds=0.02,
        results=str(results_dir),
        ceiling_gflops=None,
    )


def moons_logistic_result(directory: Path, repeats: int = 2) -> dict:
    """One real run result for the MLflow tests: moons-logistic trained by the NumPy reference for a
    few epochs (seed 0), its dataset and timing slots in directory."""
    import datasets

    datasets.build("moons", seed=0).save(directory / "moons.npz", directory / "moons.json")
    cfg = JobConfig(
        threads=1,
        repeats=repeats,
        seeds=[0],
        inference_batch=64,
        epochs_scale=0.1,
        min_repeat_seconds=0.01,
        results=str(directory),
    )
    return next(run_job(catalogue.load()["moons-logistic"], "numpy", "cpu", directory / "moons.npz", cfg))


def diverging(base: Experiment, name: str = DIVERGING) -> Experiment:
    """A real catalogue entry with its optimizer swapped for SGD at a learning rate that overflows."""
    entry = copy.deepcopy(base.entry)
    entry["optimizer"] = {**entry["optimizer"], "name": "sgd", "learning_rate": 1.0e30}
    return Experiment(name=name, dataset=base.dataset, entry=entry, reported=copy.deepcopy(base.reported))


def experiments(problems: bool) -> list[Experiment]:
    cat = catalogue.load()
    chosen = [cat[name] for name in EXPERIMENTS]
    return chosen + [diverging(cat[DIVERGING_FROM])] if problems else chosen


def run_path(results_dir: Path, experiment: str, backend: str, device: str, seed: int = SEEDS[0]) -> Path:
    return Path(plan.run_file(experiment, backend, device, seed, str(results_dir)))


def write_dataset(results_dir: Path, name: str, seed: int) -> Path:
    """results/datasets/{name}.npz, .json and .png, as the pipeline's make_dataset job writes them."""
    d = results_dir / "datasets"
    args = ["--name", name, "--seed", str(seed), "--npz", str(d / f"{name}.npz"), "--meta", str(d / f"{name}.json")]
    if make_dataset.main([*args, "--plot", str(d / f"{name}.png")]) != 0:
        raise RuntimeError(f"the fixture could not build dataset {name!r} (seed {seed}); see the error above")
    return d / f"{name}.npz"


def build_results(
    results_dir: str | Path,
    seed: int = 0,
    names: tuple[str, ...] = NAMES,
    problems: bool = True,
    seeds: tuple[int, ...] = SEEDS,
) -> list[dict]:
    """Write a results tree: datasets (built with `seed`), one run file per (experiment, backend, seed)
    on CPU, config.json, devices.json.

    The reference backend trains first; its run files are the others' parity references, as in the
    pipeline. Returns the run results as written (read back from their files).
    """
    if backends.REFERENCE not in names:
        raise ValueError(f"names {names} lacks the reference backend {backends.REFERENCE!r}; parity needs it")
    results_dir = Path(results_dir)
    cfg = job_config(seeds, results_dir)
    exps = experiments(problems)
    npz = {ds: write_dataset(results_dir, ds, seed) for ds in dict.fromkeys(e.dataset for e in exps)}
    written = []
    for exp in exps:
        ordered = [backends.REFERENCE, *(b for b in names if b != backends.REFERENCE)]
        references: dict[int, dict] = {}
        for backend in ordered:
            with _quiet_overflow(exp):
                for result in run_job(exp, backend, "cpu", npz[exp.dataset], cfg, references):
                    path = run_path(results_dir, exp.name, backend, "cpu", result["seed"])
                    write_json(result, path)
                    written.append(path)
                    if backend == backends.REFERENCE:
                        references[result["seed"]] = json.loads(path.read_text())
    if problems:
        name, backend, device = FAILING
        exp = next(e for e in exps if e.name == name)
        for result in run_job(exp, backend, device, npz[exp.dataset], cfg):
            path = run_path(results_dir, name, backend, device, result["seed"])
            write_json(result, path)
            written.append(path)
    write_side_files(results_dir, names, seeds, problems)
    return [json.loads(p.read_text()) for p in written]


def _quiet_overflow(exp: Experiment) -> contextlib.AbstractContextManager:
    """The NumPy reference's overflow warnings are the point of the diverging run, not noise to show."""
    return np.errstate(over="ignore", invalid="ignore") if exp.name == DIVERGING else contextlib.nullcontext()


def write_side_files(results_dir: Path, names: tuple[str, ...], seeds: tuple[int, ...], problems: bool) -> None:
    """config.json (the resolved config) and devices.json (what each backend was scheduled on, and why not more).

    Devices "auto" on a machine without a GPU: every backend runs on CPU only; with problems the
    NumPy reference was also forced onto a GPU (the failing job).
    """
    cfg = job_config(seeds, results_dir)
    config = {
        "experiments": [e.name for e in experiments(problems)],
        "backends": list(names),
        "devices": ["auto"],
        "seeds": list(seeds),
        "threads": cfg.threads,
        "repeats": cfg.repeats,
        "inference_batch": cfg.inference_batch,
        "epochs_scale": cfg.epochs_scale,
    }
    write_json(config, results_dir / "config.json")
    devices = {n: {"devices": ["cpu"], "gpu": False, "reason": NOT_SEEN} for n in names}
    if problems:
        _, backend, device = FAILING
        devices[backend] = {"devices": ["cpu", device], "gpu": True, "reason": ""}  # forced: its job fails
    write_json(devices, results_dir / "devices.json")


def without_problems(src: str | Path, dst: str | Path) -> Path:
    """Copy a problems=True tree to dst minus its diverging experiment and failing run: the tree
    build_results(problems=False) writes, without training it again (runs are independent)."""
    src, dst = Path(src), Path(dst)
    config = json.loads((src / "config.json").read_text())
    if DIVERGING not in config["experiments"]:
        raise ValueError(f"{src} was not built with problems=True (no {DIVERGING!r} in its config.json)")
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "runs" / DIVERGING)
    shutil.rmtree(run_path(dst, *FAILING).parent)
    write_side_files(dst, tuple(config["backends"]), tuple(config["seeds"]), problems=False)
    bad = [str(p) for p in (dst / "runs").glob("*/*/*.json") if json.loads(p.read_text())["status"] != "ok"]
    if bad:
        raise RuntimeError(f"runs that should have finished did not: {bad}; read their messages")
    return dst


_SHARED: dict[int, Path] = {}


def shared_tree(tmp_path_factory: pytest.TempPathFactory, seed: int = 0) -> Path:
    """The problems=True tree of `seed`, built at most once per test session, across pytest-xdist's
    workers too (the first to ask builds it under a file lock in their common temporary folder, the
    others wait and read it), and shared by every test module that asks (read it, or copy it before
    editing)."""
    if seed not in _SHARED:
        from filelock import FileLock

        base = tmp_path_factory.getbasetemp()
        if base.name.startswith("popen-gw"):  # an xdist worker's own folder: the session's is its parent
            base = base.parent
        folder = base / f"shared-results-seed{seed}"
        with FileLock(str(folder) + ".lock"):
            if not (folder / "complete").exists():
                shutil.rmtree(folder, ignore_errors=True)
                build_results(folder / "results", seed=seed, problems=True)
                (folder / "complete").touch()
        _SHARED[seed] = folder / "results"
    return _SHARED[seed]


def sweep_point(axis: str, value: int, batch: int, width: int, rate: float, gflops: float, ceiling: float) -> dict:
    """One ok point of a sweep file (workflow/lib/sweep.py's layout) at `rate` samples/s."""
    return {
        "axis": axis,
        "value": value,
        "batch_size": batch,
        "width": width,
        "hidden": [4, 2],
        "status": "ok",
        "train_samples_per_s": rate,
        "seconds_per_step": batch / rate,
        "gflops": gflops,
        "percent_of_ceiling": 100 * gflops / ceiling,
        "flags": [],
    }


def scale_speed(run: dict, factor: float) -> None:
    t = run["timings"]["train_samples_per_s"]
    for k in ("median", "q1", "q3"):
        t[k] *= factor
    t["raw"] = [v * factor for v in t["raw"]]


def edit_run(tree: Path, experiment: str, label: str, fn, seeds: tuple[int, ...] = (0,)) -> dict:
    """Apply fn to the run results of the given seeds; returns the first one as edited."""
    edited = []
    for seed in seeds:
        path = tree / "runs" / experiment / label / f"seed{seed}.json"
        run = json.loads(path.read_text())
        fn(run)
        path.write_text(json.dumps(run))
        edited.append(run)
    return edited[0]


def seed_calibration(workdir: Path, machine: Path) -> None:
    """The session's calibration as workdir's results/machine.json: Snakemake then has no calibrate job
    to run (the output exists, and the rule has no inputs)."""
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    shutil.copy2(machine, workdir / "results/machine.json")
