"""The mined triplet's loss: pytorch-metric-learning's miners and ``TripletMarginLoss``, by counting.

``TripletMarginMiner`` lists every (anchor, positive, negative) triplet of the batch whose margin
passes its test, 10^4 to 10^5 of them for 192 images, and ``TripletMarginLoss`` gathers two
distances per triplet and scatters the gradient back. Neither list is needed: a mined
triplet's loss ``relu(d_ap - d_an + margin)`` is linear in the two distances wherever it is
non-zero, so the loss and its gradient only depend on how many active triplets use each entry
of the distance matrix (``methods/triplet_counts.py`` counts them, selecting exactly the
library's triplets).

The distances are the library's (``LpDistance``: ``torch.cdist`` of the L2-normalized
embeddings, the same float32 values). The gradient is analytic (a custom
``autograd.Function``): with ``W`` the signed counts over the reduction's count,
``dL/du_i = sum_j (V_ij + V_ji) (u_i - u_j)`` with ``V = W / D``, one matrix product, then the
normalization's Jacobian; listed entries (batch-hard's triplets, and pairs closer than
``CLOSE``, most often an image drawn twice) are summed term by term. It agrees with the
library's autograd to float rounding, not bit for bit: where two embeddings coincide the
library divides rounding noise by a distance of rounding noise, and the exact gradient of
those terms (zero for a zero distance) is used here. The loss value is the same sum. A
non-finite embedding makes the loss NaN (so training stops with ``TrainingDiverged``) instead
of silently dropping out of the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.triplet_counts import CLOSE, TripletCounts, batch_hard_weights, margin_triplet_weights

#: ``F.normalize``'s default eps, as pytorch-metric-learning's ``LpDistance`` normalizes.
_NORM_EPS = 1e-12
#: Distances below this (times the largest embedding norm) get their gradient term directly.
_CLOSE = CLOSE


@dataclass(frozen=True)
class MinedTripletLoss:
    """One batch's mined triplet loss and what it was made of.

    Attributes:
        loss: scalar float32 with the library's loss value and gradient (to float rounding).
        tuples: () int64, triplets mined.
        active: () int64, mined triplets with non-zero loss.
        negative_columns: (n,) int64, how many mined triplets use batch image j as negative.
    """

    loss: torch.Tensor
    tuples: torch.Tensor
    active: torch.Tensor
    negative_columns: torch.Tensor


def mined_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    miner: str = "semihard",
    reduction: str = "mean-nonzero",
    normalize: bool = True,
) -> MinedTripletLoss:
    """``TripletMarginLoss(margin)`` on the triplets the library's miner selects, without listing them.

    Equivalent to ``TripletMarginMiner(margin, type_of_triplets=miner)`` (or ``BatchHardMiner()``
    for ``miner="batch-hard"``) and ``TripletMarginLoss(margin)``, both with
    ``LpDistance(normalize_embeddings=normalize)``, the per-triplet losses reduced by their mean
    (``"mean"``) or by their mean over the non-zero ones (``"mean-nonzero"``, the library's
    ``AvgNonZeroReducer``). A batch that mines nothing has loss 0 (and a zero gradient).

    Args:
        embeddings: (n, d) float32 embeddings with gradient.
        labels: (n,) non-negative integer class labels.
        margin: miner and loss margin (>= 0).
        miner: ``"semihard"``, ``"hard"``, ``"all"`` or ``"batch-hard"``.
        reduction: ``"mean-nonzero"`` or ``"mean"``.
        normalize: L2-normalize the embeddings before measuring distances.
    """
    x = embeddings
    with torch.no_grad():
        u, norm = x.detach(), None
        if normalize:  # as F.normalize(x, dim=1), which the library's LpDistance applies
            norm = u.norm(dim=1, keepdim=True)
            u = u / norm.clamp(min=_NORM_EPS)
        dist = cdist(u)
    # Counting and the gradient run in numpy: a few dozen operations on small arrays, where
    # torch's per-operation dispatch would cost more than the arithmetic.
    u_np, dist_np = u.cpu().numpy(), dist.cpu().numpy()
    norm_np = None if norm is None else norm.cpu().numpy()
    margin32 = float(np.float32(margin))
    close = _CLOSE * (1.0 if normalize else float(np.sqrt((u_np * u_np).sum(1).max(initial=0.0))))
    if miner == "batch-hard":
        counted = batch_hard_weights(dist, labels, margin32)
    else:
        counted = margin_triplet_weights(dist_np, labels.cpu().numpy(), margin32, miner, close)
    count = max(counted.active if reduction == "mean-nonzero" else counted.tuples, 1)
    # Sum over active triplets of d_ap - d_an + margin; any non-finite distance makes it NaN.
    value = torch.tensor(
        (counted.weighted_sum + margin32 * counted.active) / count, dtype=x.dtype, device=x.device
    )
    loss = _CountedTripletLoss.apply(x, value, _Saved(u_np, norm_np, dist_np, counted, count, close))
    return MinedTripletLoss(
        loss=loss,
        tuples=torch.tensor(counted.tuples, device=x.device),
        active=torch.tensor(counted.active, device=x.device),
        negative_columns=torch.from_numpy(counted.negative_columns).to(x.device),
    )


def cdist(u: torch.Tensor) -> torch.Tensor:
    """``torch.cdist(u, u)``, the same float32 values, with fewer dispatched operations: for more
    than 25 rows cdist takes the product ``[-2u, |u|^2, 1] . [u, 1, |u|^2]``, then the square
    root of its positive part (``tests/test_mining.py`` holds the two equal)."""
    if len(u) <= 25:
        return torch.cdist(u, u)
    norm = u.pow(2).sum(-1, keepdim=True)
    pad = torch.ones_like(norm)
    left = torch.cat([u.mul(-2), norm, pad], -1)
    return left.matmul(torch.cat([u, pad, norm], -1).mT).clamp_min_(0).sqrt_()


@dataclass(frozen=True)
class _Saved:
    """What the backward needs, as numpy arrays: the (normalized) embeddings, their norms (None
    when not normalized), the distances, the counts, the reduction's count and the close
    threshold."""

    u: np.ndarray
    norm: np.ndarray | None
    dist: np.ndarray
    counted: TripletCounts
    count: int
    close: float


class _CountedTripletLoss(torch.autograd.Function):
    """The scalar ``value``; its gradient with respect to ``x`` is ``d(sum W * D / count) / dx``."""

    @staticmethod
    def forward(ctx, x, value, saved):
        ctx.saved = saved
        ctx.device = x.device
        return value

    @staticmethod
    def backward(ctx, grad_output):
        s = ctx.saved
        u, norm, dist, counted = s.u, s.norm, s.dist, s.counted
        pairs = [counted.pairs] if counted.pairs is not None else []
        if counted.weights is None:
            grad = np.zeros_like(u)
        else:
            # d|u_i - u_j| / du_i = (u_i - u_j) / D_ij, summed as u_i * rowsum(V) - V @ u with
            # V = W / D. That form cancels, and cdist's distances below ~1e-3 |u| are mostly
            # rounding noise of the squared distance: such pairs (if any) join the list.
            weights = counted.weights
            if counted.close_in_weights:
                apart = dist > s.close
                v = np.divide(weights, dist, out=np.zeros_like(weights), where=apart)
                listed = np.where(apart, 0, weights)
                i, j = listed.nonzero()
                pairs.append((i, j, listed[i, j]))
            else:
                v = weights / np.maximum(dist, s.close)  # the diagonal's zero weight stays zero
            v = v + v.T
            # The product through torch: its thread setting holds (numpy's BLAS would start its own).
            grad = u * v.sum(1, keepdims=True) - torch.from_numpy(v).mm(torch.from_numpy(u)).numpy()
        for i, j, w in pairs:  # term by term: exact for any distance
            diff = u[i] - u[j]
            length = np.sqrt((diff * diff).sum(1, keepdims=True))
            # Coinciding embeddings (an image drawn twice) have no direction: gradient zero.
            pull = np.divide(w[:, None], length, out=np.zeros_like(length), where=length > 0) * diff
            into, rows = torch.from_numpy(grad), torch.from_numpy(pull)  # numpy's add.at is slow
            into.index_add_(0, torch.from_numpy(i), rows).index_add_(0, torch.from_numpy(j), rows.neg())
        scale = float(grad_output) / s.count
        if norm is not None:
            # u = x / max(|x|, eps): the Jacobian drops the radial part and divides by the norm.
            radial = np.where(norm >= _NORM_EPS, (u * grad).sum(1, keepdims=True), 0)
            grad = (grad - u * radial) * (scale / np.maximum(norm, _NORM_EPS))
        else:
            grad = grad * scale
        return torch.from_numpy(grad.astype(u.dtype, copy=False)).to(ctx.device), None, None
