"""The statistics of every quoted figure (workflow.lib.stats): the interval of a median covers it as
often as its stated level says, at the n the pipeline uses; a change is called only when it is both
beyond the factor and significant."""

from __future__ import annotations

import numpy as np
import pytest

from workflow.lib import stats, timing

DRAWS = 10_000
# Skewed (and one heavy-tailed) distributions, each with its exact median.
DISTRIBUTIONS = {
    "lognormal": (lambda rng, size: rng.lognormal(0.0, 1.0, size), 1.0),
    "exponential": (lambda rng, size: rng.exponential(1.0, size), np.log(2.0)),
    "gamma(2)": (lambda rng, size: rng.gamma(2.0, 1.0, size), 1.6783469900166608),
    "pareto(3)": (lambda rng, size: 1 + rng.pareto(3.0, size), 2 ** (1 / 3)),
}


@pytest.mark.parametrize("n", [3, 5, 9])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_stated_coverage_holds(name, n):
    """10,000 samples of size n: the interval holds the true median within 2 points of its level."""
    draw, median = DISTRIBUTIONS[name]
    rng = np.random.default_rng(n)
    samples = draw(rng, (DRAWS, n))
    hits, level = 0, None
    for row in samples:
        iv = stats.median_interval(row)
        hits += iv["low"] <= median <= iv["high"]
        level = iv["level"]
    assert abs(hits / DRAWS - level) < 0.02, (name, n, hits / DRAWS, level)


def test_levels_are_the_real_ones():
    """[min, max] at n = 3 and 5 (no narrower interval reaches 95%), labelled at 75% and 93.75%;
    at n = 9 the second-smallest to second-largest, 96.1%."""
    assert stats.order_statistic_rank(3) == (1, 0.75)
    assert stats.order_statistic_rank(5) == (1, 0.9375)
    j, level = stats.order_statistic_rank(9)
    assert j == 2 and level == pytest.approx(1 - 2 * 10 / 512)
    assert stats.level_label(0.9375) == "93.8% interval" and stats.level_label(0.75) == "75% interval"
    iv = timing.summarize([5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 7.0, 8.0, 6.0])["interval"]
    assert (iv["low"], iv["high"]) == (2.0, 8.0)


def test_processes_give_the_interval():
    """Over several processes the interval is that of the process medians, with both spreads beside it."""
    s = timing.summarize(None, [[100.0, 101.0, 99.0], [130.0, 131.0, 129.0], [110.0, 111.0, 109.0]])
    assert s["n"] == 9 and s["median"] == 110.0
    assert (s["interval"]["low"], s["interval"]["high"], s["interval"]["level"]) == (100.0, 130.0, 0.75)
    assert s["between_process_spread"] == pytest.approx(0.3)
    assert s["within_process_spread"] == pytest.approx(1 / 110, rel=0.01)
    assert [p["median"] for p in s["processes"]] == [100.0, 130.0, 110.0]


def test_a_change_needs_the_factor_and_the_test():
    rng = np.random.default_rng(0)
    base = 1000 * (1 + 0.02 * rng.standard_normal(9))
    assert stats.compare_samples(base * 1.3, base, factor=1.1).verdict == "faster"
    assert stats.compare_samples(base / 1.3, base, factor=1.1).verdict == "slower"
    # beyond the factor but on too few samples to tell (3 vs 3 can never reach p < 0.05)
    small = stats.compare_samples(base[:3] * 1.3, base[:3], factor=1.1)
    assert small.verdict == "no change" and small.p_value >= 0.05
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    # significant but within the factor
    assert stats.compare_samples(base * 1.05, base, factor=1.1).verdict == "no change"
    assert stats.compare_samples(base, base, factor=1.1, comparable=False).verdict == "not comparable"
    assert stats.compare_samples([], base, factor=1.1).verdict == "not comparable"
    # lower is better (e.g. seconds)
    assert stats.compare_samples(base * 1.3, base, factor=1.1, higher_is_better=False).verdict == "slower"
