"""Best values at the edge of their search range: the tuned answer may be the range's, not the method's.

A best value within ``EDGE_SHARE`` of its range's width from an edge (measured on the log scale
for a log-uniform range) is flagged in ``tuning.md`` and on the terminal: the optimum may lie
beyond the range, so the range should be widened and the method tuned again. An edge that is
the parameter's own limit (a bound of its ``_parameter_constraints``, e.g. a margin of 0 or no
label smoothing) cannot be widened: a value there is noted, not flagged.

The ranges are those the trial was drawn from, as the study journal recorded them, so a study
made under older ranges is judged by its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

#: How close to an edge (share of the range's width, log scale for log ranges) counts as at it.
EDGE_SHARE = 0.05


@dataclass(frozen=True)
class RangeEdge:
    """A best value at an edge of its range.

    Attributes:
        param: the hyperparameter.
        value: its best value.
        low: the range's floor.
        high: the range's ceiling.
        side: ``"floor"`` or ``"ceiling"``.
        log: whether the range is log-uniform.
        own_limit: the edge is the parameter's own limit (nothing to widen).
    """

    param: str
    value: float
    low: float
    high: float
    side: str
    log: bool
    own_limit: bool

    @property
    def edge(self) -> float:
        return self.low if self.side == "floor" else self.high

    def text(self) -> str:
        """One sentence for ``tuning.md`` and the terminal."""
        where = f"`{self.param}` {self.value:.4g}"
        if self.own_limit:
            return (
                f"{where} is at its own {'lower' if self.side == 'floor' else 'upper'} limit {self.edge:g}"
                " (a bound of the parameter, not of the search): nothing to widen"
            )
        scale = " (log scale)" if self.log else ""
        return (
            f"{where} is within {EDGE_SHARE:.0%}{scale} of the {self.side} of its range"
            f" {self.low:g} to {self.high:g}: the tuned answer may be the range's, not the method's;"
            " widen the range and tune again"
        )


def _position(value: float, low: float, high: float, log: bool) -> float:
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def range_edges(
    trial: FrozenTrial,
    limits: dict[str, tuple[float | None, float | None]],
    fixed: frozenset[str] = frozenset(),
) -> list[RangeEdge]:
    """The numeric parameters of ``trial`` within ``EDGE_SHARE`` of an edge of the range it was
    drawn from, in the trial's order.

    Args:
        trial: a trial (the best one), with the distributions it was drawn from.
        limits: per parameter, its own (lower, upper) limit where it has one.
        fixed: parameters held fixed (a user's choice, not a search result): never flagged.
    """
    out = []
    for name, dist in trial.distributions.items():
        if name in fixed or not isinstance(dist, FloatDistribution | IntDistribution):
            continue
        value: Any = trial.params.get(name)
        if not isinstance(value, int | float) or dist.high <= dist.low:
            continue
        if dist.log and value <= 0:
            continue
        position = _position(float(value), float(dist.low), float(dist.high), dist.log)
        side = "floor" if position <= EDGE_SHARE else "ceiling" if position >= 1 - EDGE_SHARE else None
        if side is None:
            continue
        low_limit, high_limit = limits.get(name, (None, None))
        own = (low_limit if side == "floor" else high_limit) == (dist.low if side == "floor" else dist.high)
        out.append(RangeEdge(name, float(value), float(dist.low), float(dist.high), side, dist.log, own))
    return out


def parameter_limits(cls: Any) -> dict[str, tuple[float | None, float | None]]:
    """Each hyperparameter's own (lower, upper) limit, from the numeric intervals the method
    declares in ``_parameter_constraints`` (a parameter with several intervals: none)."""
    from methods.constraints import Interval

    out: dict[str, tuple[float | None, float | None]] = {}
    for name, constraints in cls.parameter_constraints().items():
        intervals = [c for c in constraints if isinstance(c, Interval)]
        if len(intervals) == 1:
            out[name] = (intervals[0].low, intervals[0].high)
    return out
