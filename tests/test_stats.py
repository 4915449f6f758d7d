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
    base = 1000 * (1 + 0.02 * rng.standard_normal(3))  # three process medians
    assert stats.compare_samples(base * 1.3, base, factor=1.1).verdict == "faster"
    assert stats.compare_samples(base / 1.3, base, factor=1.1).verdict == "slower"
    # beyond the factor but within the processes' own spread (1.15x between runs whose processes
    # already differ by 1.3x): no change
    spread = np.array([1000.0, 1300.0, 1100.0])
    wide = stats.compare_samples(spread * 1.15, spread, factor=1.1)
    assert wide.verdict == "no change" and wide.p_value >= 0.05
    # significant but within the factor
    assert stats.compare_samples(base * 1.05, base, factor=1.1).verdict == "no change"
    assert stats.compare_samples(base, base, factor=1.1, comparable=False).verdict == "not comparable"
    assert stats.compare_samples([], base, factor=1.1).verdict == "not comparable"
    one = stats.compare_samples([2000.0], base, factor=1.1)
    assert one.verdict == "no change" and one.p_value is None and "under 2 units" in one.reason
    # lower is better (e.g. seconds)
    assert stats.compare_samples(base * 1.3, base, factor=1.1, higher_is_better=False).verdict == "slower"


def test_the_unit_is_the_process():
    """Process medians where several processes timed a figure; its repetitions where one did."""
    s = timing.summarize(None, [[100.0, 101.0, 99.0], [130.0, 131.0, 129.0], [110.0, 111.0, 109.0]])
    assert stats.units(s) == [100.0, 130.0, 110.0]
    assert stats.units(timing.summarize([3.0, 1.0, 2.0])) == [3.0, 1.0, 2.0]
    assert stats.units(None) == []


def test_per_probe_each_process_is_divided_by_its_own_reading():
    """A process timed while the machine ran 1.3x faster (its probe read 1.3x higher) is not a faster
    process per GFLOP/s; a figure without a reading for every unit has no per-probe units."""
    s = timing.summarize(None, [[100.0, 101.0, 99.0], [130.0, 131.0, 129.0]])
    assert not stats.has_probe(s) and stats.units(s, per_probe=True) == []
    s["processes"][0]["probe_gflops"], s["processes"][1]["probe_gflops"] = 50.0, 65.0
    assert stats.has_probe(s) and stats.units(s, per_probe=True) == pytest.approx([2.0, 2.0])
    one = timing.summarize([3.0, 1.0, 2.0]) | {"probe_gflops": 2.0}
    assert stats.units(one, per_probe=True) == [1.5, 0.5, 1.0] and stats.has_probe(one)
    one["probe_gflops"] = 0.0
    assert not stats.has_probe(one)


def _runs(rng, pairs: int, processes: int, ratio: float = 1.0) -> list[tuple[dict, dict]]:
    """Pairs of timed figures, each from `processes` fresh processes of 3 repetitions: the process
    level varies 8% (lognormal) and a process's repetitions 1% around it, as on the 2-core machines."""

    def run(scale):  # the fields of timing.summarize that stats.units and the pooled test read
        level = scale * 1000 * np.exp(0.08 * rng.standard_normal(processes))
        groups = level[:, None] * np.exp(0.01 * rng.standard_normal((processes, 3)))
        return {"raw": groups.ravel().tolist(), "processes": [{"median": float(np.median(g))} for g in groups]}

    return [(run(ratio), run(1.0)) for _ in range(pairs)]


@pytest.mark.parametrize("processes", [3, 5])
def test_alike_runs_are_called_moved_at_most_alpha_of_the_time(processes):
    """4,000 pairs of runs drawn alike: the rule (the test alone, factor 1) calls a change in at most
    alpha + 1 point of them, where a test on the repetitions pooled over processes calls one in over 15%.
    A real 1.5x change with the same spreads is called in most pairs."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(processes)
    pairs = _runs(rng, 4000, processes)
    called = sum(stats.compare_samples(stats.units(a), stats.units(b), 1.0).verdict != "no change" for a, b in pairs)
    pooled = sum(mannwhitneyu(a["raw"], b["raw"]).pvalue < stats.ALPHA for a, b in pairs)
    assert called / len(pairs) <= stats.ALPHA + 0.01, called / len(pairs)
    assert pooled / len(pairs) > 0.15, pooled / len(pairs)
    real = _runs(rng, 500, processes, ratio=1.5)
    found = sum(stats.compare_samples(stats.units(a), stats.units(b), 1.1).verdict == "faster" for a, b in real)
    assert found / len(real) > 0.8, found / len(real)
