"""Small helpers the built-in methods share: checking hyperparameter values, reducing per-tuple losses."""

from __future__ import annotations

import math

import torch

from bench.core.errors import BenchError


def per_tuple_reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-tuple losses: ``"mean"`` over all tuples, ``"mean-nonzero"`` over the
    tuples with non-zero loss (pytorch-metric-learning's AvgNonZeroReducer)."""
    if losses.numel() == 0:
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    return losses.sum() / (losses > 0).sum().clamp(min=1)


def check_choice(method: str, name: str, value, choices) -> None:
    """BenchError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise BenchError(f"{method}: {name}={value!r} is not one of {', '.join(map(repr, choices))}")


def check_positive(method: str, name: str, value, allow_zero: bool = False) -> None:
    """BenchError unless ``value`` is a positive (or non-negative) finite number."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise BenchError(
            f"{method}: {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
