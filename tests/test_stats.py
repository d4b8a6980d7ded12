"""Seed statistics against scipy directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.core.intervals import count_interval, rate_interval
from bench.report.stats import MAX_POWER_SEEDS, holm, paired_comparison, seeds_for_power, summarize


def test_summarize_matches_scipy_t_interval():
    values = [0.91, 0.88, 0.93, 0.9]
    s = summarize(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((low, high))


def test_summarize_edge_cases():
    assert summarize([0.5]) == {"mean": 0.5, "std": None, "n": 1, "ci_low": None, "ci_high": None}
    assert summarize([])["mean"] is None
    assert summarize([None, float("nan"), 0.2, 0.4])["n"] == 2
    flat = summarize([0.3, 0.3, 0.3])
    assert flat["ci_low"] == pytest.approx(0.3) and flat["ci_high"] == pytest.approx(0.3)


def test_paired_comparison_matches_ttest_rel():
    a, b = [0.10, 0.12, 0.08, 0.11], [0.14, 0.15, 0.13, 0.12]
    c = paired_comparison(a, b)
    diff = np.subtract(a, b)
    low, high = stats.t.interval(0.95, 3, loc=diff.mean(), scale=stats.sem(diff))
    assert c["n"] == 4
    assert c["mean_diff"] == pytest.approx(diff.mean())
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((low, high))
    assert c["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_paired_comparison_degenerate_cases_have_no_nan():
    same = paired_comparison([0.1, 0.2, 0.3], [0.0, 0.1, 0.2])  # constant difference
    assert same["p_value"] is None and same["mean_diff"] == pytest.approx(0.1)
    one = paired_comparison([0.1], [0.2])
    assert one["n"] == 1 and one["p_value"] is None and one["ci_low"] is None
    missing = paired_comparison([0.1, None, 0.3], [0.2, 0.2, None])
    assert missing["n"] == 1
    with pytest.raises(ValueError):
        paired_comparison([0.1], [0.1, 0.2])


# --------------------------------------------------------------------------- rates, power, Holm


def test_rate_interval_is_the_logit_scale_t_interval_of_the_mean():
    values = [5.0, 7.5, 4.0, 28.0, 6.0]  # escapes in %, one collapsed seed
    s = summarize(values, rate_scale=100)
    m, n = np.mean(values) / 100, len(values)
    se = np.std(values, ddof=1) / 100 / np.sqrt(n) / (m * (1 - m))
    lo, hi = stats.t.interval(0.95, n - 1, loc=np.log(m / (1 - m)), scale=se)
    assert s["mean"] == pytest.approx(np.mean(values))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((100 / (1 + np.exp(-lo)), 100 / (1 + np.exp(-hi))))
    plain = summarize(values)
    assert plain["ci_low"] < 0 < s["ci_low"]  # the plain t-interval leaves the range; this one does not


def test_rate_intervals_never_leave_0_to_100_and_always_hold_the_mean():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(2, 16))
        kind = rng.integers(4)
        if kind == 0:
            values = rng.uniform(0, 100, n)
        elif kind == 1:  # mostly zeros, as escapes on an easy set
            values = np.where(rng.random(n) < 0.7, 0.0, rng.uniform(0, 2, n))
        elif kind == 2:  # near 100 with collapsed seeds
            values = np.where(rng.random(n) < 0.2, rng.uniform(0, 40, n), rng.uniform(97, 100, n))
        else:
            values = rng.choice([0.0, 100.0, 50.0], n)
        s = summarize(values.tolist(), rate_scale=100)
        assert 0.0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 100.0


def test_rate_interval_edge_cases():
    assert summarize([0.0, 0.0, 0.0], rate_scale=100)["ci_high"] == 0.0
    assert summarize([100.0, 100.0], rate_scale=100)["ci_low"] == 100.0
    assert summarize([93.0], rate_scale=100)["ci_low"] is None
    # Far from the bounds with little spread it is the plain t-interval, to a hundredth.
    s, t = summarize([50.0, 51.0, 49.0, 50.5], rate_scale=100), summarize([50.0, 51.0, 49.0, 50.5])
    assert s["ci_low"] == pytest.approx(t["ci_low"], abs=0.01)


def _exact(events: int, parts: int) -> tuple[float, float]:
    """The Clopper-Pearson interval in %, from scipy's binomial test (independent of ours)."""
    ci = stats.binomtest(events, parts).proportion_ci(0.95, method="exact")
    return 100 * ci.low, 100 * ci.high


def test_count_interval_is_clopper_pearson():
    for events, parts in ((0, 1250), (1, 450), (9, 450), (1656, 1725), (1725, 1725), (3, 3)):
        low, high = count_interval(events, parts)
        assert (100 * low, 100 * high) == pytest.approx(_exact(events, parts))
    with pytest.raises(ValueError):
        count_interval(5, 4)


