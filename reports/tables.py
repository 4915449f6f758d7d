"""The report's tables as plain data: one dict per row, numbers as numbers (None where absent), no markup.

reports/html.py renders them through reports/templates/; each function here is one table of the page.
"""

from __future__ import annotations

import json
from typing import Any

from reports.overview import mlflow_link
from reports.results import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    SPLITS,
    fingerprint,
    metric,
    num,
    reference_name,
    run_label,
    sort_key,
    speedup_vs_slowest,
    timing,
)
from reports.seeds import seed_groups, stats, timed_runs

ENV_FIELDS = ("device", "device_name", "cpu", "cores", "threads", "precision", "versions", "os", "python")
LOWER_IS_BETTER = ("mse", "mae", "loss")


def by_experiment(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by experiment, experiments by name, runs in report order (reference first)."""
    out: dict[str, list[dict]] = {}
    for r in sorted(runs, key=sort_key):
        out.setdefault(r["experiment"], []).append(r)
    return out


def spec_text(spec: dict) -> tuple[str, str]:
    """Model and optimizer of a spec, one line each: 'mlp 2-4-2-1 tanh → sigmoid', 'adam lr 0.001, eps 1e-07'."""
    if not spec:
        return "—", "—"
    layers = "-".join(str(v) for v in [spec.get("n_inputs"), *(spec.get("hidden") or []), spec.get("n_outputs")])
    act = f" {spec.get('activation')}" if spec.get("hidden") else ""
    model = f"{spec.get('kind')} {layers}{act} → {spec.get('head')}"
    o = spec.get("optimizer") or {}
    opt = f"{o.get('name')} lr {o.get('learning_rate')}"
    if o.get("name") == "adam":
        opt += f", eps {o.get('eps')}"
    elif o.get("momentum"):
        opt += f", momentum {o.get('momentum')}"
    return model, opt


def status_counts(runs: list[dict]) -> dict[str, int]:
    """How many experiments, runs, runs per status and environment fingerprints the results hold."""
    counts = {s: sum(r["status"] == s for r in runs) for s in ("ok", "diverged", "failed")}
    return {
        "experiments": len({r["experiment"] for r in runs}),
        "runs": len(runs),
        **counts,
        "fingerprints": len({fingerprint(r) for r in runs}),
    }


def experiments_table(runs: list[dict]) -> list[dict]:
    """What was run: one row per experiment, with its spec and the label and status of each of its runs."""
    rows = []
    for exp, rs in by_experiment(runs).items():
        r0 = next((r for r in rs if r.get("spec")), rs[0])
        spec = r0.get("spec") or {}
        model, optimizer = spec_text(spec)
        rows.append(
            {
                "experiment": exp,
                "stands_in_for": r0.get("stands_in_for"),
                "dataset": r0["dataset"],
                "task": r0["task"],
                "reconstructed": any(r.get("reconstructed_labels") for r in rs),
                "model": model,
                "optimizer": optimizer,
                "epochs": spec.get("epochs"),
                "batch_size": spec.get("batch_size"),  # None: full batch
                "dtype": spec.get("dtype"),
                "seed": r0.get("seed"),
                "runs": [{"label": run_label(r), "status": r["status"], "mlflow": mlflow_link(r)} for r in rs],
            }
        )
    return rows


def environment_table(runs: list[dict]) -> list[dict]:
    """One row per environment fingerprint, in the order the runs first show it."""
    envs: dict[str, list[dict]] = {}
    for r in runs:
        envs.setdefault(fingerprint(r) or "none", []).append(r)
    rows = []
    for fp, rs in envs.items():
        env = rs[0].get("environment") or {}
        precision = env.get("precision") or {}
        rows.append(
            {
                "fingerprint": fp,
                "runs": sorted({run_label(r) for r in rs}),
                "n_runs": len(rs),
                "device": env.get("device_name") or rs[0]["device"],
                "cpu": env.get("cpu"),
                "cores": env.get("cores"),
                "threads": env.get("threads", rs[0].get("threads")),
                "dtype": precision.get("dtype"),
                "tf32": bool(precision.get("tf32")),
                "versions": dict(sorted((env.get("versions") or {}).items())),
                "os": env.get("os"),
                "python": env.get("python"),
                "git_commit": (env.get("git_commit") or "")[:12] or None,
            }
        )
    return rows


def machine_table(machine: dict | None) -> dict | None:
    """The calibration (results/machine.json): the ceiling and each library's SGEMM GFLOP/s by size."""
    if not machine:
        return None
    return {
        "ceiling": num(machine.get("ceiling_gflops")),
        "source": machine.get("ceiling_source"),
        "threads": machine.get("threads"),
        "cpus": (machine.get("layout") or {}),
        "rows": [
            {"library": m["library"], "sizes": {s["size"]: num(s["median"]) for s in m["sizes"]}}
            for m in machine.get("measurements") or []
        ],
        "errors": machine.get("errors") or {},
    }


def environment_differences(runs: list[dict]) -> list[str]:
    """The fingerprint fields in which the runs differ."""

    def field(run: dict, name: str) -> Any:
        return run["device"] if name == "device" else (run.get("environment") or {}).get(name)

    return [f for f in ENV_FIELDS if len({json.dumps(field(r, f), sort_keys=True) for r in runs}) > 1]


def quality_tables(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Final metrics per backend-device over its seeds: (classification rows, regression rows);
    row[split][metric] is the median over the finished seeds, row["range"][split][metric] (min, max)."""
    classification, regression = [], []
    for (exp, _), rs in seed_groups(runs).items():
        head, ok = rs[0], [r for r in rs if r["status"] == "ok"]
        names = REGRESSION_METRICS if head["task"] == "regression" else CLASSIFICATION_METRICS
        cells = {split: {m: stats([metric(r, split, m) for r in ok]) for m in names} for split in SPLITS}
        finals = stats([num(r["loss_history"][-1]) for r in ok if r.get("loss_history")])
        row = {
            "experiment": exp,
            "backend": head["backend"],
            "mode": head.get("mode"),
            "device": head["device"],
            "status": "ok" if ok else head["status"],
            "seeds": len(rs),
            "seeds_ok": len(ok),
            **{split: {m: c["median"] for m, c in cells[split].items()} for split in SPLITS},
            "range": {split: {m: (c["min"], c["max"]) for m, c in cells[split].items()} for split in SPLITS},
            "final_loss": finals["median"],
        }
        (regression if head["task"] == "regression" else classification).append(row)
    return classification, regression


def _rate(run: dict, kind: str, speedup: float | None) -> dict:
    key = f"{kind}_samples_per_s"
    return {
        "median": num(timing(run, key, "median")),
        "q1": num(timing(run, key, "q1")),
        "q3": num(timing(run, key, "q3")),
        "unstable": bool(timing(run, key, "unstable")),
        "speedup": speedup,
        "interval": _interval(timing(run, key, "interval")),
        "within": num(timing(run, key, "within_process_spread")),
        "between": num(timing(run, key, "between_process_spread")),
        "processes": len(timing(run, key, "processes") or []),
    }


def _interval(iv: Any) -> dict | None:
    """The order-statistic interval of the median {low, high, level, method}; None where a run has none."""
    if not isinstance(iv, dict) or num(iv.get("low")) is None or num(iv.get("high")) is None:
        return None
    return {"low": num(iv["low"]), "high": num(iv["high"]), "level": num(iv.get("level")), "method": iv.get("method")}


def time_to_target(run: dict) -> dict | None:
    """A run's time to target: reached, seconds, epochs, best, and the goal (split, metric, value); None: no target."""
    t = timing(run, "time_to_target")
    if not isinstance(t, dict):
        return None
    return {
        "reached": bool(t.get("reached")),
        "seconds": num(t.get("seconds")),
        "epochs": t.get("epochs"),
        "best": num(t.get("best")),
        "split": t.get("split"),
        "metric": t.get("metric"),
        "goal": num(t.get("target", t.get("value"))),
        "lower_is_better": t.get("metric") in LOWER_IS_BETTER,
    }


def throughput_table(runs: list[dict]) -> list[dict]:
    """Throughput, compile time, time to target and memory of every finished timed run (the first seed of
    each job unless time_all_seeds); speed-up vs the slowest."""
    rows = []
    for exp, rs in by_experiment(timed_runs(runs)).items():
        speed = {k: speedup_vs_slowest(rs, k) for k in ("train", "inference")}
        for r in rs:
            if r["status"] != "ok":
                continue
            label = run_label(r)
            rows.append(
                {
                    "experiment": exp,
                    "backend": r["backend"],
                    "device": r["device"],
                    "fingerprint": fingerprint(r),
                    "train": _rate(r, "train", speed["train"].get(label)),
                    "inference": _rate(r, "inference", speed["inference"].get(label)),
                    "compile_seconds": num(timing(r, "compile_seconds")),
                    "first_epoch_seconds": num(timing(r, "first_epoch_seconds")),
                    "cpu_per_wall": num(timing(r, "section", "cpu_per_wall")),
                    "gflops": num(timing(r, "train_gflops")),
                    "percent_of_ceiling": num(timing(r, "percent_of_ceiling")),
                    "variant": timing(r, "variant"),
                    "fallback": timing(r, "fallback"),
                    "flags": list(r.get("flags") or []),
                    "time_to_target": time_to_target(r),
                    "peak_rss_mb": num((r.get("memory") or {}).get("peak_rss_mb")),
                }
            )
    return rows


def parity_table(runs: list[dict]) -> list[dict]:
    """Each backend-device's loss-curve deviation from the reference, the largest over its seeds.

    kind: 'status' (no seed finished), 'reference', 'missing' (note says why) or 'measured'
    (deviation: max relative deviation over epochs and seeds, final_metric_difference: metric ->
    the difference of largest magnitude over the seeds, seeds: how many seeds were compared).
    """
    reference = reference_name(runs)
    rows = []
    for (exp, _), rs in seed_groups(runs).items():
        head, ok = rs[0], [r for r in rs if r["status"] == "ok"]
        row = {
            "experiment": exp,
            "backend": head["backend"],
            "mode": head.get("mode"),
            "device": head["device"],
            "dtype": (head.get("spec") or {}).get("dtype"),
            "status": "ok" if ok else head["status"],
            "kind": "measured",
            "deviation": None,
            "note": None,
            "final_metric_difference": {},
            "seeds": 0,
        }
        measured = [r["parity"] for r in ok if (r.get("parity") or {}).get("max_rel_loss_deviation") is not None]
        if not ok:
            row["kind"] = "status"
        elif head["backend"] == reference:
            row["kind"] = "reference"
        elif not measured:
            row.update(kind="missing", note=(ok[0].get("parity") or {}).get("note") or "not computed")
        else:
            fmd: dict[str, float] = {}
            for p in measured:
                for k, v in (p.get("final_metric_difference") or {}).items():
                    if v is not None and abs(v) >= abs(fmd.get(k, 0.0)):
                        fmd[k] = v
            deviation = max(num(p["max_rel_loss_deviation"]) for p in measured)
            row.update(deviation=deviation, final_metric_difference=fmd, seeds=len(measured))
        rows.append(row)
    return rows


def problems_table(runs: list[dict]) -> list[dict]:
    """The failed and diverged runs with their messages and files."""
    return [
        {
            "experiment": r["experiment"],
            "backend": r["backend"],
            "device": r["device"],
            "status": r["status"],
            "message": r.get("message") or "(no message)",
            "file": r.get("_path"),
        }
        for r in runs
        if r["status"] != "ok"
    ]


def not_scheduled_table(devices: dict[str, dict]) -> list[dict]:
    """The backends the pipeline withheld from a device the config asked for, and why (devices.json)."""
    rows = []
    for backend, entry in devices.items():
        if not entry.get("reason"):
            continue  # nothing withheld: every device the config asked for was scheduled
        scheduled = list(entry.get("devices") or [])
        rows.append(
            {
                "backend": backend,
                "scheduled_on": scheduled,
                "not_scheduled": [d for d in ("cpu", "gpu") if d not in scheduled],
                "reason": entry["reason"],
            }
        )
    return rows
