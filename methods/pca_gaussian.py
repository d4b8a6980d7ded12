"""pca-gaussian: a label-free baseline, a Gaussian of the good training images after PCA."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.decomposition import PCA

from methods.constraints import Interval
from methods.good_only import GoodOnlyBaseline
from methods.registry import register_method


@register_method("pca-gaussian")
class PcaGaussian(GoodOnlyBaseline):
    """A probabilistic PCA of the good training images (standardized pixels): a Gaussian whose
    covariance is the ``components`` leading principal directions plus isotropic noise for the
    rest (Tipping and Bishop). The defect score of an image is its squared Mahalanobis distance
    under that Gaussian, up to a constant: scikit-learn's ``-PCA.score_samples``, the negative
    log-likelihood, so a deviation off the good parts' subspace counts too.

    Args:
        trunk: unused (nothing is trained); kept so every method takes the grid's trunk.
        components: principal components kept (at most the good images minus one, and the pixels).
    """

    _parameter_constraints = {"components": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, *, trunk: str = "mlp", components: int = 32) -> None:
        super().__init__(trunk=trunk)
        self.components = components

    def _fit_good(self, good: torch.Tensor) -> None:
        keep = max(1, min(int(self.components), len(good) - 1, good.shape[1]))
        self.pca_ = PCA(n_components=keep, svd_solver="full").fit(good.double().numpy())

    def _score(self, flat: torch.Tensor) -> torch.Tensor:
        if len(flat) == 0:
            return torch.empty(0)
        return torch.from_numpy(-self.pca_.score_samples(flat.double().numpy()))

    def _features(self, flat: torch.Tensor) -> torch.Tensor:
        # Whitened principal coordinates: the space of the Mahalanobis distance's leading part.
        z = self.pca_.transform(flat.double().numpy()) / np.sqrt(self.pca_.explained_variance_ + 1e-12)
        return torch.from_numpy(z)