def test_a_rate_without_spread_gets_the_interval_of_its_counts_never_zero_width():
    # 0% on every seed: overkill 0 of 125 good parts on 10 seeds (issue 24). The rule of three
    # says the rate could still be about 0.24%; the two-sided exact interval reaches 0.29%.
    zero = summarize([0.0] * 10, rate_scale=100, n_parts=125)
    assert (zero["ci_low"], zero["ci_high"]) == pytest.approx(_exact(0, 1250))
    assert zero["ci_high"] > 100 * 3 / 1250
    # 100% on every seed, and identical values away from the bounds (96.0 three times).
    full = summarize([100.0] * 3, rate_scale=100, n_parts=575)
    assert (full["ci_low"], full["ci_high"]) == pytest.approx(_exact(1725, 1725))
    same = summarize([96.0] * 3, rate_scale=100, n_parts=575)
    assert (same["ci_low"], same["ci_high"]) == pytest.approx(_exact(1656, 1725))
    assert same["ci_low"] < 96.0 < same["ci_high"]
    # Equal values whose float spread is rounding (numpy's sd of 0.8, 0.8, 0.8 is 1e-16).
    rounding = summarize([0.8] * 3, rate_scale=100, n_parts=125)
    assert (rounding["ci_low"], rounding["ci_high"]) == pytest.approx(_exact(3, 375))
    for s in (zero, full, same):
        assert s["ci_high"] - s["ci_low"] > 0.1
    # Parts that differ between seeds: their mean per seed.
    assert rate_interval(0.0, 0.0, 2, n_parts=99.5) == pytest.approx(_exact(0, 199))
    # Where the seeds do spread, the counts change nothing: the logit-scale interval as before.
    spread = [5.0, 7.5, 4.0]
    assert summarize(spread, rate_scale=100, n_parts=450) == summarize(spread, rate_scale=100)
    # Without the counts there is nothing to go by: zero width (the seed rule reads it as unknown).
    assert rate_interval(96.0, 0.0, 3) == (96.0, 96.0)


@pytest.mark.parametrize(("difference", "sd"), [(0.5, 1.0), (1.0, 2.3), (3.4, 7.1), (0.2, 0.05), (2.0, 1.0)])
def test_seeds_for_power_match_statsmodels(difference, sd):
    from statsmodels.stats.power import TTestPower, tt_solve_power

    n = seeds_for_power(difference, sd)
    assert n == math.ceil(tt_solve_power(effect_size=difference / sd, alpha=0.05, power=0.8))
    power = TTestPower()
    assert power.power(difference / sd, n, 0.05) >= 0.8 > power.power(difference / sd, n - 1, 0.05)


def test_seeds_for_power_is_a_bounded_search_even_for_differences_that_agree_to_rounding():
    # Issue 24, item 9: two seeds whose accuracy differences agree to rounding, a paired
    # difference of 1.65 points with a spread of 1e-14, sent the old search counting pairs
    # 2, 3, ... past 500,000 (scipy's power is NaN for effects that size).
    a = [0.5165 * 100, 0.8665 * 100]
    b = [(0.5165 - 0.0165) * 100, (0.8665 - 0.0165) * 100]
    cmp = paired_comparison(a, b)
    assert cmp["mean_diff"] == pytest.approx(1.65) and 0 < cmp["sd_diff"] < 1e-13
    assert seeds_for_power(cmp["mean_diff"], cmp["sd_diff"]) == 2  # an effect of 1e14 sd
    assert seeds_for_power(1.0, cmp["sd_diff"]) == 2
    assert seeds_for_power(1.65, 1e-300) == 2
    # Differences that 10,000 pairs would not detect are not counted further.
    assert seeds_for_power(1e-6, 1.0) == MAX_POWER_SEEDS + 1
    assert seeds_for_power(0.01, 1.0) == MAX_POWER_SEEDS + 1
    assert seeds_for_power(0.03, 1.0) == 8723  # below the bound: the exact answer


def test_seeds_for_power_known_values_and_edges():
    assert seeds_for_power(0.5, 1.0) == 34  # Cohen's dz = 0.5: 33.4 pairs, the textbook figure
    assert seeds_for_power(-0.5, 1.0) == 34  # the sign does not matter
    assert seeds_for_power(50.0, 1.0) == 2  # the solver gives up here; two pairs already suffice
    assert seeds_for_power(11.48, 1.0) == 3  # power 0.797 with two pairs: just short
    assert seeds_for_power(1.0, 0.0) is None and seeds_for_power(0.0, 1.0) is None
    assert seeds_for_power(None, 1.0) is None and seeds_for_power(1.0, None) is None


def test_holm_matches_statsmodels_multipletests_and_skips_missing_tests():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for _ in range(5):  # multipletests runs gc.collect() on every Holm call: keep the calls few
        p = rng.uniform(0, 0.2, int(rng.integers(1, 20))).tolist()
        expected = multipletests(p, method="holm")[1]
        holes = [None, *p[:1], None, *p[1:]]
        got = holm(holes)
        assert got[0] is None and got[2] is None
        assert [got[1], *got[3:]] == pytest.approx(list(expected))
    assert holm([None, None]) == [None, None]
