"""A results tree of the default run's size: what the report's size budget and
first screen are tested on (tests/test_report_size.py), not only the CI-sized tree.

The default config (config/config.yaml): 18 experiments x 8 backends x 5 seeds, the 4 peers on 2
experiments x 1 seed, the sweeps, every dataset with its plot. Real where it costs little: every
dataset and its plot come from the make_dataset job's code, and every experiment is trained by the
NumPy reference through workflow.lib.runner.run_job at the catalogue's full epochs (seeds 0 and 1;
mnist10k-mlp, 67 s at 13 epochs, trains 2 epochs and its histories are continued to 13), so loss
histories, per-epoch curves, decision grids and confusion matrices have a real run's shapes and
sizes. The other backends' runs are that run relabelled, as a parity-grade copy: their loss
histories and decision grids moved by float32 rounding noise (what real backends differ by), their
speeds the reference's raw samples times the backend's speed-up of the default run of 2026-11-22
(README), with their own noise; parity is computed by the runner's own function. Seeds 2-4 are
seed 1's run under their numbers with their losses moved by 1%. Every timed run's samples/s are
3 fresh processes x 3 repetitions summarized by the runner's own summarize (processes, spreads,
interval); every run carries an embedded-store MLflow record, and results/history.json the one parent
of a fresh clone's first run. Built in about 100 s on the 2-core EPYC, niced under load (2026-12-04).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import yaml

import backends
from tests.helpers_results import sweep_point, write_dataset
from tests.paths import ROOT
from workflow.lib import catalogue, plan, runner
from workflow.lib.runner import JobConfig, run_job
from workflow.lib.sweep import summarize_points
from workflow.lib.timing import summarize
from workflow.scripts.train import write_json

# training samples/s over the NumPy reference's in the default run (README, 2026-11-22): small nets
# (moons-mlp) and the one large one (mnist10k-mlp); the peers are the documents' own code
SMALL = {
    "torch": 2.8,
    "tensorflow": 3.3,
    "jax": 8.5,
    "torch-eager": 0.22,
    "tensorflow-eager": 0.034,
    "jax-eager": 1.33,
    "fused": 8.75,
    "keras-tensorflow": 0.032,
    "keras-jax": 0.42,
    "keras-torch": 0.038,
    "torch-idiomatic": 0.2,
}
LARGE = {
    "torch": 1.22,
    "tensorflow": 1.31,
    "jax": 1.44,
    "torch-eager": 0.65,
    "tensorflow-eager": 0.17,
    "jax-eager": 1.22,
    "fused": 1.15,
    "keras-tensorflow": 0.16,
    "keras-jax": 0.77,
    "keras-torch": 0.24,
    "torch-idiomatic": 0.53,
}
LARGE_EXPERIMENTS = ("mnist10k-mlp",)
QUICK_EPOCHS = {"mnist10k-mlp": 2}  # trained this many epochs, its histories continued to the catalogue's
FLOAT32_NOISE = 3e-7  # relative: how far float32 backends' losses and grids sit from the reference's


@functools.cache
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def build_default_tree(results_dir: str | Path) -> Path:
    """Write the tree under results_dir (datasets, runs, sweeps, config.json, devices.json, machine.json)."""
    results_dir = Path(results_dir)
    config = default_config()
    exps = catalogue.select(catalogue.load(), config["experiments"], full_mnist=False)
    npz = {ds: write_dataset(results_dir, ds, 0) for ds in dict.fromkeys(e.dataset for e in exps)}
    rng = np.random.default_rng(24)
    names = list(config["backends"])
    peers = config["peers"]
    for exp in exps:
        trained = _reference_runs(exp, npz[exp.dataset], results_dir)
        labels = names + (list(peers["backends"]) if exp.name in peers["experiments"] else [])
        jitter = {b: float(rng.lognormal(0.0, 0.15)) for b in labels if b != backends.REFERENCE}
        for backend in labels:
            seeds = config["seeds"] if backend in names else config["seeds"][:1]
            for seed in seeds:
                run = _as_seed(trained, seed, rng)
                if backend != backends.REFERENCE:
                    speed = (LARGE if exp.name in LARGE_EXPERIMENTS else SMALL)[backend] * jitter[backend]
                    run = _as_backend(run, backend, speed, rng)
                    run["parity"] = runner.parity(run, _as_seed(trained, seed, None))
                elif run["timings"].get("timed"):
                    run["timings"]["train_samples_per_s"] = processes_timing(
                        trained[0]["timings"]["train_samples_per_s"]["median"], rng
                    )
                run["mlflow"] = _mlflow(results_dir, rng)
                write_json(run, Path(plan.run_file(exp.name, backend, "cpu", seed, str(results_dir))))
    _write_sweeps(results_dir, config, rng)
    write_json({**config, "experiments": [e.name for e in exps]}, results_dir / "config.json")
    all_backends = names + list(peers["backends"])
    write_json(
        {b: {"devices": ["cpu"], "gpu": False, "reason": "devices: [cpu]"} for b in all_backends},
        results_dir / "devices.json",
    )
    write_json(_machine(), results_dir / "machine.json")
    _write_history(results_dir)
    return results_dir


def _machine() -> dict:
    """results/machine.json as the calibrate job writes it (one library, three sizes)."""
    sizes = [
        {"size": n, "median": g, "q1": g, "q3": g, "raw": [g] * 5, "n": 5}
        for n, g in ((256, 150.0), (512, 160.0), (1024, 164.0))
    ]
    return {
        "threads": 1,
        "layout": {"slots": [[1]], "untimed": [0, 1]},
        "ceiling_gflops": 164.0,
        "ceiling_source": "numpy at 1024, best repetition",
        "measurements": [{"library": "numpy", "sizes": sizes}],
    }


def _reference_runs(exp, dataset: Path, results_dir: Path) -> dict[int, dict]:
    """The NumPy reference's real runs of seeds 0 (timed) and 1, at the catalogue's epochs."""
    full = exp.entry["epochs"]
    scale = QUICK_EPOCHS.get(exp.name, full) / full
    cfg = JobConfig(
        threads=1,
        repeats=5,
        seeds=[0, 1],
        inference_batch=1024,
        epochs_scale=scale,
        min_repeat_seconds=0.005,
        results=str(results_dir),
        ceiling_gflops=164.0,
    )
    runs = {r["seed"]: r for r in run_job(exp, backends.REFERENCE, "cpu", dataset, cfg)}
    for r in runs.values():
        if r["status"] != "ok":
            raise RuntimeError(f"{exp.name} seed {r['seed']} did not train: {r['message']}")
        if len(r["loss_history"]) < full:
            _continue_histories(r, full)
    return runs


def _continue_histories(run: dict, epochs: int) -> None:
    """A short run's loss and per-epoch metrics continued to `epochs`, the loss falling at its last pace."""
    loss = run["loss_history"]
    pace = min(loss[-1] / loss[-2], 0.97)
    run["loss_history"] = loss + [loss[-1] * pace**k for k in range(1, epochs - len(loss) + 1)]
    for key, hist in run["metric_history"].items():
        run["metric_history"][key] = hist + [hist[-1]] * (epochs - len(hist))
    run["spec"]["epochs"] = epochs


