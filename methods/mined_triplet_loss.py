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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

#: Sort keys: a float64 distance's bits, the column in the low 29 (a float32 widened to float64
#: has 29 zero low bits).
_LOW_BITS = (1 << 29) - 1
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
        margin32 = float(np.float32(margin))
        close = _CLOSE * (1.0 if normalize else float(u.norm(dim=1).max()))
        if miner == "batch-hard":
            counted = batch_hard_weights(dist, labels, margin32)
        else:
            counted = margin_triplet_weights(dist, labels, margin32, miner, close)
        count = (counted.active if reduction == "mean-nonzero" else counted.tuples).clamp(min=1)
        # Sum over active triplets of d_ap - d_an + margin; any non-finite distance makes it NaN.
        value = (counted.weighted_sum + margin32 * counted.active) / count
    loss = _CountedTripletLoss.apply(x, u, norm, dist, counted, count, value.to(x.dtype), close)
    return MinedTripletLoss(
        loss=loss, tuples=counted.tuples, active=counted.active, negative_columns=counted.negative_columns
    )


@dataclass(frozen=True)
class TripletCounts:
    """How many active triplets use each distance entry, and what was mined.

    The signed counts are ``+k`` on ``[a, p]`` and ``-k`` on ``[a, n]`` for ``k`` active
    triplets (``t < margin``) using that entry: dense (``weights``, (n, n)) or as a list of
    entries (``pairs``: rows, columns, counts), or both.

    Attributes:
        weights: (n, n) float32 signed counts, or None.
        pairs: ``(rows, columns, counts)`` of further signed counts, or None.
        weighted_sum: () the sum of the signed counts times the distances.
        tuples: () int64, triplets mined.
        active: () int64, mined triplets with non-zero loss.
        negative_columns: (n,) int64, mined triplets using each image as negative.
        close_in_weights: whether ``weights`` may use a distance below the close threshold (whose
            gradient terms the backward then moves to the list).
    """

    weights: torch.Tensor | None
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
    weighted_sum: torch.Tensor
    tuples: torch.Tensor
    active: torch.Tensor
    negative_columns: torch.Tensor
    close_in_weights: bool = False


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


class _CountedTripletLoss(torch.autograd.Function):
    """The scalar ``value``; its gradient with respect to ``x`` is ``d(sum W * D / count) / dx``."""

    @staticmethod
    def forward(ctx, x, u, norm, dist, counted, count, value, close):
        ctx.save_for_backward(u, norm, dist, count)
        ctx.counted, ctx.close = counted, close
        return value

    @staticmethod
    def backward(ctx, grad_output):
        u, norm, dist, count = ctx.saved_tensors
        counted, close = ctx.counted, ctx.close
        pairs = [counted.pairs] if counted.pairs is not None else []
        if counted.weights is None:
            grad = torch.zeros_like(u)
        else:
            # d|u_i - u_j| / du_i = (u_i - u_j) / D_ij, summed as u_i * rowsum(V) - V @ u with
            # V = W / D. That form cancels, and cdist's distances below ~1e-3 |u| are mostly
            # rounding noise of the squared distance: such pairs (if any) join the list.
            weights = counted.weights
            if counted.close_in_weights:
                apart = dist > close
                v = torch.where(apart, weights / dist, 0.0)
                listed = torch.where(apart, 0.0, weights)
                i, j = listed.nonzero().unbind(1)
                pairs.append((i, j, listed[i, j]))
            else:
                v = weights / dist.clamp(min=close)  # the diagonal's zero weight stays zero
            v = v + v.T
            grad = torch.addmm(u * v.sum(1, keepdim=True), v, u, alpha=-1)
        for i, j, w in pairs:  # term by term: exact for any distance
            diff = u[i] - u[j]
            length = diff.norm(dim=1, keepdim=True)
            # Coinciding embeddings (an image drawn twice) have no direction: gradient zero.
            pull = torch.where(length > 0, w[:, None] / length, 0.0) * diff
            grad.index_add_(0, i, pull).index_add_(0, j, -pull)
        scale = grad_output / count
        if norm is not None:
            # u = x / max(|x|, eps): the Jacobian drops the radial part and divides by the norm.
            radial = torch.where(norm >= _NORM_EPS, (u * grad).sum(1, keepdim=True), 0.0)
            grad = (grad - u * radial).mul_(scale / norm.clamp(min=_NORM_EPS))
        else:
            grad = grad * scale
        return grad, None, None, None, None, None, None, None


