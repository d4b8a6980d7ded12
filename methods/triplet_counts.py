"""How many active triplets use each distance entry: pytorch-metric-learning's miners, counted.

``TripletMarginMiner`` lists every (anchor, positive, negative) triplet of the batch whose margin
``t = d_an - d_ap`` passes its test, 10^4 to 10^5 of them for 192 images. The loss only needs,
per distance entry, how many active triplets (``t < margin``) use it: ``+k_ap`` on ``[a, p]``
and ``-k_an`` on ``[a, n]`` (``methods/mined_triplet_loss.py``). Those counts come from one
sort:

- each row of the distance matrix is sorted once, its anchor's positives first, then its
  negatives (numpy's vectorized sort of integer keys that carry the column in their low bits);
- for each positive pair, the negatives whose margin passes the test form one contiguous run
  of that sorted row, found by ``searchsorted`` at ``d_ap`` and ``d_ap + margin``;
- ``k_ap`` is the length of the run, and ``k_an`` (how many runs cover each negative) is a
  prefix sum of -1/+1 marks at the runs' ends.

The tests are exactly the library's: it compares the float32 difference ``fl(d_an - d_ap)``
with the float32 margin, and ``fl(y) <= m`` holds exactly when ``y`` lies below the midpoint
between ``m`` and the next float32 (or on it, when ``m``'s last bit is even), so each search
bound is that midpoint added to ``d_ap`` in float64, where the sum is exact. The selection is
therefore the library's, boundary and ties included (``tests/test_mining.py``).
``BatchHardMiner``'s one triplet per anchor (its farthest positive and nearest negative, chosen
by ``torch.max``/``torch.min`` on the same masked values as the library's) is listed instead.
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
#: Pairs closer than this (times the largest embedding norm) are listed, not left to ``W / D``:
#: cdist's distances that small are mostly rounding noise of the squared distance.
CLOSE = 1e-3


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
    close: float = CLOSE,
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
