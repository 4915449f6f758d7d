"""The statistics every quoted figure uses: an interval of the median whose coverage holds at the n
used, and the rule that calls a change between two sets of samples "faster", "slower" or "no change".

Why not a bootstrap: with n = 5 values a resampled median is the smallest value 5.8% of the time,
so the bootstrap's 2.5th percentile is the minimum and its "95%" interval is [min, max], whose true
coverage for the median is 1 - 2 x 0.5^n (93.75% at n = 5, 75% at n = 3). The order-statistic
interval below is distribution-free and exact for continuous data: [x_(j), x_(n+1-j)] covers the
population median with probability P(j <= B <= n - j), B ~ Binomial(n, 1/2). Its level is the
real one, stated beside it; at small n it is below the level asked for, and says so.

A change is called only when both hold (asv's rule): the ratio of medians is beyond the stated
factor, and a test on independent units rejects "same level" at `alpha`. Either alone is not enough:
a fixed band calls process-to-process noise a change, and a test alone calls a real but negligible
1% change one.

The unit is the fresh process (`units`): a figure timed in several processes is tested on its
process medians, not on its repetitions pooled. Repetitions of one process share its layout, placement
and code alignment, so they are not independent draws of what a rerun gives; pooling 3 x 3 of them
as 9 independent values made a Mann-Whitney test call 15% of the cells of two runs of one commit
"moved" (README). With 3 process medians a side, Mann-Whitney can never reach p < 0.05 (its
smallest p is 0.10), so the test is Welch's t on the logarithms of the units: timings are
multiplicative, and on logs a shift is a ratio. A figure timed in one process has only its
repetitions to test on: the between-process spread is then unknown, and a process's own shift can
be called a change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # the confidence asked for; the interval states the level it reaches at its n
ALPHA = 0.05  # significance level of the change test
VERDICTS = ("faster", "slower", "no change", "not comparable")
TEST = "Welch's t-test on the logs of the process medians"  # compare_samples' test, as the report and baselines name it


def _binom_cdf_half(k: int, n: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(0, k + 1)) / 2**n


def order_statistic_rank(n: int, level: float = LEVEL) -> tuple[int, float]:
    """The largest j (1-based) such that [x_(j), x_(n+1-j)] covers the median with probability at
    least `level`, and that probability; j = 1 ([min, max]) with its real, lower coverage where no j
    reaches the level."""
    if n < 1:
        raise ValueError("an interval of the median needs at least one value")
    best_j, best_cov = 1, 1 - 2 * 0.5**n
    for j in range(1, (n + 1) // 2 + 1):
        cov = 1 - 2 * _binom_cdf_half(j - 1, n)
        if cov >= level:
            best_j, best_cov = j, cov
        else:
            break
    return best_j, (best_cov if n > 1 else 0.0)


def median_interval(values, level: float = LEVEL) -> dict:
    """{low, high, level, method} of the median of `values` from order statistics (see module doc)."""
    a = np.sort(np.asarray(values, dtype=np.float64))
    if a.size == 0:
        return {"low": None, "high": None, "level": None, "method": "order statistics"}
    j, cov = order_statistic_rank(int(a.size), level)
    return {"low": float(a[j - 1]), "high": float(a[a.size - j]), "level": cov, "method": "order statistics"}


def level_label(level: float | None) -> str:
    """'94% interval' and the like: the level an interval really has, to print beside it."""
    if level is None or level <= 0:
        return "no interval (one value)"
    pct = 100 * level
    return f"{pct:.0f}% interval" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}% interval"


def units(figure: dict | None, per_probe: bool = False) -> list[float]:
    """The independent values a timed figure (timing.summarize's dict) is tested on: its process medians
    where it was timed in 2 or more fresh processes, else its raw repetitions (one process).

    per_probe: each over the speed probe read beside it (workflow/lib/speed_probe.py: a process median
    over its own process's reading, repetitions over the figure's), so the machine's speed while it was
    timed is divided out; [] where a reading is missing (`has_probe` says so first)."""
    figure = figure or {}
    procs = figure.get("processes") or []
    if len(procs) >= 2:
        pairs = [(p.get("median"), p.get("probe_gflops") if per_probe else 1.0) for p in procs]
    else:
        scale = figure.get("probe_gflops") if per_probe else 1.0
        pairs = [(v, scale) for v in figure.get("raw") or []]
    if any(not _positive(s) for _, s in pairs):
        return []
    return [float(v) / float(s) for v, s in pairs if v is not None and math.isfinite(v)]


def has_probe(figure: dict | None) -> bool:
    """Whether `units(figure, per_probe=True)` has a speed-probe reading for every unit (it is empty otherwise)."""
    return bool(units(figure, per_probe=True))


def _positive(v) -> bool:
    return v is not None and math.isfinite(v) and v > 0


def welch_log_p(a, b) -> float | None:
    """Two-sided p-value of Welch's t-test on log(a) vs log(b); None where either has under 2 values, or
    neither side varies (no noise to test a difference against)."""
    from scipy.stats import ttest_ind

    a, b = np.log(np.asarray(a, dtype=np.float64)), np.log(np.asarray(b, dtype=np.float64))
    if a.size < 2 or b.size < 2:
        return None
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else None
    return float(ttest_ind(a, b, equal_var=False).pvalue)


@dataclass(frozen=True)
class Change:
    """this vs other: ratio of medians, the test's p-value, and the verdict (one of VERDICTS)."""

    ratio: float | None
    p_value: float | None
    verdict: str
    reason: str = ""

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "p_value": self.p_value, "verdict": self.verdict, "reason": self.reason}


def compare_samples(
    this, other, factor: float, alpha: float = ALPHA, higher_is_better: bool = True, comparable: bool = True
) -> Change:
    """The verdict on `this` against `other` (independent units of one figure, e.g. process medians of
    samples/s: `units`): "faster" or "slower" only when the ratio of medians is beyond `factor` (either
    way) and Welch's p on the logs < alpha; "no change" otherwise; "not comparable" when `comparable` is
    false or either side has no samples."""
    this = [float(v) for v in ([] if this is None else this) if v is not None and math.isfinite(v)]
    other = [float(v) for v in ([] if other is None else other) if v is not None and math.isfinite(v)]
    if not comparable:
        return Change(None, None, "not comparable", "another environment fingerprint")
    if not this or not other:
        return Change(None, None, "not comparable", "no samples on one side")
    m_this, m_other = float(np.median(this)), float(np.median(other))
    if m_other <= 0 or m_this <= 0:
        return Change(None, None, "not comparable", "a median is not positive")
    if min(this + other) <= 0:
        return Change(None, None, "not comparable", "a value is not positive (the test is on logarithms)")
    ratio = m_this / m_other
    p = welch_log_p(this, other)
    beyond = ratio > factor or ratio < 1 / factor
    if not beyond:
        return Change(ratio, p, "no change", f"within x/÷{factor:g}")
    if p is None or p >= alpha:
        few = "under 2 units a side" if min(len(this), len(other)) < 2 else "no spread on either side"
        why = f"{few}: no test" if p is None else f"not significant (p = {p:.2g} >= {alpha:g})"
        return Change(ratio, p, "no change", why)
    better = ratio > 1 if higher_is_better else ratio < 1
    return Change(ratio, p, "faster" if better else "slower", f"beyond x/÷{factor:g}, p = {p:.2g}")
