"""Siamese network: pairs of images, same class or not, contrastive loss."""

from __future__ import annotations

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.sampling.budget import LR_PARAM, Budget, suggest_lr
from methods.base import Batch, EmbeddingMethod, StepLoss, check_choice, check_positive, per_tuple_reduce
from methods.registry import register_method


def contrastive_losses(
    first: torch.Tensor,
    second: torch.Tensor,
    positives: int,
    pos_margin: float,
    neg_margin: float,
    normalize: bool = True,
) -> torch.Tensor:
    """Per-pair contrastive losses of pytorch-metric-learning's ``ContrastiveLoss``.

    Pair ``i`` is ``(first[i], second[i])``; the first ``positives`` pairs are same-class
    (``relu(d - pos_margin)``), the rest different-class (``relu(neg_margin - d)``), with
    ``d`` the Euclidean distance of the (L2-normalized when ``normalize``) embeddings.

    Returns:
        (pairs,) losses, positives first.
    """
    if normalize:
        first = nn.functional.normalize(first, p=2, dim=1)
        second = nn.functional.normalize(second, p=2, dim=1)
    dist = torch.linalg.vector_norm(first - second, dim=1)
    return torch.cat(
        [
            nn.functional.relu(dist[:positives] - pos_margin),
            nn.functional.relu(neg_margin - dist[positives:]),
        ]
    )


@register_method("siamese")
class Siamese(EmbeddingMethod):
    """Contrastive pairs: each step forms ``batch_images // 2`` pairs (a pair counts two images).

    The first element's class is drawn by the plan weights, the image uniformly within it.
    Exactly ``round(pairs * pair_positive_share)`` pairs are positive (second element a
    uniform image of the same class), the rest negative (second element drawn as in
    ``negatives``: ``"image"`` uniform over all other-class images, ``"class"`` uniform other
    class then image).

    Loss: pytorch-metric-learning's ``ContrastiveLoss`` formula with explicit pair indices
    ``(a1, p, a2, n)`` and ``LpDistance(normalize_embeddings=normalize)``; per pair,
    ``max(0, d - pos_margin)`` for positives and ``max(0, margin - d)`` for negatives,
    reduced by ``reduction`` (``"mean"`` over all pairs by default, the classic form).
    ``contrastive_losses`` computes it directly on the pair halves of the batch (the library
    builds the whole (n, n) distance matrix and gathers the pairs from it); the values agree
    to float rounding (tested).

    Args:
        trunk: shared trunk name.
        margin: negative margin (pairs of different classes are pushed beyond it).
        pos_margin: positive margin (same-class pairs pulled within it).
        pair_positive_share: share of positive pairs per step.
        normalize: L2-normalize embeddings inside the loss (and in ``embed``).
        negatives: ``"image"`` or ``"class"``.
        reduction: ``"mean"`` or ``"mean-nonzero"``.
    """

    def __init__(
        self,
        *,
        trunk: str = "mlp",
        margin: float = 1.0,
        pos_margin: float = 0.0,
        pair_positive_share: float = 0.5,
        normalize: bool = True,
        negatives: str = "image",
        reduction: str = "mean",
    ) -> None:
        super().__init__(trunk=trunk)
        self.margin = margin
        self.pos_margin = pos_margin
        self.pair_positive_share = pair_positive_share
        self.normalize = normalize
        self.negatives = negatives
        self.reduction = reduction

    def check_params(self) -> None:
        super().check_params()
        check_positive(self.name, "margin", self.margin)
        check_positive(self.name, "pos_margin", self.pos_margin, allow_zero=True)
        check_positive(self.name, "pair_positive_share", self.pair_positive_share, allow_zero=True)
        if self.pair_positive_share > 1:
            raise BenchError(
                f"{self.name}: pair_positive_share must be in [0, 1], got {self.pair_positive_share}"
            )
        check_choice(self.name, "normalize", self.normalize, (True, False))
        check_choice(self.name, "negatives", self.negatives, ("image", "class"))
        check_choice(self.name, "reduction", self.reduction, ("mean", "mean-nonzero"))

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor, budget: Budget) -> dict[str, nn.Module]:
        pairs = budget.batch_images // 2
        if pairs < 1:
            raise BenchError(
                f"{self.name}: batch_images={budget.batch_images} is too small for one pair (needs >= 2)"
            )
        self._pairs = pairs
        self._positives = int(round(pairs * self.pair_positive_share))
        return {}

    def collapse_loss(self) -> float:
        """Every pair at distance 0: positives score 0, negatives the margin, so ``margin`` times
        the share of negative pairs (``"mean"``), or ``margin`` (``"mean-nonzero"``)."""
        if self.reduction == "mean-nonzero":
            return float(self.margin)
        return float(self.margin) * (self._pairs - self._positives) / self._pairs

    def _draw(self, weights: torch.Tensor) -> Batch:
        index, gen, k = self.class_index, self.generator, self._positives
        classes = index.draw_classes(weights, self._pairs, gen)
        first = index.draw_in_class(classes, gen)
        same = index.draw_in_class(classes[:k], gen)
        other = index.draw_negatives(classes[k:], gen, by=self.negatives)
        return Batch(
            positions=torch.cat([first, same, other]),
            anchor_classes=classes,
            negative_classes=self.train_labels[other],
        )

    def _loss(self, batch: Batch) -> StepLoss:
        x = self.train_images[batch.positions]
        emb = self.model_(x)
        # The batch is laid out as [first elements; second elements], positives first.
        pairs = self._pairs
        losses = contrastive_losses(
            emb[:pairs], emb[pairs:], self._positives, self.pos_margin, self.margin, self.normalize
        )
        loss = per_tuple_reduce(losses, self.reduction) if losses.numel() else emb.sum() * 0.0
        return StepLoss(
            loss=loss, active=(losses > 0).sum(), tuples=self._pairs, forward_images=int(x.shape[0])
        )

    @classmethod
    def search_space(cls, trial) -> dict:
        """The learning rate, both margins (distances of unit vectors lie in [0, 2]) and the
        share of positive pairs; the defaults (1.0, 0.0, 0.5) lie inside."""
        return {
            LR_PARAM: suggest_lr(trial),
            "margin": trial.suggest_float("margin", 0.3, 1.6),
            "pos_margin": trial.suggest_float("pos_margin", 0.0, 0.4),
            "pair_positive_share": trial.suggest_float("pair_positive_share", 0.2, 0.8),
        }