def _as_seed(trained: dict[int, dict], seed: int, rng: np.random.Generator | None) -> dict:
    run = copy.deepcopy(trained[min(seed, 1)])
    if seed > 1:
        run["seed"] = seed
        factor = 1 + 0.01 * float(rng.standard_normal()) if rng is not None else 1.0
        run["loss_history"] = [v * factor for v in run["loss_history"]]
    return run


def _as_backend(run: dict, backend: str, speed: float, rng: np.random.Generator) -> dict:
    entry = backends.REGISTRY[backend]
    run.update(backend=backend, framework=backend.split("-")[0], mode=entry.mode)
    noise = lambda values: [v * (1 + FLOAT32_NOISE * float(rng.standard_normal())) for v in values]  # noqa: E731
    run["loss_history"] = noise(run["loss_history"])
    grid = run.get("decision_grid")
    for kind in ("proba", "values"):
        if grid and grid.get(kind) is not None:
            grid[kind] = noise(grid[kind])
    t = run["timings"]
    if t.get("timed"):
        t["train_samples_per_s"] = processes_timing(t["train_samples_per_s"]["median"] * speed, rng)
        for k in ("median", "q1", "q3"):
            t["inference_samples_per_s"][k] *= speed
        inference = t["inference_samples_per_s"]
        inference["raw"] = [v * speed for v in inference["raw"]]
        if inference.get("interval"):
            inference["interval"] = {**inference["interval"], "low": inference["interval"]["low"] * speed,
                                     "high": inference["interval"]["high"] * speed}  # fmt: skip
        if inference.get("ci95"):
            inference["ci95"] = [v * speed for v in inference["ci95"]]
        t["variant"] = entry.mode
    return run


