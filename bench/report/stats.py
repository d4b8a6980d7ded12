"""Statistics over seeds: means with their 95% intervals, paired scheme comparisons, the power
of a paired comparison, and Holm's adjustment for a family of comparisons.

The intervals themselves live in ``bench.core.intervals`` (the grid's seed-stopping rule uses
the same ones). Rates get the logit-scale Student-t interval, which stays within [0, 100]%;
other quantities and paired differences get the plain Student-t interval. Two schemes run on
the same seeds share the seed's data split and initialization, so they are compared *paired*
(a t test on the per-seed differences, ``scipy.stats.ttest_rel``), which removes the
seed-to-seed variation both share. Undefined quantities are None, never NaN, so results stay
valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats as sps

from bench.core.intervals import CONFIDENCE, rate_interval, t_interval

ALPHA = 0.05
POWER = 0.80
#: The most seeds ``seeds_for_power`` counts to (more is reported as more than this).
MAX_POWER_SEEDS = 10_000


def _clean(values: Iterable[float | None]) -> np.ndarray:
    """Finite values as float64; None and NaN (a metric undefined for that seed) are dropped."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def summarize(
    values: Iterable[float | None],
    confidence: float = CONFIDENCE,
    rate_scale: float | None = None,
    n_parts: float | None = None,
) -> dict:
    """Mean, sample standard deviation and 95% interval of ``values``.

    Args:
        values: one value per seed; None or NaN entries are ignored.
        confidence: interval coverage (0.95 by default).
        rate_scale: the values are rates in ``[0, rate_scale]`` (100 for %): the interval is the
            logit-scale Student-t interval (``bench.core.intervals.rate_interval``), which stays
            within the range. None: the plain Student-t interval.
        n_parts: for a rate, the parts it was counted over on each seed (None: unknown). Where
            the values show no spread, the interval is then the Clopper-Pearson interval of the
            events pooled over the seeds' parts, never a zero-width one.

    Returns:
        ``{"mean", "std", "n", "ci_low", "ci_high"}``; ``std`` and the interval are None when
        n < 2, everything but ``n`` is None when n = 0. Zero spread gives a zero-width interval
        unless ``n_parts`` is known for a rate.
    """
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci_low": None, "ci_high": None}
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else None
    if rate_scale is None:
        bounds = t_interval(mean, sd or 0.0, n, confidence)
    else:
        bounds = rate_interval(mean, sd or 0.0, n, rate_scale, confidence, n_parts)
    low, high = bounds if bounds is not None else (None, None)
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
        ``{"mean_diff", "sd_diff", "ci_low", "ci_high", "p_value", "n"}`` (``sd_diff``: the
        sample standard deviation of the differences, None when n < 2).

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
        return {"mean_diff": None, "sd_diff": None, "ci_low": None, "ci_high": None, "p_value": None, "n": 0}
    xa, xb = np.array(pairs).T
    diff = xa - xb
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else None
    bounds = t_interval(mean, sd or 0.0, n, confidence)
    low, high = bounds if bounds is not None else (None, None)
    p_value = None
    # Differences equal up to rounding count as zero variance (t would be huge and meaningless).
    if n > 1 and sd > 1e-12 * max(1.0, abs(mean)):
        p = float(sps.ttest_rel(xa, xb).pvalue)
        p_value = p if math.isfinite(p) else None
    return {"mean_diff": mean, "sd_diff": sd, "ci_low": low, "ci_high": high, "p_value": p_value, "n": n}


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """The power of a two-sided paired t test at ``alpha`` on ``n`` pairs for a standardized
    ``effect`` (mean difference over its sd): both tails of Student's noncentral t
    (``scipy.stats.nct``, n - 1 degrees of freedom, noncentrality ``effect * sqrt(n)``), as
    ``statsmodels``' ``TTestPower`` computes it. A tail scipy cannot compute (NaN, for effects
    of 1e14 sd: differences that agree to rounding) is taken at its limit: 0 for the far tail,
    1 for the near one."""
    df, nc = n - 1, abs(effect) * math.sqrt(n)
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    near, far = float(sps.nct.sf(crit, df, nc)), float(sps.nct.cdf(-crit, df, nc))
    near = near if math.isfinite(near) else float(nc > crit)
    return min(1.0, near + (far if math.isfinite(far) else 0.0))


def seeds_for_power(
    difference: float | None, sd: float | None, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Seeds a two-sided paired t test needs to detect ``difference`` with ``power`` at ``alpha``.

    Takes the observed standard deviation of the paired differences as the true one and finds
    the smallest number of pairs (at least 2, the fewest a t test can use) whose power
    (``paired_power``) reaches ``power``, by bisection between 2 and ``MAX_POWER_SEEDS``: at most
    15 power evaluations, whatever the input (a difference of 1.65 points with a spread of 1e-14,
    two seeds whose differences agree to rounding, needs 2).

    Returns:
        The number of seeds; ``MAX_POWER_SEEDS + 1`` when more than ``MAX_POWER_SEEDS`` would be
        needed (the report prints it as ``> 10,000``); None when it is undefined (no spread,
        or a difference that is zero up to rounding).
    """
    if difference is None or sd is None or not sd > 0 or not abs(difference) > 1e-9 * sd:
        return None
    effect = abs(difference) / sd
    if paired_power(effect, MAX_POWER_SEEDS, alpha) < power:
        return MAX_POWER_SEEDS + 1
    low, high = 1, MAX_POWER_SEEDS  # low: too few (a t test needs 2); high: enough
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if paired_power(effect, middle, alpha) >= power else (middle, high)
    return high


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p values of one family (``statsmodels``' ``multipletests``, ``"holm"``).

    None entries (comparisons without a test) are not part of the family and stay None.
    """
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if tested:
        adjusted = multipletests([p_values[i] for i in tested], alpha=ALPHA, method="holm")[1]
        for i, p in zip(tested, adjusted, strict=True):
            out[i] = float(p)
    return out
