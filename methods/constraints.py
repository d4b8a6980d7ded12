"""Hyperparameter constraints a method declares once, in scikit-learn's style.

A method lists, for each hyperparameter, the constraints a usable value meets::

    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="neither")],
        "negatives": [Options({"image", "class"})],
        "normalize": [Boolean()],
    }

``EmbeddingMethod.check_params`` checks every declared hyperparameter against them (a value
passes when it meets any one of its constraints) and raises one ``BenchError`` line naming
the method, the hyperparameter, the value and what it should be.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral, Real
from typing import Any, Literal

from bench.core.errors import BenchError

__all__ = ["Boolean", "Constraint", "Interval", "Options", "check_value"]


class Constraint(ABC):
    """One condition a hyperparameter value may meet; ``str()`` says what it asks for."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint."""

    @abstractmethod
    def __str__(self) -> str:
        """What a value should be, as the end of "margin=-1 is not ..." (e.g. "a positive number")."""


class Interval(Constraint):
    """A finite number of a given kind within bounds.

    Args:
        kind: ``numbers.Real`` (any int or float) or ``numbers.Integral`` (whole numbers only).
            Booleans never count as numbers.
        low: the lower bound, or None for none.
        high: the upper bound, or None for none.
        closed: which bounds belong to the interval: ``"left"``, ``"right"``, ``"both"`` or
            ``"neither"``.
    """

    def __init__(
        self,
        kind: type,
        low: float | None,
        high: float | None,
        *,
        closed: Literal["left", "right", "both", "neither"] = "left",
    ) -> None:
        if kind not in (Real, Integral):
            raise TypeError(f"Interval kind must be numbers.Real or numbers.Integral, got {kind!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be 'left', 'right', 'both' or 'neither', got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if not math.isfinite(value):
            return False
        left = self.closed in ("left", "both")
        right = self.closed in ("right", "both")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return self.high is None or (value < self.high or (value == self.high and right))

    def __str__(self) -> str:
        noun = "an integer" if self.kind is Integral else "a number"
        left = self.closed in ("left", "both")
        if self.high is None and self.low is not None:
            if self.low == 0 and self.kind is Real:
                return "a non-negative number" if left else "a positive number"
            return f"{noun} {'>=' if left else '>'} {self.low}"
        if self.low is None and self.high is not None:
            return f"{noun} {'<=' if self.closed in ('right', 'both') else '<'} {self.high}"
        if self.low is None:
            return noun if self.kind is Integral else "a finite number"
        brackets = ("[" if left else "(", "]" if self.closed in ("right", "both") else ")")
        return f"{noun} in {brackets[0]}{self.low}, {self.high}{brackets[1]}"

    def __repr__(self) -> str:
        return f"Interval({self.kind.__name__}, {self.low!r}, {self.high!r}, closed={self.closed!r})"


class Options(Constraint):
    """One of a set of values (names, usually).

    Args:
        values: the allowed values; their order is the order the error message lists them in.
            A callable returning them is called at each check (for sets that grow, such as
            the registered trunks).
    """

    def __init__(self, values: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self._values = values if callable(values) else tuple(values)

    @property
    def values(self) -> tuple[Any, ...]:
        """The allowed values, now."""
        return tuple(self._values()) if callable(self._values) else self._values

    def is_satisfied_by(self, value: Any) -> bool:
        # Booleans only match booleans: True == 1, but a flag is not an option index.
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def __str__(self) -> str:
        return f"one of {', '.join(map(repr, self.values))}"

    def __repr__(self) -> str:
        return f"Options({list(self.values)!r})"


class Boolean(Constraint):
    """``True`` or ``False`` (not 0 or 1)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "a boolean"

    def __repr__(self) -> str:
        return "Boolean()"


def check_value(owner: str, name: str, value: Any, constraints: Sequence[Constraint | None]) -> None:
    """Raise a one-line BenchError unless ``value`` meets one of ``constraints``.

    Args:
        owner: who the hyperparameter belongs to (the method's registered name).
        name: the hyperparameter.
        value: its value.
        constraints: the constraints it may meet; a ``None`` entry allows the value None.

    Raises:
        BenchError: ``"{owner}: {name}={value!r} is not {what}"``, listing every constraint.
    """
    for constraint in constraints:
        if (value is None) if constraint is None else constraint.is_satisfied_by(value):
            return
    what = " or ".join("None" if c is None else str(c) for c in constraints)
    raise BenchError(f"{owner}: {name}={value!r} is not {what}")
