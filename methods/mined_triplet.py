"""Mined triplet: class-grouped batches, triplets mined online (semihard or batch-hard)."""

from __future__ import annotations

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.sampling.budget import LR_PARAM, Budget, suggest_lr
from methods.base import Batch, EmbeddingMethod, StepLoss, check_choice, check_positive
from methods.mined_triplet_loss import mined_triplet_loss
from methods.registry import register_method

MINERS = ("semihard", "hard", "all", "batch-hard")


@register_method("mined-triplet")
class MinedTriplet(EmbeddingMethod):
    """Triplets mined from each batch of ``batch_images`` images.

    Batch: ``ceil(batch_images / images_per_class)`` class draws with replacement by the
    plan weights, ``images_per_class`` uniform images (with replacement) for each draw,
    truncated to ``batch_images``; a class drawn twice simply contributes more images.

    Mining and loss: pytorch-metric-learning's ``TripletMarginLoss`` on the triplets its
    ``TripletMarginMiner(type_of_triplets=miner)`` selects for ``"semihard"`` (default),
    ``"hard"`` or ``"all"``, or its ``BatchHardMiner`` selects for ``"batch-hard"``, with
    ``LpDistance(normalize_embeddings=normalize)`` (plain Euclidean) for both, reduced over
    the triplets with non-zero loss (``reduction="mean-nonzero"``, the library's default).
    ``mined_triplet_loss`` computes it from how many active triplets use each distance entry,
    with an analytic gradient, instead of listing 10^4 to 10^5 triplets per step: the same
    triplets, the library's loss and gradient to float rounding. ``sampling_["tuples"]``
    counts mined triplets; ``anchor_counts`` the batch images per class; ``negative_counts``
    the classes of the mined negatives.

    Args:
        trunk: shared trunk name.
        margin: margin of the miner and of the loss.
        miner: ``"semihard"``, ``"hard"``, ``"all"`` or ``"batch-hard"``.
        images_per_class: images drawn per class draw (m).
        normalize: L2-normalize embeddings inside miner and loss (and in ``embed``).
        reduction: ``"mean-nonzero"`` or ``"mean"``.
    """

    def __init__(
        self,
        *,
        trunk: str = "mlp",
        margin: float = 0.2,
        miner: str = "semihard",
        images_per_class: int = 4,
        normalize: bool = True,
        reduction: str = "mean-nonzero",
    ) -> None:
        super().__init__(trunk=trunk)
        self.margin = margin
        self.miner = miner
        self.images_per_class = images_per_class
        self.normalize = normalize
        self.reduction = reduction

    def check_params(self) -> None:
        super().check_params()
        check_positive(self.name, "margin", self.margin, allow_zero=True)
        check_choice(self.name, "miner", self.miner, MINERS)
        check_choice(self.name, "normalize", self.normalize, (True, False))
        check_choice(self.name, "reduction", self.reduction, ("mean", "mean-nonzero"))
        if not isinstance(self.images_per_class, int) or self.images_per_class < 2:
            raise BenchError(
                f"{self.name}: images_per_class must be an integer >= 2, got {self.images_per_class!r}"
            )

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor, budget: Budget) -> dict[str, nn.Module]:
        if budget.batch_images < 2 * self.images_per_class:
            raise BenchError(
                f"{self.name}: batch_images={budget.batch_images} needs room for two class groups "
                f"of images_per_class={self.images_per_class}"
            )
        m = self.images_per_class
        self._groups = -(-budget.batch_images // m)
        return {}

    def collapse_loss(self) -> float:
        """The margin: as distances shrink to one value every mined triplet scores about the
        margin (an exact collapse leaves semihard mining nothing to mine: the rank shows it)."""
        return float(self.margin)

    def _draw(self, weights: torch.Tensor) -> Batch:
        index, gen = self.class_index, self.generator
        groups = index.draw_classes(weights, self._groups, gen)
        classes = groups.repeat_interleave(self.images_per_class)[: self.batch_images]
        return Batch(positions=index.draw_in_class(classes, gen), anchor_classes=classes)

    def _loss(self, batch: Batch) -> StepLoss:
        labels = batch.anchor_classes
        x = self.train_images[batch.positions]
        emb = self.model_(x)
        out = mined_triplet_loss(emb, labels, self.margin, self.miner, self.reduction, self.normalize)
        batch.negative_classes = labels
        batch.negative_weights = out.negative_columns
        return StepLoss(loss=out.loss, active=out.active, tuples=out.tuples, forward_images=int(x.shape[0]))

    @classmethod
    def search_space(cls, trial) -> dict:
        """The learning rate, the margin (log-uniform, default 0.2 inside) and the miner, i.e.
        which triplets train: semi-hard, hard, all active, or the batch-hard one per anchor."""
        return {
            LR_PARAM: suggest_lr(trial),
            "margin": trial.suggest_float("margin", 0.02, 1.0, log=True),
            "miner": trial.suggest_categorical("miner", list(MINERS)),
        }
