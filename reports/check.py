"""The CI regression check: compare a run's results with reports/baselines.json.

    python -m reports.check --results results --baselines reports/baselines.json [--fail-on-throughput]
        [--junit results/check.junit.xml] [--markdown results/check.md]

Fails (exit 1, with a table of what regressed) when any run failed or diverged, did not honour
its thread count (CPU/wall above threads x 1.15 in a timed section), or claims a speed above the
machine ceiling (an impossible figure); or, for an experiment/run in the baselines: a quality
metric's median over the seeds (accuracy, F1, MSE) moved beyond its tolerance, the loss curve left the run's own float32
parity bound (derived from float32 numerics in the same pipeline run, so it holds on any CPU), or
the run is missing (unless results/devices.json says it was not scheduled, e.g. no GPU). Flagged
without failing: foreign load during timing, unstable timings, a variant other than the
baseline's. Throughput is compared only as ratios between runs of the
same pipeline run (see reports.baselines); a ratio is flagged only when it moved by more than the
stated factor and Welch's t-test on the logs of the process medians says it is significant (p < 0.05,
workflow/lib/stats.py compare_samples: each row's verdict is "no change", "faster", "slower" or
"not comparable"), and fails only with --fail-on-throughput or "throughput": {"fail": true} in the
baselines. Ratios of runs whose environment fingerprint differs from the recorded one, or timed
under foreign load (another process's share of the CPU is not the code's), are printed as not
comparable. Exit 0 with "all N checks passed" otherwise; exit 2 on bad input.
Failures listed in reports/known_failures.yaml (each with its reason) are shown as KNOWN and do
not fail; a listed failure that now passes is noted. Beside the printed table, every check goes to
a JUnit XML file (a test case each, for CI test views) and, with --markdown, to a markdown summary
(reports/check_report.py writes both).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from reports import check_report
from reports.results import (
    ResultsError,
    fingerprint,
    load_devices,
    load_runs,
    metric,
    not_scheduled,
    num,
    ratio_samples,
    run_label,
    throughput,
)
from reports.seeds import seed_groups, timed_runs
from workflow.lib.stats import compare_samples
from workflow.lib.timing import CPU_WALL_TOLERANCE

LOWER_IS_BETTER = {"mse", "mae", "loss"}


@dataclass
class Check:
    experiment: str
    run: str
    metric: str
    expected: str
    got: str
    tolerance: str
    verdict: str
    fails: bool = False
    note: bool = False  # shown even when it does not fail (flagged, not comparable, not scheduled, new)


def load_baselines(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ResultsError(
            f"baselines file {path} not found; create it from a trusted run with "
            f"`python -m reports.baselines --results results --out {path}`"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ResultsError(f"cannot parse baselines {path}: {e}; regenerate it with python -m reports.baselines") from e
    if not isinstance(data, dict) or data.get("schema_version") != 2 or not isinstance(data.get("experiments"), dict):
        raise ResultsError(
            f"{path} is not a schema_version 2 baselines file (medians over seeds) with an 'experiments' map; "
            "regenerate it with python -m reports.baselines"
        )
    return data


KNOWN_FAILURES = Path(__file__).with_name("known_failures.yaml")


def load_known_failures(path: str | Path = KNOWN_FAILURES) -> list[dict]:
    """reports/known_failures.yaml: tracked, explained failures (see its header)."""
    import yaml

    path = Path(path)
    entries = yaml.safe_load(path.read_text()) if path.is_file() else []
    for e in entries or []:
        missing = {"experiment", "run", "check", "why"} - set(e)
        if missing:
            raise ResultsError(f"{path}: entry {e} lacks {sorted(missing)}; every known failure names all four")
    return entries or []


def apply_known(rows: list[Check], known: list[dict]) -> list[Check]:
    """A failing row that matches a known failure is shown as KNOWN (not failing); a known failure
    whose row passes gets a note saying so, so the list never hides a fix."""
    out = list(rows)
    for k in known:
        hits = [r for r in rows if (r.experiment, r.run, r.metric) == (k["experiment"], k["run"], k["check"])]
        for r in hits:
            if r.fails:
                r.verdict, r.fails, r.note = f"KNOWN ({r.verdict}): {' '.join(k['why'].split())}", False, True
            else:
                r.verdict, r.note = f"{r.verdict}; listed in {KNOWN_FAILURES.name}: fixed? remove the entry", True
    return out


def g(v: float | None, spec: str = ".4g") -> str:
    return "—" if v is None else format(v, spec)


def check(
    runs: list[dict], baselines: dict, devices: dict | None = None, fail_on_throughput: bool = False
) -> list[Check]:
    """Every check of the baselines against the runs (one results dir)."""
    devices = devices or {}
    tp = baselines.get("throughput") or {}
    factor = float(tp.get("factor", 3.0))
    tp_fails = fail_on_throughput or bool(tp.get("fail", False))
    groups = seed_groups(runs)
    index = {(r["experiment"], run_label(r)): r for r in timed_runs(runs)}  # the timed seed of each job
    out: list[Check] = []
    for exp, exp_base in sorted(baselines["experiments"].items()):
        for label, base in sorted(exp_base.get("runs", {}).items()):
            seeds = groups.get((exp, label))
            if not seeds:
                reason = not_scheduled(devices, base.get("backend", ""), base.get("device", ""))
                if reason:
                    out.append(Check(exp, label, "run", "present", "absent", "", f"not scheduled: {reason}", note=True))
                else:
                    out.append(Check(exp, label, "run", "present", "absent", "", "MISSING", fails=True))
                continue
            bad = [r for r in seeds if r["status"] != "ok"]
            for r in bad:
                msg = (r.get("message") or "").strip().splitlines()
                detail = f": {msg[0][:100]}" if msg else ""
                out.append(
                    Check(exp, f"{label} seed {r['seed']}", "status", "ok", r["status"], "", f"FAILED{detail}", True)
                )
            if bad:
                continue
            out.append(Check(exp, label, "status", "ok", f"ok ({len(seeds)} seeds)", "", "pass"))
            out += _quality(exp, label, seeds, base)
            for r in seeds:
                out += _parity(exp, f"{label} seed {r['seed']}", r)
            timed = index.get((exp, label))
            if timed is not None:
                out += _variant(exp, label, timed, base)
                out += _throughput(exp, label, timed, base, exp_base, index, factor, tp_fails)
    for (exp, label), seeds in sorted(groups.items()):
        for r in seeds:
            out += _flags(exp, f"{label} seed {r['seed']}", r)
        if label in (baselines["experiments"].get(exp) or {}).get("runs", {}):
            continue
        for r in seeds:
            if r["status"] != "ok":  # a training that did not finish fails the check, baselined or not
                where = f"{label} seed {r['seed']}"
                out.append(Check(exp, where, "status", "ok", r["status"], "", "FAILED (not in baselines)", fails=True))
        if all(r["status"] == "ok" for r in seeds):
            out.append(Check(exp, label, "run", "—", "ok", "", "new: not in baselines", note=True))
    return out


def _quality(exp: str, label: str, seeds: list[dict], base: dict) -> list[Check]:
    """The median over the seeds against the baseline's median over the same seeds."""
    got_seeds, want_seeds = [r["seed"] for r in seeds], base.get("seeds")
    if want_seeds is not None and sorted(want_seeds) != sorted(got_seeds):
        verdict = f"not comparable: seeds {got_seeds}, baselines from seeds {want_seeds}; refresh the baselines"
        return [Check(exp, label, "quality", str(want_seeds), str(got_seeds), "", verdict, note=True)]
    out = []
    for key, b in sorted((base.get("metrics") or {}).items()):
        split, _, name = key.partition(".")
        expected, tol = float(b["expected"]), float(b["tolerance"])
        values = [metric(r, split, name) for r in seeds]
        got = statistics.median(values) if all(v is not None and math.isfinite(v) for v in values) else None
        row = Check(exp, label, key, g(expected), g(got), f"± {tol:.3g} (median of {len(values)} seeds)", "pass")
        if got is None:
            row.verdict, row.fails = "FAILED: no value", True
        elif abs(got - expected) > tol:
            worse = (got > expected) if name in LOWER_IS_BETTER else (got < expected)
            row.verdict = "REGRESSED" if worse else "CHANGED (better; refresh baselines if intended)"
            row.fails = True
        out.append(row)
    return out


