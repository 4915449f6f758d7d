"""What one run result becomes in MLflow: its metrics (per-epoch curves at up to MAX_CURVE_POINTS
points, the final figures, each timed figure's statistics and units), params (the spec and its
preprocessing, flattened), tags (context, versions, fingerprint, flags) and the one-line note the UI
shows. Plain functions of the result dict; workflow.lib.tracking writes them to the store."""

from __future__ import annotations

import json
import math
from itertools import accumulate

from workflow.lib.stats import level_label

MAX_PARAM_VALUE = 6000  # MLflow's limit on a param's value
MAX_CURVE_POINTS = 100  # epochs of a per-epoch curve (loss, accuracy/MSE) logged to MLflow (curve_steps)
GIT_COMMIT_TAG = "mlflow.source.git.commit"
NOTE_TAG = "mlflow.note.content"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def epoch_ends_ms(r: dict) -> list[int]:
    """Each epoch's end in Unix ms: the quality training's start plus its epochs' seconds so far (the
    epochs hold all of a training's work: TrainResult), capped at its recorded end. [] without them."""
    span = (r.get("timings") or {}).get("training_wall") or {}
    if "start" not in span or not span.get("epoch_seconds"):
        return []
    return [int(min(span["start"] + t, span["end"]) * 1000) for t in accumulate(span["epoch_seconds"])]


def run_metrics(r: dict) -> list[tuple[str, float, int, bool]]:
    """(key, value, step, per_epoch): per-epoch points get their epoch's end time, the others the run's end."""
    out: list[tuple[str, float, int, bool]] = []
    losses = r.get("loss_history") or []
    for e in curve_steps(len(losses)):
        out.append(("loss", float(losses[e]) if losses[e] is not None else float("nan"), e, True))
    t = r.get("timings") or {}
    for name, hist in (r.get("metric_history") or {}).items():
        for e in curve_steps(len(hist)):
            if _finite(hist[e]):
                out.append((name, float(hist[e]), e, True))
    out += [(k, v, s, False) for k, v, s in _final_metrics(r, t)]
    return out


def _final_metrics(r: dict, t: dict) -> list[tuple[str, float, int]]:
    out: list[tuple[str, float, int]] = []
    for split, m in (r.get("metrics") or {}).items():
        for k, v in (m or {}).items():
            if _finite(v):
                out.append((f"{split}_{k}", float(v), 0))
    for k in ("compile_seconds", "first_epoch_seconds", "train_gflops", "percent_of_ceiling", "probe_gflops"):
        if _finite(t.get(k)):
            out.append((k, float(t[k]), 0))
    for k in ("train_samples_per_s", "inference_samples_per_s"):
        for stat in ("median", "q1", "q3"):
            v = (t.get(k) or {}).get(stat)
            if _finite(v):
                out.append((f"{k}_{stat}", float(v), 0))
        stats = t.get(k) or {}
        for stat in ("within_process_spread", "between_process_spread"):
            if _finite(stats.get(stat)):
                out.append((f"{k}_{stat}", float(stats[stat]), 0))
        interval = stats.get("interval") or {}
        for end in ("low", "high"):
            if _finite(interval.get(end)):
                out.append((f"{k}_interval_{end}", float(interval[end]), 0))
        for i, proc in enumerate(stats.get("processes") or []):  # one step per fresh process
            if _finite(proc.get("median")):
                out.append((f"{k}_process_median", float(proc["median"]), i))
            if k == "train_samples_per_s" and _finite(proc.get("probe_gflops")):
                out.append(("process_probe_gflops", float(proc["probe_gflops"]), i))
    for i, v in enumerate((t.get("train_samples_per_s") or {}).get("raw") or []):  # for workflow.lib.history
        if _finite(v):
            out.append(("train_samples_per_s_raw", float(v), i))
    sec = t.get("section") or {}
    for k in ("cpu_per_wall", "foreign_share"):
        if _finite(sec.get(k)):
            out.append((f"timed_{k}", float(sec[k]), 0))
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


