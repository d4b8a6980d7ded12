"""Sampling-balance schemes: map training class counts n_c to per-class sampling weights.

A scheme is a function ``(counts, good_index, **options) -> BalancePlan``. Registered names:
``uniform``, ``natural``, ``sqrt``, ``good-xK`` (any K > 0, a pattern rather than one entry),
``effective-number`` and ``progressive``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence

import torch

from bench.core.errors import BenchError, unknown_name
from bench.core.registry import Registry
from bench.sampling.names import GOOD_X, good_x_weight
from bench.sampling.plan import BalancePlan
from bench.sampling.same_weights import weight_groups

Scheme = Callable[..., BalancePlan]
SCHEMES: Registry[Scheme] = Registry("scheme")
#: Register a scheme function under ``name``; a duplicate name is an error.
register_scheme = SCHEMES.register

#: The scheme set ``run --all`` uses.
DEFAULT_SCHEMES: tuple[str, ...] = ("uniform", "natural", "sqrt", "good-x5", "effective-number")


def list_schemes() -> list[str]:
    """Registered scheme names; ``good-xK`` stands for the whole family."""
    return sorted([*SCHEMES.names(), "good-xK"])


def check_scheme(name: str) -> None:
    """Raise BenchError unless ``name`` is a registered scheme or a well-formed ``good-xK``."""
    if name in SCHEMES:
        return
    if name.startswith("good-x") or name.startswith("good-"):
        if not GOOD_X.match(name) or good_x_weight(name) <= 0:
            raise BenchError(
                f"malformed scheme {name!r}: write good-xK with a positive number K, e.g. good-x5"
            )
        return
    raise unknown_name("scheme", name, list_schemes())


def make_plan(
    name: str, counts: torch.Tensor, classes: tuple[str, ...], good_index: int | None, **options
) -> BalancePlan:
    """The plan scheme ``name`` gives for training class counts ``counts`` (shape (C,)).

    Raises:
        BenchError: unknown or malformed scheme, an option the scheme does not take or a value
            of the wrong type (both named), or ``good-xK`` on data without a good class.
    """
    check_options(name, options)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    k = good_x_weight(name)
    if k is not None:
        plan = good_x(counts, good_index, k=k)
    else:
        plan = SCHEMES.get(name)(counts, good_index, **options)
    return BalancePlan(name, plan.start, classes, plan.end)


def same_weight_groups(
    schemes: Sequence[str],
    counts: torch.Tensor,
    good_index: int | None,
    options: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[tuple[str, ...], ...]:
    """``schemes`` grouped by the per-class weights they give for training class counts
    ``counts`` (``bench.sampling.same_weights``): a group of several names draws the same
    batches, so it needs training once. Groups and members keep the order of ``schemes``.

    A split's training counts depend on the class counts only, never on the seed
    (``bench.datasets.split.split_counts``), so the groups hold for every seed of a grid.

    Args:
        schemes: scheme names, in the grid's order.
        counts: images per class in the training split, shape (C,).
        good_index: the good class, or None.
        options: each scheme's options, by name.

    Raises:
        BenchError: as ``make_plan``, for a scheme that does not apply to the data.
    """
    classes = tuple(str(c) for c in range(len(counts)))
    weights = {}
    for name in dict.fromkeys(schemes):
        plan = make_plan(name, counts, classes, good_index, **dict((options or {}).get(name, {})))
        end = plan.end if plan.end is not None else plan.start
        weights[name] = (plan.start.tolist(), end.tolist())
    return weight_groups(weights)


def scheme_options(name: str) -> dict[str, type]:
    """The options scheme ``name`` takes, with their types (``good-xK`` takes none)."""
    check_scheme(name)
    if good_x_weight(name) is not None:
        return {}
    fn = SCHEMES.get(name)
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())[2:]  # after counts, good_index
    return {p.name: hints.get(p.name, object) for p in params}


def check_options(name: str, options: dict) -> None:
    """BenchError unless every option is one scheme ``name`` takes, with a value of its type."""
    accepted = scheme_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(f"{k} ({t.__name__})" for k, t in accepted.items()) or "no options"
        raise BenchError(f"scheme {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    for key, value in options.items():
        expected = accepted[key]
        # A float option takes any real number; bool is an int to Python but never a number here.
        ok = expected is object or (
            isinstance(value, int | float) and not isinstance(value, bool)
            if expected is float
            else isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
        )
        if not ok:
            raise BenchError(
                f"scheme {name!r} option {key} must be a {expected.__name__} (got {value!r}, a {type(value).__name__})"
            )


def _normalized(w: torch.Tensor) -> torch.Tensor:
    return w / w.sum()


def _static(w: torch.Tensor) -> BalancePlan:
    return BalancePlan("", _normalized(w), ())


@register_scheme("uniform")
def uniform(counts: torch.Tensor, good_index: int | None = None) -> BalancePlan:
    """Every class equal: the reference experiment's choice."""
    return _static(torch.ones_like(counts))


@register_scheme("natural")
def natural(counts: torch.Tensor, good_index: int | None = None) -> BalancePlan:
    """Proportional to the class counts n_c: what plain random sampling of images gives."""
    return _static(counts.clone())


@register_scheme("sqrt")
def sqrt(counts: torch.Tensor, good_index: int | None = None) -> BalancePlan:
    """Proportional to n_c^(1/2) (square-root sampling, Kang et al., ICLR 2020)."""
    return _static(counts.sqrt())


def good_x(counts: torch.Tensor, good_index: int | None, k: float) -> BalancePlan:
    """The good class K times each defect class (``good-x5`` is the reference's proposed fix)."""
    if good_index is None:
        raise BenchError("good-xK schemes need a good class; this dataset has none (set --good)")
    w = torch.ones_like(counts)
    w[good_index] = k
    return _static(w)


@register_scheme("effective-number")
def effective_number(counts: torch.Tensor, good_index: int | None = None, beta: float = 0.999) -> BalancePlan:
    """Proportional to (1 - beta) / (1 - beta^n_c) (Cui et al., CVPR 2019).

    The weight falls with class size but less than 1 / n_c does; beta -> 0 gives uniform weights
    over classes, beta -> 1 gives inverse-frequency weights.
    """
    if not 0.0 <= beta < 1.0:
        raise BenchError(f"effective-number needs 0 <= beta < 1 (got {beta})")
    return _static((1.0 - beta) / (1.0 - beta**counts))


@register_scheme("progressive")
def progressive(counts: torch.Tensor, good_index: int | None = None) -> BalancePlan:
    """Moves linearly from ``natural`` at the first step to ``uniform`` at the last (Kang et al.)."""
    return BalancePlan("", _normalized(counts.clone()), (), _normalized(torch.ones_like(counts)))
