"""The mined triplet's loss: pytorch-metric-learning's miners and ``TripletMarginLoss``, by counting.

``TripletMarginMiner`` lists every (anchor, positive, negative) triplet of the batch whose margin
``t = d_an - d_ap`` passes its test, 10^4 to 10^5 of them for 192 images, and
``TripletMarginLoss`` gathers two distances per triplet and scatters the gradient back. Neither
list is needed. A mined triplet's loss ``relu(d_ap - d_an + margin)`` is linear in the two
distances wherever it is non-zero, so the loss and its gradient with respect to the distance
matrix only depend on *how many* active triplets use each entry: ``[a, p]`` enters with
``+k_ap`` and ``[a, n]`` with ``-k_an``. Those counts come from one sort:

- each row of the distance matrix is sorted once, its anchor's positives first, then its
  negatives (numpy's vectorized sort of integer keys that carry the column in their low bits);
- for each positive pair, the negatives whose margin passes the test form one contiguous run
  of that sorted row, found by ``searchsorted`` at ``d_ap`` and ``d_ap + margin``;
- ``k_ap`` is the length of the run, and ``k_an`` (how many runs cover each negative) is a
  prefix sum of +1/-1 marks at the runs' ends.

The tests are exactly the library's: it compares the float32 difference ``fl(d_an - d_ap)``
with the float32 margin, and ``fl(y) <= m`` holds exactly when ``y`` lies below the midpoint
between ``m`` and the next float32 (or on it, when ``m``'s last bit is even), so each search
bound is that midpoint added to ``d_ap`` in float64, where the sum is exact. The miner
therefore selects the library's triplets, boundary and ties included (``tests/test_mining.py``).

The gradient is analytic (a custom ``autograd.Function``): with ``W`` the signed counts over the
reduction's count and ``D`` the Euclidean distances between the (normalized) embeddings ``u``,
``dL/du_i = sum_j (V_ij + V_ji) (u_i - u_j)`` with ``V = W / D``, one matrix product, then the
normalization's Jacobian. It agrees with the library's autograd to float rounding, not bit for
bit (where two embeddings coincide the library divides by a distance of rounding noise; the
exact gradient of those zero-length terms is zero and is used here). The loss value is the same
sum in float64. A non-finite embedding makes the loss NaN (so training stops with
``TrainingDiverged``) instead of silently dropping out of the selection.

``BatchHardMiner``'s one triplet per anchor (its farthest positive and nearest negative, chosen
by ``torch.max``/``torch.min`` on the same masked matrix as the library) goes through the same
counting and gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: The low key bits that carry a column: a float32 distance widened to float64 has 29 zero
#: low mantissa bits.
_COLUMN_BITS = (1 << 29) - 1
_SIGN = -(1 << 63)
_INF_BITS = int(np.array(np.inf).view(np.int64))
#: ``F.normalize``'s default eps, as pytorch-metric-learning's ``LpDistance`` normalizes.
_NORM_EPS = 1e-12
#: Distances below this (times the largest embedding norm) get their gradient term directly.
_CLOSE = 1e-3


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
        labels: (n,) class labels.
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
        # The library's LpDistance: torch.cdist on the normalized embeddings, the same call.
        dist = torch.cdist(u, u)
        margin32 = float(np.float32(margin))
        if miner == "batch-hard":
            weights, tuples, active, columns, closest = batch_hard_weights(dist, labels, margin32)
        else:
            weights, tuples, active, columns, closest = margin_triplet_weights(dist, labels, margin32, miner)
        count = (active if reduction == "mean-nonzero" else tuples).clamp(min=1)
        # Sum over active triplets of d_ap - d_an + margin; any non-finite distance makes it NaN.
        value = (torch.dot(weights.view(-1), dist.view(-1)) + margin32 * active) / count
        close = _CLOSE * (1.0 if normalize else float(u.norm(dim=1).max()))
    loss = _CountedTripletLoss.apply(x, u, norm, dist, weights, count, value.to(x.dtype), close, closest)
    return MinedTripletLoss(loss=loss, tuples=tuples, active=active, negative_columns=columns)


class _CountedTripletLoss(torch.autograd.Function):
    """The scalar ``value``; its gradient with respect to ``x`` is ``d(sum W * D / count) / dx``."""

    @staticmethod
    def forward(ctx, x, u, norm, dist, weights, count, value, close, closest):
        ctx.save_for_backward(u, norm, dist, weights, count)
        ctx.close, ctx.any_close = close, bool(closest <= close)
        return value

    @staticmethod
    def backward(ctx, grad_output):
        u, norm, dist, weights, count = ctx.saved_tensors
        # d|u_i - u_j| / du_i = (u_i - u_j) / D_ij, summed as u_i * rowsum(V) - V @ u with
        # V = W / D. That form cancels, and cdist's distances below ~1e-3 |u| are mostly
        # rounding noise of the squared distance, so such pairs (if any) are summed directly.
        if ctx.any_close:
            apart = dist > ctx.close
            v = torch.where(apart, weights / dist, 0.0)
        else:
            v = weights / dist.clamp(min=ctx.close)  # the diagonal's zero weight stays zero
        v = v + v.T
        grad = torch.addmm(u * v.sum(1, keepdim=True), v, u, alpha=-1)
        if ctx.any_close:
            pairs = torch.where(apart, 0.0, weights)
            i, j = pairs.nonzero().unbind(1)
            diff = u[i] - u[j]
            length = diff.norm(dim=1, keepdim=True)
            # Coinciding embeddings (an image drawn twice) have no direction: gradient zero.
            pull = torch.where(length > 0, pairs[i, j, None] / length, 0.0) * diff
            grad.index_add_(0, i, pull).index_add_(0, j, -pull)
        scale = grad_output / count
        if norm is not None:
            # u = x / max(|x|, eps): the Jacobian drops the radial part and divides by the norm.
            radial = torch.where(norm >= _NORM_EPS, (u * grad).sum(1, keepdim=True), 0.0)
            grad = (grad - u * radial).mul_(scale / norm.clamp(min=_NORM_EPS))
        else:
            grad = grad * scale
        return grad, None, None, None, None, None, None, None, None


def _at_most(margin32: float) -> tuple[float, bool]:
    """``(bound, inclusive)`` with ``fl32(y) <= margin32`` exactly when ``y < bound``, or ``y == bound``
    and ``inclusive``, for every real ``y`` (round to nearest, ties to even)."""
    m = np.float32(margin32)
    bound = (np.float64(m) + np.float64(np.nextafter(m, np.float32(np.inf)))) / 2
    return float(bound), bool(m.view(np.int32) & 1 == 0)


def _sort_rows(keys: torch.Tensor) -> torch.Tensor:
    if keys.device.type == "cpu":
        # numpy sorts int64 rows with SIMD kernels, several times faster than torch.sort here.
        return torch.from_numpy(np.sort(keys.numpy(), axis=1))
    return torch.sort(keys, dim=1).values


def margin_triplet_weights(
    dist: torch.Tensor, labels: torch.Tensor, margin: float, type_of_triplets: str = "semihard"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Signed per-entry counts of ``TripletMarginMiner``'s active triplets.

    Args:
        dist: (n, n) float32 distances, ``LpDistance()(emb, emb)``.
        labels: (n,) labels.
        margin: the float32 margin.
        type_of_triplets: ``"semihard"``, ``"hard"`` or ``"all"``.

    Returns:
        ``(weights, tuples, active, negative_columns, closest)``: (n, n) float32 with ``+k_ap``
        at each positive pair and ``-k_an`` at each anchor-negative entry (counts of active
        triplets, i.e. those with ``t < margin``), the number of mined triplets, of active ones,
        the (n,) int64 number of mined triplets using each image as negative, and a lower
        bound on the distances of the entries used.
    """
    if type_of_triplets not in ("semihard", "hard", "all"):
        raise ValueError(f"unknown triplet type {type_of_triplets!r}")
    n = dist.shape[0]
    device = dist.device
    same = labels[:, None] == labels[None, :]
    positives = torch.bincount(labels)[labels, None] - 1
    widest = int(positives.max()) if n else 0
    if widest == 0:
        nothing = torch.zeros((), dtype=torch.int64, device=device)
        return torch.zeros_like(dist), nothing, nothing, torch.zeros(n, dtype=torch.int64, device=device), 1.0

    # One sort per row: the anchor's positives (sign bit set: negative keys), its negatives,
    # then the anchor itself, each ascending by distance; the column rides in the low bits.
    columns = torch.arange(n, device=device)
    keys = dist.double().view(torch.int64) | torch.where(same, columns | _SIGN, columns)
    keys.diagonal().copy_(columns | _INF_BITS)
    ordered = _sort_rows(keys)
    order = ordered & _COLUMN_BITS
    # Distances, negated for positives: every positive lies below every search bound >= 0.
    row = (ordered & ~_COLUMN_BITS).view(torch.float64)

    # Per positive pair (a row's first ``positives`` columns; -inf pads the rest, which then
    # count nothing), how many negatives lie at t <= 0, at t <= margin and at t < margin.
    d_ap = row[:, :widest].neg().masked_fill_(columns[:widest] >= positives, float("-inf"))
    at_most, inclusive = _at_most(margin)
    below, below_inclusive = _at_most(float(np.nextafter(np.float32(margin), np.float32(-np.inf))))
    bounds = [d_ap, d_ap + at_most, d_ap + below]
    for i, keep in ((1, inclusive), (2, below_inclusive)):
        if not keep:  # y < bound is y <= the float64 just below bound (d_an is a float32)
            bounds[i] = torch.nextafter(bounds[i], torch.full_like(bounds[i], float("-inf")))
    found = torch.searchsorted(row, torch.cat(bounds, 1), right=True).sub_(positives)
    found = found.clamp_(min=0).minimum(n - 1 - positives)
    non_positive, within, inside = found.split(widest, 1)
    if type_of_triplets == "semihard":  # 0 < t <= margin: the run after the t <= 0 ones
        start = non_positive
        k_ap, mined = (inside - start).clamp_(min=0), (within - start).clamp_(min=0)
    elif type_of_triplets == "hard":  # t <= 0 and t <= margin
        start = torch.zeros_like(non_positive)
        k_ap, mined = non_positive.minimum(inside), non_positive.minimum(within)
    else:  # t <= margin
        start = torch.zeros_like(non_positive)
        k_ap, mined = inside, within

    # How many runs cover each sorted negative: +1 where a run starts, -1 where it ends,
    # summed along the row. Mined runs differ from active ones only where some triplet's
    # margin equals the margin exactly (mined, zero loss); they then get a second half-row.
    runs = [k_ap, mined] if not torch.equal(k_ap, mined) else [k_ap]
    starts = start + positives
    marks = torch.cat([x for i, k in enumerate(runs) for x in (starts + i * n, starts + (k + i * n))], 1)
    signs = torch.ones(n, widest, dtype=dist.dtype, device=device)
    signs = torch.cat([signs, signs.neg()] * len(runs), 1)
    cover = torch.zeros(n, len(runs) * n, dtype=dist.dtype, device=device)
    cover = cover.scatter_add_(1, marks, signs).cumsum_(1)
    negative_columns = torch.bincount(order.view(-1), cover[:, -n:].reshape(-1), minlength=n)
    signed = cover[:, :n].neg()
    signed[:, :widest] += k_ap
    weights = torch.empty_like(dist).scatter_(1, order, signed)
    # The closest pair any triplet can use: each row's first positive or first negative.
    closest = torch.minimum(row[:, :1].abs(), row.gather(1, positives)).min()
    return weights, mined.sum(), k_ap.sum(), negative_columns.to(torch.int64), closest


