"""Seed statistics against scipy directly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.report.stats import paired_comparison, summarize


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
