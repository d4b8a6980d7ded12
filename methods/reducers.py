"""Reducing per-tuple losses to the step's loss, as pytorch-metric-learning's reducers do."""

from __future__ import annotations

import torch

__all__ = ["per_tuple_reduce"]


def per_tuple_reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-tuple losses: ``"mean"`` over all tuples (``MeanReducer``), ``"mean-nonzero"``
    over the tuples with non-zero loss (``AvgNonZeroReducer``).

    Args:
        losses: (tuples,) per-tuple losses.
        reduction: ``"mean"`` or ``"mean-nonzero"``.

    Returns:
        A scalar; 0 (with a gradient) when there are no tuples.
    """
    if losses.numel() == 0:
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    return losses.sum() / (losses > 0).sum().clamp(min=1)
