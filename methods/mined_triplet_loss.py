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
``CLOSE``, most often an image drawn twice) are summed term by term
(``methods/triplet_gradient.py``). It agrees with the
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

from methods.compiled import compiled
from methods.triplet_counts import CLOSE, TripletCounts, batch_hard_weights, margin_triplet_weights
from methods.triplet_gradient import NORM_EPS, counted_gradient

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
    u_np, norm_np, dist_np = distances(x, normalize)
    dist = torch.from_numpy(dist_np)
    margin32 = float(np.float32(margin))
    close = _CLOSE * (1.0 if normalize else float(np.sqrt((u_np * u_np).sum(1).max(initial=0.0))))
    if miner == "batch-hard":
        counted = batch_hard_weights(dist.to(x.device), labels, margin32)
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


def distances(x: torch.Tensor, normalize: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The library's ``LpDistance(normalize_embeddings=normalize)(x, x)``, the same float32 values.

    Returns:
        ``(u, norm, dist)`` as numpy arrays on the CPU: the embeddings as measured (normalized
        as ``F.normalize(x, dim=1)``), their (n, 1) norms (None when not normalized) and
        ``torch.cdist(u, u)``.

    On the CPU, for more than 25 rows, the element-wise steps of the normalization and of
    ``cdist`` before its matrix product run as two compiled loops that round as the torch
    operations do (``methods/compiled.py``); the norms, the matrix product and the square root
    stay torch's. Fewer dispatched operations, the same values.
    """
    with torch.no_grad():
        u, norm = x.detach(), None
        if normalize:  # as F.normalize(x, dim=1), which the library's LpDistance applies
            norm = u.norm(dim=1, keepdim=True)
        if u.device.type != "cpu" or len(u) <= 25:
            if normalize:
                u = u / norm.clamp(min=NORM_EPS)
            dist = cdist(u)
            return u.cpu().numpy(), None if norm is None else norm.cpu().numpy(), dist.cpu().numpy()
        norm_np = None if norm is None else norm.numpy()
        u_np, squares = compiled(_scaled_squares)(
            u.numpy(), np.ones((0, 1), np.float32) if norm_np is None else norm_np, np.float32(NORM_EPS)
        )
        left, right = compiled(_padded)(u_np, torch.from_numpy(squares).sum(-1, keepdim=True).numpy())
        product = torch.from_numpy(left).matmul(torch.from_numpy(right).mT)
        # torch's square root, not numpy's: on some CPUs its vectorized one is not correctly
        # rounded, and the library's distances are torch's.
        return u_np, norm_np, product.clamp_min_(0).sqrt_().numpy()


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


def _scaled_squares(x, norm, eps):  # pragma: no cover (compiled)
    """``u = x / norm.clamp(min=eps)`` (``x`` itself when ``norm`` has no rows) and ``u * u``."""
    n, d = x.shape
    scaled = norm.shape[0] > 0
    u = np.empty((n, d), np.float32)
    squares = np.empty((n, d), np.float32)
    for i in range(n):
        m = norm[i, 0] if scaled else np.float32(1)
        m = eps if m < eps else m  # clamp: NaN stays
        for c in range(d):
            v = x[i, c] / m if scaled else x[i, c]
            u[i, c] = v
            squares[i, c] = v * v
    return u, squares


def _padded(u, squared_norms):  # pragma: no cover (compiled)
    """``[-2u, |u|^2, 1]`` and ``[u, 1, |u|^2]``, cdist's padded factors."""
    n, d = u.shape
    left = np.empty((n, d + 2), np.float32)
    right = np.empty((n, d + 2), np.float32)
    one = np.float32(1)
    for i in range(n):
        for c in range(d):
            left[i, c] = u[i, c] * np.float32(-2)
            right[i, c] = u[i, c]
        s = squared_norms[i, 0]
        left[i, d], left[i, d + 1] = s, one
        right[i, d], right[i, d + 1] = one, s
    return left, right


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
        grad = counted_gradient(s.u, s.norm, s.dist, s.counted, s.close, float(grad_output) / s.count)
        return torch.from_numpy(grad).to(ctx.device), None, None
