"""Hyperparameter constraints (``methods/constraints.py``): what each accepts and how a refusal reads."""

from __future__ import annotations

from numbers import Integral, Real

import pytest

from bench.core.errors import BenchError
from methods.constraints import Boolean, Interval, Options, check_value


@pytest.mark.parametrize(
    ("constraint", "good", "bad", "text"),
    [
        (
            Interval(Real, 0, None, closed="neither"),
            [1e-9, 3, 2.5],
            [0, -1, True, "1", float("inf")],
            "a positive number",
        ),
        (
            Interval(Real, 0, None, closed="left"),
            [0, 0.0, 7],
            [-1e-9, float("nan"), None],
            "a non-negative number",
        ),
        (Interval(Real, 0, 1, closed="both"), [0, 0.5, 1], [1.01, -0.1], "a number in [0, 1]"),
        (Interval(Real, 0, 1, closed="right"), [1, 0.5], [0], "a number in (0, 1]"),
        (Interval(Integral, 2, None, closed="left"), [2, 10**6], [1, 2.0, False], "an integer >= 2"),
        (Interval(Integral, None, 5, closed="neither"), [-3, 4], [5], "an integer < 5"),
        (Options(("image", "class")), ["image", "class"], ["Image", 1, None], "one of 'image', 'class'"),
        (Options((0, 1)), [0, 1], [True, False], "one of 0, 1"),
        (Boolean(), [True, False], [1, 0, "true"], "a boolean"),
    ],
)
def test_constraints_accept_and_describe(constraint, good, bad, text):
    assert all(constraint.is_satisfied_by(v) for v in good)
    assert not any(constraint.is_satisfied_by(v) for v in bad)
    assert str(constraint) == text


def test_options_from_a_callable_follow_it():
    names = ["a"]
    options = Options(lambda: names)
    assert not options.is_satisfied_by("b")
    names.append("b")
    assert options.is_satisfied_by("b") and str(options) == "one of 'a', 'b'"


def test_a_refusal_is_one_line_naming_every_allowed_kind():
    check_value("m", "k", None, [Interval(Integral, 1, None), None])
    with pytest.raises(BenchError, match=r"^m: k=0 is not an integer >= 1 or None$"):
        check_value("m", "k", 0, [Interval(Integral, 1, None), None])


def test_a_bad_declaration_fails_at_once():
    with pytest.raises(TypeError):
        Interval(float, 0, 1)
    with pytest.raises(ValueError):
        Interval(Real, 0, 1, closed="open")
