"""The parts of a record that hold a rule's operating points (``bench.evaluation.operating``).

Fields of ``Metrics`` (``bench.grid.record_parts``) since good-vs-defect scores; records made
before them lack these fields, which the record type leaves out when absent, so those records
write back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.grid.record_parts import Costs, Part, as_tuple, slot, tuple_of


@dataclass(frozen=True, kw_only=True)
class OperatingPoint(Part):
    """One escape budget's operating point: the threshold chosen on the validation split and the
    rates it gives there and, unchanged, on the test split (rates in [0, 1]).

    Attributes:
        escape_budget: the budget, a share of defective parts (``--escape-budget``).
        threshold: the defect score at or above which a part is judged defective; None without a
            validation defect (then every other field is None too).
        val_escape_rate: the validation escape the threshold achieves (at most the budget).
        val_overkill_rate: the validation overkill at the threshold.
        escape_rate: the test escape at the threshold.
        overkill_rate: the test overkill at the threshold.
        cost_per_1000: the expected cost per 1,000 parts at the test rates.
    """

    escape_budget: float | None = slot()
    threshold: float | None = slot()
    val_escape_rate: float | None = slot()
    val_overkill_rate: float | None = slot()
    escape_rate: float | None = slot()
    overkill_rate: float | None = slot()
    cost_per_1000: Costs | None = slot(Costs.from_json)


@dataclass(frozen=True, kw_only=True)
class EscapeCurve(Part):
    """The test split's escape-vs-overkill trade-off over every threshold: the least overkill at
    each escape level (a curve of the test split, not an operating point).

    Attributes:
        escape: the escape levels.
        overkill: the least test overkill whose test escape is within each level.
    """

    escape: tuple[float, ...] = slot(as_tuple, default=())
    overkill: tuple[float | None, ...] = slot(as_tuple, default=())


def parse_points(value: Any) -> tuple[OperatingPoint, ...]:
    """A JSON list of operating points."""
    return tuple_of(OperatingPoint.from_json)(value)
