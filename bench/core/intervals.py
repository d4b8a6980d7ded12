"""95% intervals over seeds, shared by the grid's seed-stopping rule and the report.

Seeds are few (typically 3 to 20), so every interval uses Student's t with n - 1 degrees of
freedom. Two kinds:

- ``t_interval``: the plain Student-t interval of a mean, ``mean ± t * sd / sqrt(n)``. Right for
  unbounded quantities and for paired differences.
- ``rate_interval``: for a mean of values bounded to ``[0, scale]`` (a rate in %), the same
  Student-t interval built on the logit scale of the mean, by the delta method (as Stata's
  ``proportion`` does): ``expit(logit(m) ± t * se / (m * (1 - m)))`` with ``m`` and ``se`` the
  mean and its standard error as fractions of ``scale``. It estimates the same arithmetic mean,
  always contains it, and never leaves ``[0, scale]``; far from the bounds it matches the plain
  t-interval. In a simulation of seed-like data (n = 3, 5 and 10; a rate near 94% with 1 point
  of spread, a skewed rate near 6%, mostly-zero escapes, and mixtures with collapsed seeds) its
  coverage was at or above the plain t-interval's in every case but one (a rare-collapse
  mixture at n = 10: 0.86 against 0.88), while a bootstrap percentile interval covered only
  0.75 at n = 3 even for well-behaved data.

  Where the seeds show no spread (every seed gave the same rate: 0% on every seed, 100% on
  every seed, or 96.0% three times) the spread says nothing, and the Student-t interval would
  have no width. Given the number of parts behind the rate on each seed (``n_parts``), the
  interval then comes from the counts: the Clopper-Pearson interval (``count_interval``) of the
  events pooled over the seeds' parts. 0 escapes in 3 x 450 defective parts gives 0 to 0.27%,
  not 0 to 0; the rule of three's 3 / 1350 = 0.22% is its one-sided cousin. Without
  ``n_parts`` the interval stays zero-width, and the seed rule (``bench.grid.adaptive``) counts
  it as not yet known.

Functions take the already-cleaned values (finite floats) or their summary statistics, so the
stopping rule can ask what the interval *would* be with more seeds.
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import stats as sps

CONFIDENCE = 0.95


@lru_cache(maxsize=4096)
def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t quantile for ``n`` values (n - 1 degrees of freedom)."""
    # Cached: the seed rule asks for the same few quantiles for every group and every count.
    return float(sps.t.ppf(0.5 + confidence / 2.0, n - 1))


def t_interval(mean: float, sd: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Student-t interval of a mean from ``n`` values with sample sd ``sd``; None when n < 2."""
    if n < 2:
        return None
    half = t_quantile(n, confidence) * sd / math.sqrt(n)
    return mean - half, mean + half


def count_interval(events: int, parts: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Clopper-Pearson (exact binomial) interval of ``events`` in ``parts``, as fractions.

    At 0 events the upper end is ``1 - ((1 - confidence) / 2) ** (1 / parts)`` (about 3.7 / parts
    at 95%), at ``parts`` events the lower end mirrors it. Raises ValueError unless
    ``0 <= events <= parts`` and ``parts >= 1``.
    """
    if parts < 1 or not 0 <= events <= parts:
        raise ValueError(f"a count needs 0 <= events <= parts and parts >= 1 (got {events} of {parts})")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if events == 0 else float(sps.beta.ppf(tail, events, parts - events + 1))
    high = 1.0 if events == parts else float(sps.beta.ppf(1.0 - tail, events + 1, parts - events))
    return low, high


def rate_interval(
    mean: float,
    sd: float,
    n: int,
    scale: float = 100.0,
    confidence: float = CONFIDENCE,
    n_parts: float | None = None,
) -> tuple[float, float] | None:
    """The logit-scale Student-t interval of a mean of values in ``[0, scale]``; None when n < 2.

    Args:
        mean, sd, n: the mean, sample standard deviation and number of the seeds' values.
        scale: the top of the range (100 for %).
        confidence: the interval's coverage.
        n_parts: the number of parts each seed's rate was counted over (the mean over seeds,
            if they differ), or None when unknown.

    Where the seeds show no spread (``sd`` is 0 up to rounding, or the mean is on a bound, so
    every value is equal to it), the interval comes from the counts: the Clopper-Pearson interval of
    ``round(mean / scale * n * n_parts)`` events in ``round(n * n_parts)`` parts. Without
    ``n_parts`` it is then the zero-width interval at the mean.
    """
    if n < 2:
        return None
    m = min(max(mean / scale, 0.0), 1.0)
    # A spread below 1e-9 of the range is rounding (0.8 three times has a float sd of 1e-16).
    if sd <= 1e-9 * scale or m <= 0.0 or m >= 1.0:
        if n_parts is None or not n_parts > 0:
            return mean, mean
        parts = max(1, round(n * n_parts))
        low, high = count_interval(min(parts, round(m * parts)), parts, confidence)
        return scale * low, scale * high
    se = sd / scale / math.sqrt(n) / (m * (1.0 - m))
    centre = math.log(m / (1.0 - m))
    half = t_quantile(n, confidence) * se
    return scale * _expit(centre - half), scale * _expit(centre + half)


def half_width(interval: tuple[float, float] | None) -> float | None:
    """Half the width of an interval (for an asymmetric one: (high - low) / 2); None for none."""
    return None if interval is None else (interval[1] - interval[0]) / 2.0


def _expit(x: float) -> float:
    # Written out rather than scipy.special.expit so both bounds are computed the same way.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
