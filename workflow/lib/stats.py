"""The statistics every quoted figure uses: an interval of the median whose coverage holds at the n
used, and the rule that calls a change between two sets of samples "faster", "slower" or "no change".

Why not a bootstrap: with n = 5 values a resampled median is the smallest value 5.8% of the time,
so the bootstrap's 2.5th percentile is the minimum and its "95%" interval is [min, max], whose true
coverage for the median is 1 - 2 x 0.5^n (93.75% at n = 5, 75% at n = 3). The order-statistic
interval below is distribution-free and exact for continuous data: [x_(j), x_(n+1-j)] covers the
population median with probability P(j <= B <= n - j), B ~ Binomial(n, 1/2). Its level is the
real one, stated beside it; at small n it is below the level asked for, and says so.

A change is called only when both hold (asv's rule): the ratio of medians is beyond the stated
factor, and a two-sided Mann-Whitney U test on the raw samples rejects "same distribution" at
`alpha`. Either alone is not enough: a fixed band calls process-to-process noise a change, and a
test alone calls a real but negligible 1% change one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # the confidence asked for; the interval states the level it reaches at its n
ALPHA = 0.05  # significance level of the change test
VERDICTS = ("faster", "slower", "no change", "not comparable")


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


def mann_whitney_p(a, b) -> float | None:
    """Two-sided Mann-Whitney U p-value of samples a and b (None where either has under 2 values)."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value Mann-Whitney can give at these sizes (complete separation):
    below alpha only from 3 vs 4 samples; 3 vs 3 can never be significant at 0.05."""
    return 2 / math.comb(n_a + n_b, n_a)


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
    """The verdict on `this` against `other` (raw samples of one figure, e.g. samples/s): "faster" or
    "slower" only when the ratio of medians is beyond `factor` (either way) and Mann-Whitney's p < alpha;
    "no change" otherwise; "not comparable" when `comparable` is false or either side has no samples."""
    this = [float(v) for v in ([] if this is None else this) if v is not None and math.isfinite(v)]
    other = [float(v) for v in ([] if other is None else other) if v is not None and math.isfinite(v)]
    if not comparable:
        return Change(None, None, "not comparable", "another environment fingerprint")
    if not this or not other:
        return Change(None, None, "not comparable", "no samples on one side")
    m_this, m_other = float(np.median(this)), float(np.median(other))
    if m_other <= 0 or m_this <= 0:
        return Change(None, None, "not comparable", "a median is not positive")
    ratio = m_this / m_other
    p = mann_whitney_p(this, other)
    beyond = ratio > factor or ratio < 1 / factor
    if not beyond:
        return Change(ratio, p, "no change", f"within x/÷{factor:g}")
    if p is None or p >= alpha:
        why = "too few samples for the test" if p is None else f"not significant (p = {p:.2g} >= {alpha:g})"
        return Change(ratio, p, "no change", why)
    better = ratio > 1 if higher_is_better else ratio < 1
    return Change(ratio, p, "faster" if better else "slower", f"beyond x/÷{factor:g}, p = {p:.2g}")