def _parity(exp: str, label: str, run: dict) -> list[Check]:
    """The loss curve against the reference's, within the bound of the run's own float32 numerics
    (its worst epoch against that epoch's bound: from the first kink crossing on, the crossing's) and,
    after a crossing, the final metrics within the reference's seed spread (workflow/lib/parity.py)."""
    p = run.get("parity") or {}
    bound = num(p.get("bound"))
    if bound is None:
        return []
    got, kink = num(p.get("max_rel_loss_deviation")), p.get("kink_crossing_epoch")
    if kink is not None and p.get("worst_epoch"):  # per-epoch bounds: the epoch nearest its own
        got, bound = num(p["worst_epoch"]["deviation"]), num(p["worst_epoch"]["bound"])
    why = "float32 numerics" if kink is None else f"float32 numerics; kink crossing from epoch {kink}"
    row = Check(exp, label, "parity", f"≤ {bound:.3g}", g(got, ".3g"), why, "pass")
    if got is None or not math.isfinite(got):
        row.verdict, row.fails = "FAILED: no parity value", True
    elif got > bound:
        row.verdict, row.fails = "BEYOND BOUND", True
    elif p.get("within_seed_spread") is False:
        row.verdict, row.fails = "BEYOND SEED SPREAD", True
    return [row]


