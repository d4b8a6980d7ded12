"""Mined triplet: class-grouped batches, triplets mined online (semihard or batch-hard)."""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner
from pytorch_metric_learning.reducers import DoNothingReducer
from torch import nn

from bench.budget import Budget
from bench.errors import BenchError
from methods.base import Batch, EmbeddingMethod, StepLoss, check_choice, check_positive, per_tuple_reduce
from methods.registry import register_method

MINERS = ("semihard", "hard", "all", "batch-hard")


@register_method("mined-triplet")
class MinedTriplet(EmbeddingMethod):
    """Triplets mined from each batch of ``batch_images`` images.

    Batch: ``ceil(batch_images / images_per_class)`` class draws with replacement by the
    plan weights, ``images_per_class`` uniform images (with replacement) for each draw,
    truncated to ``batch_images``; a class drawn twice simply contributes more images.

    Mining: pytorch-metric-learning's ``TripletMarginMiner(type_of_triplets=miner)`` for
    ``"semihard"`` (default), ``"hard"`` or ``"all"``, or ``BatchHardMiner`` for
    ``"batch-hard"``; then its ``TripletMarginLoss`` on the mined triplets, with
    ``LpDistance(normalize_embeddings=normalize)`` (plain Euclidean) for both, reduced over
    the triplets with non-zero loss (``reduction="mean-nonzero"``, the library's default).
    ``sampling_["tuples"]`` counts mined triplets; ``anchor_counts`` the batch images per
    class; ``negative_counts`` the classes of the mined negatives.

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
        distance = LpDistance(normalize_embeddings=self.normalize, p=2, power=1)
        if self.miner == "batch-hard":
            self._miner = BatchHardMiner(distance=distance)
        else:
            self._miner = TripletMarginMiner(
                margin=self.margin, type_of_triplets=self.miner, distance=distance
            )
        self._loss_fn = TripletMarginLoss(margin=self.margin, distance=distance, reducer=DoNothingReducer())
        return {}

    def _draw(self, weights: torch.Tensor) -> Batch:
        index, gen = self._index, self._generator
        groups = index.draw_classes(weights, self._groups, gen)
        classes = groups.repeat_interleave(self.images_per_class)[: self._batch_images]
        return Batch(positions=index.draw_in_class(classes, gen), anchor_classes=classes)

    def _loss(self, batch: Batch) -> StepLoss:
        labels = batch.anchor_classes
        x = self._images[batch.positions]
        emb = self.model_(x)
        triplets = self._miner(emb, labels)
        batch.negative_classes = labels[triplets[2]]
        out = self._loss_fn(emb, labels, indices_tuple=triplets)
        losses = out["loss"]["losses"]
        if not torch.is_tensor(losses):  # nothing mined this step
            losses = emb.new_zeros(0)
        loss = per_tuple_reduce(losses, self.reduction) if losses.numel() else emb.sum() * 0.0
        return StepLoss(
            loss=loss,
            active=(losses > 0).sum(),
            tuples=torch.tensor(triplets[0].numel(), device=emb.device),
            forward_images=int(x.shape[0]),
        )