def _at_most(margin32: float) -> tuple[float, bool]:
    """``(bound, inclusive)`` with ``fl32(y) <= margin32`` exactly when ``y < bound``, or ``y == bound``
    and ``inclusive``, for every real ``y`` (round to nearest, ties to even)."""
    m = np.float32(margin32)
    bound = (np.float64(m) + np.float64(np.nextafter(m, np.float32(np.inf)))) / 2
    return float(bound), bool(m.view(np.int32) & 1 == 0)


def _sort_rows(keys: torch.Tensor) -> torch.Tensor:
    """Each row sorted (in place on the CPU, by numpy, whose vectorized kernel sorts rows of
    up to 256 int64 several times faster than ``torch.sort``)."""
    if keys.device.type == "cpu":
        keys.numpy().sort(axis=1)
        return keys
    return torch.sort(keys, dim=1).values


def margin_triplet_weights(
    dist: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    type_of_triplets: str = "semihard",
    close: float = _CLOSE,
) -> TripletCounts:
    """Signed per-entry counts of ``TripletMarginMiner``'s active triplets (dense).

    Args:
        dist: (n, n) float32 distances, ``LpDistance()(emb, emb)``.
        labels: (n,) labels.
        margin: the float32 margin.
        type_of_triplets: ``"semihard"``, ``"hard"`` or ``"all"``.

    One sort per row puts the anchor's positives first, then its negatives, ascending by
    distance; for each positive pair, the negatives that pass the miner's test are one run of
    that row, found by ``searchsorted`` at ``d_ap``, ``d_ap + margin`` and just below it. The
    run's length is the pair's ``k_ap``; a prefix sum of +1/-1 marks at the runs' ends counts
    the runs (active triplets) that use each negative.
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
        zero = torch.zeros((), dtype=dist.dtype, device=device)
        columns = torch.zeros(n, dtype=torch.int64, device=device)
        return TripletCounts(torch.zeros_like(dist), None, zero, nothing, nothing, columns)
    columns, tags, diagonal = _constants(n, device)
    negatives = (n - 1) - positives

    # One sort per row: the anchor's positives (sign bit set: negative keys), its negatives,
    # then the anchor itself, each ascending by distance; the column rides in the low bits.
    keys = dist.double().view(torch.int64)
    keys.add_(same, alpha=_SIGN).bitwise_or_(columns)  # adding -2^63 to a key >= 0 sets its sign
    keys.diagonal().copy_(diagonal)
    ordered = _sort_rows(keys)
    order = ordered & _LOW_BITS
    # Distances, negated for positives: every positive lies below every search bound >= 0.
    row = ordered.bitwise_and_(~_LOW_BITS).view(torch.float64)

    # Per positive pair (a row's first ``positives`` columns; -inf pads the rest, which then
    # count nothing): how many negatives lie at t <= 0 (``z``), at t < margin (``lt``) and at
    # t <= margin (``le``), as far as the kind of triplets needs.
    d_ap = row[:, :widest].neg().masked_fill_(columns[:widest] >= positives, float("-inf"))

    def count(bounds: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        found = torch.searchsorted(row, torch.cat(bounds, 1), right=True).sub_(positives)
        return found.clamp_(min=0).minimum(negatives).split(widest, 1)

    names = {
        "semihard": ("z", "lt", "le"),
        "hard": ("z",) if margin > 0 else ("z", "lt"),
        "all": ("lt", "le"),
    }
    below = float(np.nextafter(np.float32(margin), np.float32(-np.inf)))
    bounds = {"z": lambda: d_ap, "lt": lambda: _bound(d_ap, below), "le": lambda: _bound(d_ap, margin)}
    wanted = names[type_of_triplets]
    found = dict(zip(wanted, count([bounds[name]() for name in wanted]), strict=True))
    z, lt, le = found.get("z"), found.get("lt"), found.get("le")
    if type_of_triplets == "hard":  # t <= 0 and t <= margin (>= 0): mined by z
        start = torch.zeros_like(z)
        k_ap, mined = (z if lt is None else z.minimum(lt)), z
    elif type_of_triplets == "semihard":  # 0 < t <= margin: the run after the t <= 0 ones
        start = z
        k_ap, mined = (lt - z).clamp_(min=0), (le - z).clamp_(min=0)
    else:  # t <= margin
        start = torch.zeros_like(lt)
        k_ap, mined = lt, le

    # How many runs cover each sorted negative: -1 where a run starts, +1 where it ends,
    # summed along the row (minus the count). Mined runs differ from active ones only where
    # some triplet's margin equals the margin exactly (mined, zero loss); they then get a
    # second half-row.
    runs = [k_ap, mined] if not torch.equal(k_ap, mined) else [k_ap]
    starts = start + positives
    marks = torch.cat([x for i, k in enumerate(runs) for x in (starts + i * n, starts + (k + i * n))], 1)
    cover = torch.zeros(n, len(runs) * n, dtype=dist.dtype, device=device)
    cover = cover.scatter_add_(1, marks, _signs(n, widest, len(runs), dist.dtype, device)).cumsum_(1)
    signed = cover[:, :n]
    signed[:, :widest] += k_ap
    weights = torch.empty_like(dist).scatter_(1, order, signed)
    if len(runs) > 1:
        negative_columns = torch.bincount(order.view(-1), cover[:, n:].reshape(-1).neg(), minlength=n)
    else:
        negative_columns = weights.clamp(max=0).sum(0).neg()
    counts = TripletCounts(
        weights=weights,
        pairs=None,
        weighted_sum=torch.dot(weights.view(-1), dist.view(-1)),
        tuples=mined.sum(),
        active=k_ap.sum(),
        negative_columns=negative_columns.to(torch.int64),
    )
    # Close pairs: a positive pair of one image drawn twice (or nearly so) goes to the list;
    # a close negative (rare: two classes' embeddings nearly coincide) makes the backward
    # look through the whole matrix.
    near = (d_ap <= close) & (k_ap > 0)
    if bool(near.any()):
        rows, slots = near.nonzero().unbind(1)
        columns_near = order[rows, slots]
        weights[rows, columns_near] = 0
        pairs = (rows, columns_near, k_ap[rows, slots].to(dist.dtype))
        counts = dataclasses.replace(counts, pairs=pairs)
    if bool((row.gather(1, positives) <= close).any()):
        counts = dataclasses.replace(counts, close_in_weights=True)
    return counts


def _bound(d_ap: torch.Tensor, margin32: float) -> torch.Tensor:
    """Per pair, the float64 ``b`` with ``fl32(d_an - d_ap) <= margin32`` exactly when
    ``d_an <= b`` (``d_an`` a float32): ``d_ap`` plus the midpoint to the next float32, or the
    float64 just below that sum when the midpoint itself rounds up."""
    at_most, inclusive = _at_most(margin32)
    bound = d_ap + at_most  # exact: few significant bits on both sides
    return bound if inclusive else torch.nextafter(bound, torch.full_like(bound, float("-inf")))


_CACHE: dict = {}


def _constants(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Columns, columns with the sign bit (positives' tags), and the diagonal's keys."""
    key = ("columns", n, device)
    if key not in _CACHE:
        columns = torch.arange(n, device=device)
        _CACHE[key] = (columns, columns | _SIGN, columns | _INF_BITS)
    return _CACHE[key]