def foreign(flags: list[str] | None) -> bool:
    """Whether a run's timing was flagged for foreign load (its figures say nothing about the code)."""
    return any(f.startswith("foreign load") for f in flags or [])


def _flags(exp: str, label: str, run: dict) -> list[Check]:
    """Timing proof, judged from the figures themselves (a results file cannot talk its way past it):
    CPU/wall above threads x CPU_WALL_TOLERANCE or a speed above the machine ceiling fail; the run's
    other flags (foreign load, unstable, variant changed) are shown."""
    t = run.get("timings") or {}
    sec = t.get("section") or {}
    out = []
    ratio, threads = num(sec.get("cpu_per_wall")), sec.get("threads") or run.get("threads") or 1
    if ratio is not None and ratio > threads * CPU_WALL_TOLERANCE:
        verdict = f"FAILED: threads not honoured (CPU/wall {ratio:.2f} > {threads} x {CPU_WALL_TOLERANCE})"
        out.append(
            Check(exp, label, "threads", f"≤ {threads * CPU_WALL_TOLERANCE:.2f}", f"{ratio:.2f}", "", verdict, True)
        )
    pct = num(t.get("percent_of_ceiling"))
    if pct is not None and pct > 100:
        verdict = (
            f"FAILED: impossible, {pct:.0f}% of the machine ceiling {num(t.get('machine_ceiling_gflops')):.1f} GFLOP/s"
        )
        out.append(Check(exp, label, "impossible", "≤ 100%", f"{pct:.0f}%", "", verdict, True))
    for flag in run.get("flags") or []:
        kind = flag.split(":", 1)[0]
        if kind in ("parity", "threads not honoured", "impossible"):
            continue  # judged above and by _parity
        out.append(Check(exp, label, "timing", "clean", kind, "", f"FLAGGED: {flag}", note=True))
    return out


def _variant(exp: str, label: str, run: dict, base: dict) -> list[Check]:
    want, got = base.get("variant"), (run.get("timings") or {}).get("variant")
    if not want or want == got:
        return []
    fallback = (run.get("timings") or {}).get("fallback")
    why = f" (fallback: {fallback})" if fallback else ""
    return [Check(exp, label, "variant", want, str(got), "", f"FLAGGED: another code path ran{why}", note=True)]


