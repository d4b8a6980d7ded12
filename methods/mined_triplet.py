"""Mined triplet: class-grouped batches, triplets mined online (semihard or batch-hard)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import DoNothingReducer
from torch import nn

from bench.core.errors import BenchError
from bench.sampling.budget import LR_PARAM, Budget, suggest_lr
from methods.base import Batch, EmbeddingMethod, StepLoss, check_choice, check_positive, per_tuple_reduce
from methods.registry import register_method

MINERS = ("semihard", "hard", "all", "batch-hard")

#: Most (positive pair, candidate negative) entries mined at once; bounds the miner's memory.
MINING_CHUNK = 1 << 22


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-label pairs without the diagonal, and different-label pairs, both (n, n) bool."""
    same = labels[:, None] == labels[None, :]
    matches = same.clone()
    matches.fill_diagonal_(False)
    return matches, ~same


def _margin_triplet_blocks(
    mat: torch.Tensor, labels: torch.Tensor, is_inverted: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every candidate triplet's margin, one block of positive pairs at a time.

    Each positive pair ``(a, p)`` (in the library's lexicographic order) is compared with a
    whole row ``mat[a]`` of candidate negatives at once: an ``(pairs, n)`` block of at most
    ``MINING_CHUNK`` entries, computed with the library's float subtraction of the same
    distance-matrix entries.

    Yields:
        ``(anchors, positives, triplet_margin)``: the block's pairs and their ``(pairs, n)``
        margins ``d_an - d_ap``, NaN where the candidate shares the anchor's class (every
        comparison with NaN is False, so those entries drop out of every selection).
    """
    matches, diffs = _pair_masks(labels)
    anchors, positives = torch.where(matches)
    negative_mat = mat.masked_fill(~diffs, float("nan"))
    step = max(1, MINING_CHUNK // max(mat.shape[0], 1))
    for start in range(0, anchors.numel(), step):
        a = anchors[start : start + step]
        p = positives[start : start + step]
        ap_dist = mat[a, p].unsqueeze(1)
        an_dist = negative_mat.index_select(0, a)
        yield a, p, (an_dist.neg_().add_(ap_dist) if is_inverted else an_dist.sub_(ap_dist))


def _select(
    triplet_margin: torch.Tensor, margin: float, type_of_triplets: str, dtype: torch.dtype
) -> torch.Tensor:
    """``TripletMarginMiner``'s test of each triplet margin, as 1/0 (or True/False) of ``dtype``.

    The comparisons write ``dtype`` directly: a float mask is counted with float sums, which
    on the CPU cost a fraction of a bool-to-integer conversion.
    """
    if type_of_triplets not in ("all", "hard", "semihard", "easy"):
        raise BenchError(f"unknown triplet type {type_of_triplets!r}")

    def test(compare, value) -> torch.Tensor:
        return compare(triplet_margin, value, out=torch.empty_like(triplet_margin, dtype=dtype))

    if type_of_triplets == "easy":
        return test(torch.gt, margin)
    keep = test(torch.le, margin)
    if type_of_triplets == "hard":
        keep.mul_(test(torch.le, 0))
    elif type_of_triplets == "semihard":
        keep.mul_(test(torch.gt, 0))
    return keep


def mine_margin_triplets(
    mat: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    type_of_triplets: str = "semihard",
    is_inverted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The triplets pytorch-metric-learning's ``TripletMarginMiner`` returns, without its n^3 table.

    The library enumerates every (anchor, positive, negative) triplet of the batch (about
    700k for 192 images) and then filters them; here the selection is made pair by pair
    (``_margin_triplet_blocks``), so it is identical, and so is the order (by anchor, then
    positive, then negative).

    Args:
        mat: (n, n) distances (or similarities when ``is_inverted``), as the miner's
            ``distance(embeddings, embeddings)`` returns them.
        labels: (n,) class labels.
        margin: the miner's margin.
        type_of_triplets: ``"all"``, ``"hard"``, ``"semihard"`` or ``"easy"``.
        is_inverted: the distance is a similarity (larger is closer).

    Returns:
        ``(anchors, positives, negatives)`` int64 index tensors of equal length.
    """
    found = []
    for a, p, triplet_margin in _margin_triplet_blocks(mat, labels, is_inverted):
        keep = _select(triplet_margin, margin, type_of_triplets, torch.bool)
        pair, negative = keep.nonzero().unbind(1)
        found.append((a[pair], p[pair], negative))
    if len(found) == 1:
        return found[0]
    if not found:
        empty = labels.new_zeros(0, dtype=torch.int64)
        return empty, empty.clone(), empty.clone()
    return tuple(torch.cat(parts) for parts in zip(*found, strict=True))


@dataclass(frozen=True)
class MarginTripletLoss:
    """The loss of one batch's margin-mined triplets, and what it was made of.

    Attributes:
        loss: scalar; its gradient is the library's (see ``margin_triplet_loss``).
        tuples: () int64, triplets mined.
        active: () int64, mined triplets with non-zero loss.
        negative_columns: (n,) int64, how many mined triplets use batch image j as negative.
    """

    loss: torch.Tensor
    tuples: torch.Tensor
    active: torch.Tensor
    negative_columns: torch.Tensor


class _GivenGradient(torch.autograd.Function):
    """A scalar ``value`` whose gradient with respect to ``mat`` is the tensor ``grad``."""

    @staticmethod
    def forward(ctx, mat, grad, value):
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None


def _repeated_sums(g: torch.Tensor, most: int) -> torch.Tensor:
    """``table[k]`` = ``g + g + ... + g`` (k terms) added one at a time in ``g``'s precision,
    the way autograd's indexed accumulation adds k equal per-triplet gradients.

    NumPy's ``cumsum`` accumulates sequentially in the requested dtype (unlike its pairwise
    ``sum``), which is exactly that."""
    step = g.cpu().numpy()
    sums = np.zeros(most + 1, dtype=step.dtype)
    np.cumsum(np.full(most, step, dtype=step.dtype), dtype=step.dtype, out=sums[1:])
    return torch.from_numpy(sums).to(g.device)


def margin_triplet_loss(
    mat: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    type_of_triplets: str = "semihard",
    reduction: str = "mean-nonzero",
    is_inverted: bool = False,
) -> MarginTripletLoss | None:
    """pytorch-metric-learning's ``TripletMarginLoss`` on ``TripletMarginMiner``'s triplets,
    without listing the triplets.

    The library gathers ``mat[a, p]`` and ``mat[a, n]`` for each of the 10^4 to 10^5 triplets
    a batch of 192 images yields, and its backward scatters them back. But a mined triplet's
    loss ``relu(d_ap - d_an + margin)`` is linear in the distances (every mined triplet has
    ``d_an - d_ap <= margin``), so the gradient with respect to ``mat`` only depends on how
    many active triplets each entry takes part in: entry ``[a, p]`` receives ``k`` times the
    per-triplet gradient ``g`` (and ``[a, n]`` minus that), where ``g = 1 / count`` comes from
    the reduction. Those counts are summed over the miner's ``(pairs, n)`` mask, and the
    ``k``-fold sums of ``g`` are added one term at a time as autograd's indexed accumulation
    does, so on the CPU the gradient equals the library's bit for bit (``tests/test_mining``).
    The loss value (for the training log only) is the same sum in float64.

    Args:
        mat: (n, n) distance matrix with gradient, ``distance(emb, emb)``.
        labels: (n,) batch labels.
        margin: miner and loss margin.
        type_of_triplets: ``"semihard"``, ``"hard"`` or ``"all"`` (``"easy"`` triplets have
            zero loss).
        reduction: ``"mean-nonzero"`` (the library's ``AvgNonZeroReducer``) or ``"mean"``.
        is_inverted: ``mat`` holds similarities.

    Returns:
        The loss and counts, or None when no triplet was mined.
    """
    n = mat.shape[0]
    detached = mat.detach()
    # Counts in mat's float type: exact integers, and float sums are the cheap ones here.
    pos_k = torch.zeros(n, n, dtype=mat.dtype, device=mat.device)
    neg_k = torch.zeros_like(pos_k)
    columns = torch.zeros(n, dtype=torch.float64, device=mat.device)
    for a, p, triplet_margin in _margin_triplet_blocks(detached, labels, is_inverted):
        keep = _select(triplet_margin, margin, type_of_triplets, mat.dtype)
        columns += keep.sum(0)  # exact: a block has fewer than 2^24 rows
        # relu(margin - triplet_margin) > 0 exactly when triplet_margin < margin.
        active = keep.mul_(torch.lt(triplet_margin, margin, out=torch.empty_like(keep)))
        pos_k[a, p] = active.sum(1)
        neg_k.index_add_(0, a, active)
    tuples = columns.sum().to(torch.int64)
    if int(tuples) == 0:
        return None
    active_total = pos_k.sum(dtype=torch.float64).to(torch.int64)
    count = active_total.clamp(min=1) if reduction == "mean-nonzero" else tuples
    # The per-triplet gradient as the library's backward computes it: d(sum / count) / d sum.
    g = torch.ones((), dtype=mat.dtype, device=mat.device) / count
    closer, farther = (neg_k, pos_k) if is_inverted else (pos_k, neg_k)
    closer, farther = closer.to(torch.int64), farther.to(torch.int64)
    sums = _repeated_sums(g, int(torch.maximum(closer.max(), farther.max())))
    grad = sums[closer] - sums[farther]
    signed = (closer - farther).to(torch.float64)
    # Only entries of active triplets enter the value, so a non-finite distance elsewhere in
    # the batch leaves it finite, as it leaves the library's loss.
    used = detached.to(torch.float64).masked_fill(signed == 0, 0.0)
    value = ((signed * used).sum() + margin * active_total) / count
    return MarginTripletLoss(
        loss=_GivenGradient.apply(mat, grad, value.to(mat.dtype)),
        tuples=tuples,
        active=active_total,
        negative_columns=columns.to(torch.int64),
    )


def mine_batch_hard(
    mat: torch.Tensor, labels: torch.Tensor, is_inverted: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The triplets pytorch-metric-learning's ``BatchHardMiner`` returns: for every anchor with
    a positive and a negative, its farthest positive and nearest negative (ties broken by
    ``torch.max``/``torch.min`` on the same masked matrix, as the library does)."""
    matches, diffs = _pair_masks(labels)
    far, near = (float("inf"), float("-inf")) if is_inverted else (float("-inf"), float("inf"))
    pos_mat = mat.masked_fill(~matches, far)
    neg_mat = mat.masked_fill(~diffs, near)
    if is_inverted:
        positives = pos_mat.min(1).indices
        negatives = neg_mat.max(1).indices
    else:
        positives = pos_mat.max(1).indices
        negatives = neg_mat.min(1).indices
    (anchors,) = torch.where(matches.any(1) & diffs.any(1))
    return anchors, positives[anchors], negatives[anchors]


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
    The margin miners' loss is computed by ``margin_triplet_loss`` from per-entry triplet
    counts (the library's gradient bit for bit, without listing 10^4 to 10^5 triplets per
    step); batch-hard's one triplet per anchor goes through the library's loss itself.
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
        self._distance = distance
        self._loss_fn = TripletMarginLoss(margin=self.margin, distance=distance, reducer=DoNothingReducer())
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

    def _mine(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The triplets (anchor, positive, negative indices) this method mines from a batch."""
        with torch.no_grad():
            # As the library's miners: distance(embeddings, ref_emb) with ref_emb = embeddings.
            detached = emb.detach()
            mat = self._distance(detached, detached)
            inverted = self._distance.is_inverted
            if self.miner == "batch-hard":
                return mine_batch_hard(mat, labels, inverted)
            return mine_margin_triplets(mat, labels, self.margin, self.miner, inverted)

    def _loss(self, batch: Batch) -> StepLoss:
        labels = batch.anchor_classes
        x = self.train_images[batch.positions]
        emb = self.model_(x)
        if self.miner == "batch-hard":
            return self._batch_hard_loss(emb, labels, batch, int(x.shape[0]))
        # As the library's loss: distance(embeddings, ref_emb) with ref_emb = embeddings.
        mat = self._distance(emb, emb)
        out = margin_triplet_loss(
            mat, labels, self.margin, self.miner, self.reduction, self._distance.is_inverted
        )
        if out is None:  # nothing mined this step
            zero = torch.zeros((), dtype=torch.int64, device=emb.device)
            return StepLoss(loss=emb.sum() * 0.0, active=zero, tuples=zero, forward_images=int(x.shape[0]))
        batch.negative_classes = labels
        batch.negative_weights = out.negative_columns
        return StepLoss(loss=out.loss, active=out.active, tuples=out.tuples, forward_images=int(x.shape[0]))

    def _batch_hard_loss(
        self, emb: torch.Tensor, labels: torch.Tensor, batch: Batch, images: int
    ) -> StepLoss:
        triplets = self._mine(emb, labels)
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
            forward_images=images,
        )

    @classmethod
    def search_space(cls, trial) -> dict:
        """The learning rate, the margin (log-uniform, default 0.2 inside) and the miner, i.e.
        which triplets train: semi-hard, hard, all active, or the batch-hard one per anchor."""
        return {
            LR_PARAM: suggest_lr(trial),
            "margin": trial.suggest_float("margin", 0.02, 1.0, log=True),
            "miner": trial.suggest_categorical("miner", list(MINERS)),
        }
