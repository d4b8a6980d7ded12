"""The base of the label-free baselines: methods that see only the good training images.

An inspection line often has plenty of good parts and few labelled defects; a baseline that never
sees a defect label shows what the labels buy. Such a method goes through the same runner and
plug-in API as every other (``register_method``, hyperparameters with constraints, ``fit``
returning ``self``), but instead of training a trunk its ``fit`` keeps the good class of the
(standardized) training split and fits a model of it, and it scores images with
``defect_score(images) -> (n,)``, higher meaning farther from the good parts. ``evaluate`` reads
only that score (``bench.evaluation.evaluate``): the good-vs-defect metrics and operating
points; it predicts no class, so every class metric is None and the report prints ``n/a``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.sampling.budget import Budget
from bench.sampling.plan import BalancePlan
from methods.base import EmbeddingMethod

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


class GoodOnlyBaseline(EmbeddingMethod):
    """A label-free baseline: ``_fit_good`` models the good training images (flattened, float32),
    ``_score`` and ``_features`` read the model. The balance plan and the budget's steps do not
    apply (nothing is drawn); ``sampling_`` records the good images used."""

    label_free = True

    @classmethod
    def search_space(cls) -> dict[str, BaseDistribution]:
        """Nothing trains, so there is no learning rate; a baseline adds its own parameters."""
        return {}

    def fit(
        self,
        train: ImageSet,
        val: ImageSet | None = None,
        plan: BalancePlan | None = None,
        budget: Budget | None = None,
        seed: int = 0,
        device: str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> GoodOnlyBaseline:
        """Model the good images of ``train`` (never its defect labels) and return ``self``.

        Raises:
            BenchError: the split has no good class, or no good image.
        """
        budget = budget or Budget()
        self.check_params()
        if train.good_index is None:
            raise BenchError(f"{self.name}: a label-free baseline needs a good class")
        good = train.images[train.labels == train.good_index]
        if len(good) < 2:
            raise BenchError(f"{self.name}: needs at least 2 good training images (got {len(good)})")
        self.classes_ = tuple(train.classes)
        self.budget_ = budget
        self._fit_good(good.reshape(len(good), -1).float().cpu())
        self.loss_history_ = []
        self.checkpoint_ = None
        code = train.classes[train.good_index]
        self.sampling_ = {
            "anchor_counts": {c: (len(good) if c == code else 0) for c in train.classes},
            "negative_counts": {},
            "tuples": 0,
            "active_share": None,
            "steps": 0,
            "images_seen": len(good),
            "forward_images": len(good),
        }
        if progress is not None:
            progress(budget.steps, budget.steps)
        return self

    def _fit_good(self, good: torch.Tensor) -> None:
        """Fit the model of the good images (n, h*w); set learned state ending in ``_``."""
        raise NotImplementedError

    def _score(self, flat: torch.Tensor) -> torch.Tensor:
        """Defect scores (n,) of flattened images, higher for images farther from the good ones."""
        raise NotImplementedError

    def _features(self, flat: torch.Tensor) -> torch.Tensor:
        """The space the score is measured in (n, d), for the report's projection."""
        return flat

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise BenchError(f"{self.name}: call fit() before defect_score() or embed()")

    def defect_score(self, images: torch.Tensor) -> torch.Tensor:
        """Defect scores (n,) float64 on the CPU: higher means farther from the good parts."""
        self._check_fitted()
        return self._score(images.reshape(len(images), -1).float().cpu()).double()

    def embed(self, images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The images in the score's space (n, d), float32 on the CPU."""
        self._check_fitted()
        return self._features(images.reshape(len(images), -1).float().cpu()).float()