def curve_steps(n: int) -> list[int]:
    """The epochs of an n-epoch curve (loss, accuracy/MSE) that MLflow gets: every one up to
    MAX_CURVE_POINTS, else that many spread evenly, first and last included. Each point is a database
    row, and inserting them was the largest part of the reference job's MLflow logging (log_batch 53 s of
    158 over 90 runs, 2-core AMD EPYC, 2026-12-07; the 800-epoch nets logged 2,400 points a run); every
    epoch of every curve is in the run's result.json."""
    if n <= MAX_CURVE_POINTS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})


def flatten(prefix: str, d: dict) -> dict:
    """Nested keys as dotted names: MLflow params are flat."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(f"{prefix}{k}.", v))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_params(r: dict) -> dict[str, str]:
    p = {**flatten("spec.", r["spec"]), **flatten("preprocess.", r.get("preprocessing") or {})}
    p.update({k: r[k] for k in ("dataset", "seed", "threads", "repeats") if k in r})
    return {k: param_value(v) for k, v in p.items()}


def param_value(v: object) -> str:
    """A param's value: lists as JSON, cut to MLflow's limit."""
    return (json.dumps(v) if isinstance(v, (list, tuple)) else str(v))[:MAX_PARAM_VALUE]


def plain_commit(commit: str | None) -> str | None:
    """A commit as MLflow's git tag takes it: no '-dirty' suffix, None where it is unknown."""
    sha = (commit or "").removesuffix("-dirty")
    return sha if sha and sha != "unknown" else None


def run_tags(r: dict) -> dict[str, str]:
    env = r.get("environment") or {}
    tags = {k: str(r[k]) for k in ("experiment", "dataset", "backend", "framework", "mode", "device", "status")}
    if r.get("seed") is not None:
        tags["seed"] = str(r["seed"])
    tags["fingerprint"] = str(env.get("fingerprint"))
    tags["git_commit"] = str(env.get("git_commit"))
    if plain_commit(env.get("git_commit")):
        tags[GIT_COMMIT_TAG] = plain_commit(env.get("git_commit"))
    tags[NOTE_TAG] = run_note(r)
    tags["device_name"] = str(env.get("device_name"))
    for pkg, v in (env.get("versions") or {}).items():
        tags[f"version.{pkg}"] = v
    t = r.get("timings") or {}
    tags["variant"] = str(t.get("variant"))
    interval = (t.get("train_samples_per_s") or {}).get("interval") or {}
    if interval.get("level") is not None:  # the real confidence level of the *_interval_low/high metrics
        tags["timing_interval"] = f"{level_label(interval['level'])} {interval.get('method', '')}".strip()
    if t.get("fallback"):
        tags["fallback"] = str(t["fallback"])[:5000]
    if r.get("flags"):
        tags["flags"] = "; ".join(r["flags"])[:5000]
    if r.get("message"):
        tags["message"] = str(r["message"])[:5000]
    return tags


def run_note(r: dict) -> str:
    """One line for the run's description in the UI: what ran, how it ended, its key figures."""
    test = (r.get("metrics") or {}).get("test") or {}
    figures = [f"test {k} {test[k]:.4g}" for k in ("accuracy", "f1", "mse", "r2") if _finite(test.get(k))]
    speed = ((r.get("timings") or {}).get("train_samples_per_s") or {}).get("median")
    if _finite(speed):
        figures.append(f"{speed:,.0f} training samples/s")
    seed = f", seed {r['seed']}" if r.get("seed") is not None else ""
    line = f"{r['experiment']}: {r['backend']} on {r['device']}{seed}, {r['status']}"
    if r["status"] != "ok" and r.get("message"):
        line += f" ({str(r['message']).splitlines()[0][:200]})"
    return f"{line}; {', '.join(figures)}" if figures else line