def _throughput(
    exp: str, label: str, run: dict, base: dict, exp_base: dict, index: dict, factor: float, fails: bool
) -> list[Check]:
    ratios = base.get("throughput") or {}
    den_label = exp_base.get("ratio_to")
    den = index.get((exp, den_label))
    out = []
    for kind in ("train", "inference"):
        if kind not in ratios:
            continue
        expected = float(ratios[kind])
        row = Check(exp, label, f"{kind} speed / {den_label}", f"{expected:.3g}", "—", f"÷{factor:g}…×{factor:g}", "")
        a, b = throughput(run, kind), (throughput(den, kind) if den else None)
        fp_run, fp_den = fingerprint(run), fingerprint(den) if den else None
        if a is None or b is None:
            row.verdict, row.note = f"not comparable: no {kind} throughput for this run or {den_label}", True
        elif foreign(run.get("flags")) or foreign(den.get("flags")):
            row.got = f"{a / b:.3g}"
            row.verdict = "not comparable: timed under foreign load (rerun on an idle machine)"
            row.note = True
        elif fp_run != base.get("fingerprint") or fp_den != exp_base.get("ratio_to_fingerprint"):
            row.got = f"{a / b:.3g}"
            row.verdict = (
                f"not comparable: fingerprint {base.get('fingerprint')}/{exp_base.get('ratio_to_fingerprint')} "
                f"→ {fp_run}/{fp_den}"
            )
            row.note = True
        elif not (base.get("throughput_samples") or {}).get(kind):
            row.got = f"{a / b:.3g}"
            row.verdict = "not comparable: the baseline has no throughput samples (refresh it: fwbench baseline)"
            row.note = True
        else:
            row.got = f"{a / b:.3g}"
            change = compare_samples(ratio_samples(run, den, kind), base["throughput_samples"][kind], factor)
            if change.verdict in ("faster", "slower"):
                row.verdict = f"FLAGGED: {change.verdict}, ratio moved ×{change.ratio:.2g} ({change.reason})"
                row.verdict += "" if fails else " (not failing)"
                row.fails, row.note = fails, True
            else:
                row.verdict = f"pass: {change.verdict} ({change.reason})"
        out.append(row)
    return out


def table(rows: list[Check]) -> str:
    """A left-aligned plain-text table (it goes to CI logs)."""
    header = ("experiment", "backend", "metric", "expected", "got", "tolerance", "verdict")
    cells = [header] + [(r.experiment, r.run, r.metric, r.expected, r.got, r.tolerance, r.verdict) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports.check", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the results directory to check (default: results)")
    ap.add_argument("--baselines", default="reports/baselines.json", help="the baselines file")
    ap.add_argument("--fail-on-throughput", action="store_true", help="a flagged throughput ratio fails the check")
    ap.add_argument("--verbose", action="store_true", help="print every check, not only failures and notes")
    ap.add_argument(
        "--junit", default=None, help="JUnit XML of every check (default: RESULTS/check.junit.xml; '' writes none)"
    )
    ap.add_argument("--markdown", default=None, help="also write the summary and table as markdown to this file")
    ap.add_argument(
        "--baseline-from-history",
        type=int,
        default=None,
        metavar="N",
        help="expected values from the last N like-for-like parents of the store instead of --baselines "
        "(reports/history_check.py)",
    )
    ap.add_argument("--history", default=None, help="the history rows (default: RESULTS/history.json)")
    args = ap.parse_args(argv)
    if args.baseline_from_history is not None and args.baseline_from_history < 1:
        ap.error("--baseline-from-history N needs N >= 1 (the number of earlier parents to compare with)")
    junit = Path(args.results) / "check.junit.xml" if args.junit is None else (Path(args.junit) if args.junit else None)
    if args.baseline_from_history:
        from reports import history_check

        source = args.history or str(Path(args.results) / "history.json")
        try:
            history = history_check.hist.load_history(source)
            runs = load_runs(args.results)
        except ResultsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        rows = history_check.check(runs, history, args.baseline_from_history)
        args.baselines = f"the last {args.baseline_from_history} like-for-like parents in {source}"
        return _finish(rows, args, junit)
    try:
        baselines = load_baselines(args.baselines)
        runs = load_runs(args.results)
        devices = load_devices(args.results)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        known = load_known_failures()
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = apply_known(check(runs, baselines, devices, args.fail_on_throughput), known)
    return _finish(rows, args, junit)


def _finish(rows: list[Check], args: argparse.Namespace, junit: Path | None) -> int:
    """Print the table and summary, write JUnit and markdown; the exit status."""
    failed = [r for r in rows if r.fails]
    shown = rows if args.verbose else [r for r in rows if r.fails or r.note]
    counted = [r for r in rows if not (r.note and not r.fails)]
    if shown:
        print(table(shown))
        print()
    notes = len([r for r in rows if r.note])
    if failed:
        summary = f"{len(failed)} of {len(counted)} checks failed (baselines: {args.baselines})"
    else:
        summary = f"all {len(counted)} checks passed" + (f" ({notes} note(s) above)" if notes else "")
    if junit:
        check_report.write_junit(rows, junit, args.baselines)
    if args.markdown:
        check_report.write_markdown(rows, summary, args.markdown, args.verbose)
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