def mine_batch_hard(
    dist: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The triplets pytorch-metric-learning's ``BatchHardMiner`` returns: for every anchor with
    a positive and a negative, its farthest positive and nearest negative (ties broken by
    ``torch.max``/``torch.min`` on the same masked matrix, as the library does)."""
    same = labels[:, None] == labels[None, :]
    matches = same.clone()
    matches.fill_diagonal_(False)
    positives = dist.masked_fill(~matches, float("-inf")).max(1).indices
    negatives = dist.masked_fill(same, float("inf")).min(1).indices
    (anchors,) = torch.where(matches.any(1) & ~same.all(1))
    return anchors, positives[anchors], negatives[anchors]


def batch_hard_weights(
    dist: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``margin_triplet_weights`` for ``BatchHardMiner``'s triplets (one per anchor)."""
    anchors, positives, negatives = mine_batch_hard(dist, labels)
    n = dist.shape[0]
    # The library's test: relu(fl(d_ap - d_an) + margin) > 0, i.e. fl(d_an - d_ap) < margin.
    active = (dist[anchors, negatives] - dist[anchors, positives]) < margin
    step = active.to(dist.dtype)
    weights = torch.zeros_like(dist)
    weights.index_put_((anchors, positives), step, accumulate=True)
    weights.index_put_((anchors, negatives), -step, accumulate=True)
    tuples = torch.tensor(anchors.numel(), device=dist.device)
    used = torch.cat([dist[anchors, positives], dist[anchors, negatives]])
    closest = used.min() if used.numel() else 1.0
    return weights, tuples, active.sum(), torch.bincount(negatives, minlength=n), closest
