"""Statistics over seeds: a mean with its 95% interval, and paired scheme comparisons.

Seeds are few (typically 3 to 10), so intervals use Student's t with n - 1 degrees of
freedom rather than a normal approximation. Two schemes run on the same seeds share the
seed's data split and initialization, so they are compared *paired* (a t test on the
per-seed differences, ``scipy.stats.ttest_rel``), which removes the seed-to-seed variation
both share. Undefined quantities are None, never NaN, so results stay valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


def _clean(values: Iterable[float | None]) -> np.ndarray:
    """Finite values as float64; None and NaN (a metric undefined for that seed) are dropped."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _t_interval(mean: float, sd: float, n: int, confidence: float) -> tuple[float | None, float | None]:
    if n < 2:
        return None, None
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def summarize(values: Iterable[float | None], confidence: float = CONFIDENCE) -> dict:
    """Mean, sample standard deviation and Student-t confidence interval of ``values``.

    Args:
        values: one value per seed; None or NaN entries are ignored.
        confidence: interval coverage (0.95 by default).

    Returns:
        ``{"mean", "std", "n", "ci_low", "ci_high"}``; ``std`` and the interval are None when
        n < 2, everything but ``n`` is None when n = 0. Zero spread gives a zero-width interval.
    """
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci_low": None, "ci_high": None}
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else None
    low, high = _t_interval(mean, sd or 0.0, n, confidence)
    return {"mean": mean, "std": sd, "n": n, "ci_low": low, "ci_high": high}


def paired_comparison(
    a: Sequence[float | None], b: Sequence[float | None], confidence: float = CONFIDENCE
) -> dict:
    """Paired comparison of ``a`` against ``b`` (same seeds, same order): ``a - b``.

    Pairs where either value is missing are dropped. The interval is the Student-t interval
    of the mean difference; the p value is the two-sided paired t test
    (``scipy.stats.ttest_rel``), None when n < 2 or when every difference is identical (zero
    variance: the t statistic is undefined, and scipy would return NaN).

    Returns:
        ``{"mean_diff", "ci_low", "ci_high", "p_value", "n"}``.

    Raises:
        ValueError: if ``a`` and ``b`` differ in length (they must be aligned by seed).
    """
    if len(a) != len(b):
        raise ValueError(f"paired values must align by seed: {len(a)} != {len(b)}")
    pairs = [
        (float(x), float(y))
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))
    ]
    n = len(pairs)
    if n == 0:
        return {"mean_diff": None, "ci_low": None, "ci_high": None, "p_value": None, "n": 0}
    xa, xb = np.array(pairs).T
    diff = xa - xb
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else 0.0
    low, high = _t_interval(mean, sd, n, confidence)
    p_value = None
    # Differences equal up to rounding count as zero variance (t would be huge and meaningless).
    if n > 1 and sd > 1e-12 * max(1.0, abs(mean)):
        p = float(sps.ttest_rel(xa, xb).pvalue)
        p_value = p if math.isfinite(p) else None
    return {"mean_diff": mean, "ci_low": low, "ci_high": high, "p_value": p_value, "n": n}
