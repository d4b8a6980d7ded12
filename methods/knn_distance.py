"""knn-distance: a label-free baseline, the mean distance to the k nearest good training images."""

from __future__ import annotations

from numbers import Integral

import torch

from methods.constraints import Interval
from methods.good_only import GoodOnlyBaseline
from methods.registry import register_method

#: Queries per distance matrix.
BLOCK = 512


@register_method("knn-distance")
class KnnDistance(GoodOnlyBaseline):
    """The defect score of an image is its mean Euclidean distance, in input space (the
    standardized pixels every method receives), to its ``k`` nearest good training images.

    Args:
        trunk: unused (nothing is trained); kept so every method takes the grid's trunk.
        k: how many nearest good training images the distance averages over.
    """

    _parameter_constraints = {"k": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, *, trunk: str = "mlp", k: int = 5) -> None:
        super().__init__(trunk=trunk)
        self.k = k

    def _fit_good(self, good: torch.Tensor) -> None:
        self.reference_ = good  # a nearest-neighbour model is its training set, as in scikit-learn

    def _score(self, flat: torch.Tensor) -> torch.Tensor:
        k = min(int(self.k), len(self.reference_))
        out = [
            torch.cdist(flat[start : start + BLOCK], self.reference_)
            .topk(k, dim=1, largest=False)
            .values.mean(1)
            for start in range(0, len(flat), BLOCK)
        ]
        return torch.cat(out) if out else torch.empty(0)
