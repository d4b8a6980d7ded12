"""Seeds on demand: the rule that decides which method x scheme groups get more seeds.

A grid with a ``SeedTarget`` runs its start seeds for every group, then works in rounds: each
round adds seeds only to the groups whose 95% interval is still wider than the target (and the
groups a too-wide paired difference needs), until every group is within the target or has
``max_seeds`` seeds. The rule is a pure function of the recorded values, so a resumed run
replays the same rounds from its records and makes the same choices.

No group (or pair) stops before ``min_seeds`` seeds, by default three quarters of
``max_seeds`` (15 of 20). A rate's spread grows with its mean, so a group whose first seeds
happen to show a low rate also shows a small spread; a rule that may stop it there pulls the
stopped groups' means down and leaves their intervals too narrow. In the simulation of
``bench.grid.seed_rule_simulation`` (escapes at 2%, target ±1 point), stopping from the three
start seeds on gave means 8% too low and intervals that covered 91%; with the minimum, the means
are within 2% and the intervals cover 94% (``docs/seed-rule.md``). The minimum is a count, not a
function of the values, so it cannot steer them. Paired differences of rates are steered the
same way, so ``diff_ci`` keeps the same minimum.

A rate whose seeds show no spread gets its interval from the counts of parts
(``bench.core.intervals.rate_interval``), never a zero-width one; where the counts are unknown, a
zero-width interval counts as not yet known and the group grows. A paired difference that is the
same on every seed is known: two schemes that draw the same batches give the same values.

How many seeds a round adds: a group (or pair) below ``min_seeds`` goes straight to it; above
it, as many as the interval formula says would bring the half-width to the target if the mean
and spread stayed as observed, but at least one and at most as many as the group already has (a
spread estimated from a few seeds is too rough to jump further), and never past ``max_seeds``. A
round usually adds several cells per group across many groups, so a process pool or Dask
cluster has a batch to work on.

Seeds are counted per group: a group's first ``k`` seeds are the start seeds followed by the
next whole numbers above them (``seed_sequence``), so two groups with the same count share
their seeds, and paired differences pair the seeds both groups have.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial

from bench.core.errors import BenchError
from bench.core.intervals import half_width, rate_interval, t_interval
from bench.grid.record_parts import HEADLINE_METRICS

#: What a target can be set on: the headline rates of a record (the one table the report reads too).
TARGET_METRICS = HEADLINE_METRICS

Group = tuple[str, str]  # (method, scheme)

#: The share of ``max_seeds`` a group gets before its means target may stop it (``min_seeds``).
MIN_SEEDS_SHARE = 0.75


@dataclass(frozen=True)
class SeedTarget:
    """When to stop adding seeds (``bench run --target-ci / --target-diff-ci``).

    Attributes:
        ci: the largest 95% interval half-width, in points (%), of each group's mean of
            ``metric``; None for no target on the means.
        diff_ci: the largest 95% interval half-width, in points, of each scheme's paired
            difference against ``against`` (same method, same seeds); None for none.
        against: the baseline scheme of ``diff_ci``.
        metric: ``accuracy`` (the headline rule's), ``escape`` or ``overkill``.
        max_seeds: the most seeds any group gets.
        min_seeds: the fewest seeds a group (or a pair, for ``diff_ci``) has before the target
            may stop it; None for three quarters of ``max_seeds``, rounded up (``least``).
    """

    ci: float | None = None
    diff_ci: float | None = None
    against: str = "uniform"
    metric: str = "accuracy"
    max_seeds: int = 20
    min_seeds: int | None = None

    def __post_init__(self) -> None:
        for key in ("ci", "diff_ci"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf
            ):
                raise BenchError(f"seed target {key} must be a number of points above 0 (got {value!r})")
        if self.ci is None and self.diff_ci is None:
            raise BenchError("a seed target needs ci (--target-ci) or diff_ci (--target-diff-ci)")
        if not isinstance(self.metric, str) or self.metric not in TARGET_METRICS:
            raise BenchError(
                f"unknown target metric {self.metric!r}; choose one of {', '.join(TARGET_METRICS)}"
            )
        if not isinstance(self.against, str) or not self.against:
            raise BenchError(f"seed target 'against' must be a scheme name (got {self.against!r})")
        if isinstance(self.max_seeds, bool) or not isinstance(self.max_seeds, int) or self.max_seeds < 2:
            raise BenchError(f"max_seeds must be a whole number of at least 2 (got {self.max_seeds!r})")
        least = self.min_seeds
        if least is not None and (
            isinstance(least, bool) or not isinstance(least, int) or not 2 <= least <= self.max_seeds
        ):
            raise BenchError(
                f"min_seeds must be a whole number from 2 to max_seeds ({self.max_seeds}) (got {least!r})"
            )

    def to_dict(self) -> dict:
        """The target as set (``min_seeds`` only where given), for ``config.toml``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def applied(self) -> dict:
        """The target as the rule applies it (``min_seeds`` always), for the records."""
        return {**self.to_dict(), "min_seeds": self.least}

    @property
    def least(self) -> int:
        """The fewest seeds a group has before its means target may stop it."""
        if self.min_seeds is not None:
            return self.min_seeds
        return max(2, math.ceil(MIN_SEEDS_SHARE * self.max_seeds - 1e-9))

    @property
    def path(self) -> tuple[str, ...]:
        """Where the target metric sits in a record's JSON (``metrics.<field>``)."""
        return ("metrics", TARGET_METRICS[self.metric])


def seed_sequence(start: Sequence[int], count: int) -> list[int]:
    """A group's first ``count`` seeds: the start seeds, then the next whole numbers above them."""
    seeds = list(dict.fromkeys(start))[:count]
    following = max(start) + 1
    while len(seeds) < count:
        seeds.append(following)
        following += 1
    return seeds


def _moments(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


Interval = Callable[[float, float, int], tuple[float, float] | None]


def _grown(
    tried: int,
    values: Sequence[float],
    width: float,
    interval: Interval,
    target: SeedTarget,
    least: int = 2,
    flat_is_known: bool = True,
) -> int:
    """The seed count a group (or pair) should reach: ``tried`` when it is done.

    ``least``: the fewest seeds before it may stop. ``flat_is_known``: whether a zero-width
    interval (values without spread, nothing else to go by) counts as known; if not, it is
    treated as no spread to go by yet.
    """
    if tried >= target.max_seeds or not values:
        return tried  # at the cap, or every seed failed: more seeds would not help
    if tried < least:
        return min(target.max_seeds, least)  # a count, not a function of the values
    add = tried  # no spread to go by: double
    if len(values) >= 2:
        mean, sd = _moments(values)
        now = half_width(interval(mean, sd, len(values)))
        if now > 0 or flat_is_known:
            if now <= width:
                return tried
            # The fewest values whose interval, with this mean and spread, would be narrow enough.
            need = next(
                (
                    k
                    for k in range(len(values) + 1, target.max_seeds + 1)
                    if half_width(interval(mean, sd, k)) <= width
                ),
                target.max_seeds,
            )
            add = need - len(values)
    return min(target.max_seeds, tried + max(1, min(add, tried)))


def next_counts(
    counts: Mapping[Group, int],
    values: Mapping[Group, Mapping[int, float | None]],
    start: Sequence[int],
    target: SeedTarget,
    parts: Mapping[Group, float | None] | None = None,
) -> dict[Group, int]:
    """One round of the rule: every group's seed count after it (unchanged counts: stop).

    Args:
        counts: the seeds each group has been given so far (its first ``count`` of
            ``seed_sequence(start, ...)``).
        values: the target metric per group and seed, in %; None (or absent) for a seed
            without a value (a failed cell). Seeds beyond a group's count are ignored, so a
            resumed run that already holds later rounds' records replays the same choices.
        start: the grid's start seeds.
        target: the target.
        parts: the number of parts behind each group's target rate on one seed (the mean over
            its seeds), or None where unknown: where a group's seeds show no spread, its
            interval comes from these counts (``bench.core.intervals.rate_interval``); without
            them it counts as not yet known, and the group grows.

    Returns:
        ``{group: count}``, each at least its current count and at most ``target.max_seeds``
        (or its current count, if that is larger).
    """

    def finite(group: Group, seeds: Sequence[int]) -> list[float | None]:
        row = values.get(group, {})
        out = []
        for seed in seeds:
            v = row.get(seed)
            out.append(float(v) if v is not None and math.isfinite(float(v)) else None)
        return out

    new = dict(counts)
    if target.ci is not None:
        for group, count in counts.items():
            got = [v for v in finite(group, seed_sequence(start, count)) if v is not None]
            interval = partial(rate_interval, n_parts=(parts or {}).get(group))
            grown = _grown(count, got, target.ci, interval, target, target.least, flat_is_known=False)
            new[group] = max(new[group], grown)
    if target.diff_ci is not None:
        for (method, scheme), count in counts.items():
            base = (method, target.against)
            if scheme == target.against or base not in counts:
                continue
            paired = min(count, counts[base])
            seeds = seed_sequence(start, paired)
            a, b = finite((method, scheme), seeds), finite(base, seeds)
            diffs = [x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None]
            grown = _grown(paired, diffs, target.diff_ci, t_interval, target, target.least)
            if grown > paired:
                new[(method, scheme)] = max(new[(method, scheme)], grown)
                new[base] = max(new[base], grown)
    return new