def _signs(n: int, widest: int, runs: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """-1 then +1 for every pair, once per kind of run."""
    key = ("signs", n, widest, runs, dtype, device)
    if key not in _CACHE:
        ones = torch.ones(n, widest, dtype=dtype, device=device)
        _CACHE[key] = torch.cat([ones.neg(), ones] * runs, 1)
    return _CACHE[key]


def mine_batch_hard(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The triplets pytorch-metric-learning's ``BatchHardMiner`` returns, and their distances:
    for every anchor with a positive and a negative, its farthest positive and nearest
    negative (ties broken by ``torch.max``/``torch.min`` on the same masked values as the
    library's).

    Returns:
        ``(anchors, positives, negatives, d_ap, d_an)``.
    """
    same = labels[:, None] == labels[None, :]
    farthest = torch.where(same, dist, float("-inf"))
    farthest.diagonal().fill_(float("-inf"))
    d_ap, positives = farthest.max(1)
    d_an, negatives = torch.where(same, float("inf"), dist).min(1)
    counts = torch.bincount(labels)[labels]
    (anchors,) = torch.where((counts > 1) & (counts < len(labels)))
    return anchors, positives[anchors], negatives[anchors], d_ap[anchors], d_an[anchors]


def batch_hard_weights(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> TripletCounts:
    """``margin_triplet_weights`` for ``BatchHardMiner``'s triplets: one per anchor, listed."""
    anchors, positives, negatives, d_ap, d_an = mine_batch_hard(dist, labels)
    # The library's test: relu(fl(d_ap - d_an) + margin) > 0, i.e. fl(d_an - d_ap) < margin.
    active = (d_an - d_ap) < margin
    step = active.to(dist.dtype)
    pairs = (torch.cat([anchors, anchors]), torch.cat([positives, negatives]), torch.cat([step, -step]))
    return TripletCounts(
        weights=None,
        pairs=pairs,
        weighted_sum=(step * (d_ap - d_an)).sum(),
        tuples=torch.tensor(anchors.numel(), device=dist.device),
        active=active.sum(),
        negative_columns=torch.bincount(negatives, minlength=len(labels)),
    )