def processes_timing(median: float, rng: np.random.Generator) -> dict:
    """train_samples_per_s as the default run writes it: `repeats` samples in each of `timing_processes`
    fresh processes (3 x 3), each process shifted by its own few percent, summarized by the runner's
    own workflow.lib.timing.summarize (processes, spreads, the interval of the process medians)."""
    processes, repeats = default_config()["timing_processes"], default_config()["repeats"]
    groups = []
    for _ in range(processes):
        level = median * float(rng.lognormal(0.0, 0.03))
        groups.append([level * float(rng.lognormal(0.0, 0.02)) for _ in range(repeats)])
    out = summarize([], groups)
    out["ci95"] = [min(out["raw"]), max(out["raw"])]
    return out


def _mlflow(results_dir: Path, rng: np.random.Generator) -> dict:
    """A run's MLflow record as the embedded store's jobs write it."""
    uri = f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"
    return {
        "run_id": f"{int(rng.integers(0, 2**63)):016x}{int(rng.integers(0, 2**63)):016x}",
        "experiment_id": "1",
        "tracking_uri": uri,
    }


def _write_history(results_dir: Path) -> None:
    """results/history.json of a fresh clone's first run: one parent, one point per job (the shape
    workflow/lib/history.py reads out of the store)."""
    from reports.results import load_runs

    parent = {
        "run_id": "0" * 32,
        "commit": "a" * 40,
        "commit_time": "2026-12-04T12:00:00+00:00",
        "start_time": "2026-12-04T12:00:00+00:00",
        "status": "FINISHED",
        "config_hash": "c0ffee",
        "fingerprint": None,
        "versions": {},
        "order": 0,
    }
    groups: dict[tuple, list] = {}
    for r in load_runs(results_dir):
        groups.setdefault((r["experiment"], r["backend"], r["device"]), []).append(r)
    points = []
    for (exp, backend, device), rs in sorted(groups.items()):
        timed = next(r for r in rs if r["timings"].get("timed"))
        s = timed["timings"]["train_samples_per_s"]
        fp = timed["environment"]["fingerprint"]
        points.append(
            {
                "parent_run_id": parent["run_id"],
                "order": 0,
                "commit": parent["commit"],
                "commit_time": parent["commit_time"],
                "experiment": exp,
                "backend": backend,
                "device": device,
                "mode": timed.get("mode"),
                "like": f"{fp}/spec",
                "fingerprint": fp,
                "variant": None,
                "flags": [],
                "versions": {},
                "seeds": [r["seed"] for r in rs],
                "run_ids": [r["mlflow"]["run_id"] for r in rs],
                "figures": {"train_samples_per_s": {"value": s["median"], "samples": s["raw"]}},
            }
        )
    data = {
        "schema_version": 1,
        "tracking_uri": f"sqlite:///{results_dir / 'mlflow.db'}",
        "experiment": "fwbench",
        "read_at": "2026-12-04T12:30:00+00:00",
        "parents": [parent],
        "points": points,
    }
    write_json(data, results_dir / "history.json")


def _write_sweeps(results_dir: Path, config: dict, rng: np.random.Generator) -> None:
    """One sweep file per swept spec and backend (all but the reference), as the sweep jobs write them."""
    from reports.sweeps import PRACTICAL

    specs = ("moons-mlp", "mnist10k-mlp")
    batch_sizes, widths, ceiling = [8, 64, 512, 4096], [16, 128, 1024], 164.0
    swept = [b for b in config["backends"] if b != backends.REFERENCE]
    for sweep in specs:
        for backend in dict.fromkeys([*swept, PRACTICAL]):
            base = (LARGE if sweep in LARGE_EXPERIMENTS else SMALL)[backend] * 4e5
            points = []
            for axis, values in (("batch", batch_sizes), ("width", widths)):
                for v in values:
                    batch = v if axis == "batch" else 32
                    rate = (
                        base
                        * (batch / (batch + 48))
                        * float(rng.lognormal(0, 0.05))
                        / (v / 16 if axis == "width" else 1)
                    )
                    g = rate * 1e-5 * (v / 16 if axis == "width" else 1)
                    points.append(sweep_point(axis, v, batch, v if axis == "width" else 4, rate, g, ceiling))
            out = {
                "schema_version": 1,
                "sweep": sweep,
                "backend": backend,
                "mode": backends.REGISTRY[backend].mode,
                "framework": backend.split("-")[0],
                "device": "cpu",
                "data": "synthetic: standard normal X, seeded",
                "batch_sizes": batch_sizes,
                "widths": widths,
                "machine_ceiling_gflops": ceiling,
                "points": points,
                "fit": summarize_points(points, ceiling),
            }
            path = results_dir / "sweeps" / sweep / f"{backend}-cpu.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out))
