"""How many active triplets use each distance entry: pytorch-metric-learning's miners, counted.

``TripletMarginMiner`` lists every (anchor, positive, negative) triplet of the batch whose margin
``t = d_an - d_ap`` passes its test, 10^4 to 10^5 of them for 192 images. The loss only needs,
per distance entry, how many active triplets (``t < margin``) use it: ``+k_ap`` on ``[a, p]``
and ``-k_an`` on ``[a, n]`` (``methods/mined_triplet_loss.py``). One compiled pass (numba)
counts them: for every positive pair it runs over the anchor's row of the distance matrix,
computes the library's float32 ``t = fl(d_an - d_ap)`` for each negative and applies the
library's tests to it (``t <= margin`` and, for ``"hard"``, ``t <= 0``, for ``"semihard"``,
``t > 0``; active when ``t < margin`` too), adding up ``k_ap`` for the pair and, per negative,
the active and the mined triplets that use it. The selection is therefore the library's,
boundary, ties and NaN included (``tests/test_mining.py``), with no triplet listed.

The loop is branch-free over a row (the compiler vectorizes it), and its cost is one float32
comparison per candidate triplet (``n * positives * negatives``: 3 * 10^5 for the default
batch, about 0.1 ms); it is compiled on first use and cached on disk (``methods/compiled.py``).
``BatchHardMiner``'s one triplet per anchor (its farthest positive and
nearest negative, chosen by ``torch.max``/``torch.min`` on the same masked values as the
library's) is listed instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.compiled import compiled

#: Pairs closer than this (times the largest embedding norm) are listed, not left to ``W / D``:
#: cdist's distances that small are mostly rounding noise of the squared distance.
CLOSE = 1e-3
#: The kinds of triplets of ``TripletMarginMiner``, as the compiled loop takes them.
_TRIPLET_KINDS = {"hard": 0, "semihard": 1, "all": 2}


@dataclass(frozen=True)
class TripletCounts:
    """How many active triplets use each distance entry, and what was mined (numpy, on the CPU).

    The signed counts are ``+k`` on ``[a, p]`` and ``-k`` on ``[a, n]`` for ``k`` active
    triplets (``t < margin``) using that entry: dense (``weights``, (n, n)) or as a list of
    entries (``pairs``: rows, columns, counts), or both.

    Attributes:
        weights: (n, n) float32 signed counts, or None.
        pairs: ``(rows, columns, counts)`` of further signed counts, or None.
        weighted_sum: the sum of the signed counts times the distances (NaN if a distance is).
        tuples: triplets mined.
        active: mined triplets with non-zero loss.
        negative_columns: (n,) int64, mined triplets using each image as negative.
        close_in_weights: whether ``weights`` may use a distance below the close threshold (whose
            gradient terms the backward then moves to the list).
    """

    weights: np.ndarray | None
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    weighted_sum: float
    tuples: int
    active: int
    negative_columns: np.ndarray
    close_in_weights: bool = False


def margin_triplet_weights(
    dist: np.ndarray,
    labels: np.ndarray,
    margin: float,
    type_of_triplets: str = "semihard",
    close: float = CLOSE,
) -> TripletCounts:
    """Signed per-entry counts of ``TripletMarginMiner``'s active triplets (dense).

    Args:
        dist: (n, n) float32 distances, ``LpDistance()(emb, emb)``, as a numpy array.
        labels: (n,) non-negative integer labels.
        margin: the float32 margin.
        type_of_triplets: ``"semihard"``, ``"hard"`` or ``"all"``.
        close: positive pairs at most this far apart (with active triplets) are listed in
            ``pairs`` instead of ``weights``.
    """
    if type_of_triplets not in _TRIPLET_KINDS:
        raise ValueError(f"unknown triplet type {type_of_triplets!r}")
    d = np.ascontiguousarray(dist, dtype=np.float32)
    lab = np.ascontiguousarray(labels, dtype=np.int64)
    kind = _TRIPLET_KINDS[type_of_triplets]
    counted = compiled(_count_triplets)(d, lab, np.float32(margin), kind, float(close), np.float32(close))
    weights, negative_columns, tuples, active, close_negative, near_rows, near_columns, positive_pairs = (
        counted
    )
    if positive_pairs == 0:  # no triplet at all, whatever the distances: loss 0
        return TripletCounts(weights, None, 0.0, 0, 0, negative_columns)
    # The loss's sum over every counted entry, taken before close pairs leave the dense weights
    # (a NaN distance anywhere makes it NaN).
    weighted_sum = float(torch.dot(torch.from_numpy(weights).view(-1), torch.from_numpy(d).view(-1)))
    # Close pairs: a positive pair of one image drawn twice (or nearly so) goes to the list;
    # a close negative (rare: two classes' embeddings nearly coincide) makes the backward
    # look through the whole matrix.
    pairs = None
    if len(near_rows):
        # Each row's by distance, then column: the order their gradient terms are summed in.
        order = np.lexsort((near_columns, np.abs(d[near_rows, near_columns]), near_rows))
        rows, columns = near_rows[order], near_columns[order]
        pairs = (rows, columns, weights[rows, columns])
        weights[rows, columns] = 0
    return TripletCounts(
        weights=weights,
        pairs=pairs,
        weighted_sum=weighted_sum,
        tuples=int(tuples),
        active=int(active),
        negative_columns=negative_columns,
        close_in_weights=bool(close_negative),
    )


def _count_triplets(d, labels, margin, kind, close, close32):  # pragma: no cover (compiled)
    """The counts of ``margin_triplet_weights``, for numba: ``kind`` 0 hard, 1 semihard, 2 all.

    Returns ``(weights, negative_columns, tuples, active, close_negative, near_rows,
    near_columns, positive_pairs)``: the signed counts (close pairs still in), mined triplets
    per negative image, the mined and active totals, whether some anchor's nearest negative is
    at most ``close32`` away, the positive pairs with active triplets at most ``close`` apart
    (row-major order) and the number of positive pairs. Counts within a row are summed as int32
    (``np.int32(k + x)``), which the compiler vectorizes.
    """
    n = d.shape[0]
    weights = np.empty((n, n), np.float32)
    negative_columns = np.zeros(n, np.int64)
    active_uses = np.empty(n, np.int32)
    mined_uses = np.empty(n, np.int32)
    negatives = np.empty(n, np.float32)
    same_class = np.empty(n, np.int64)
    same_counts = np.empty(n, np.int32)
    capacity = max(n, 1)
    near_rows = np.empty(capacity, np.int64)
    near_columns = np.empty(capacity, np.int64)
    near = 0
    positive_pairs = 0
    zero, nan = np.float32(0), np.float32(np.nan)
    # hard: t <= 0 and t <= margin; semihard: t > 0 too (any t passes when not semihard).
    upper = min(margin, zero) if kind == 0 else margin
    any_lower = kind != 1
    tuples = 0
    active = 0
    close_negative = False
    for a in range(n):
        own = labels[a]
        # The anchor's row with its own class (itself included) as NaN, which passes no test;
        # the columns of its class listed.
        size = 0
        for j in range(n):
            same = labels[j] == own
            negatives[j] = nan if same else d[a, j]
            same_class[size] = j
            size += same
        for j in range(n):
            close_negative |= negatives[j] <= close32
            active_uses[j] = 0
            mined_uses[j] = 0
        for q in range(size):
            p = same_class[q]
            same_counts[q] = 0
            if p == a:
                continue
            d_ap = d[a, p]
            k_ap = np.int32(0)
            for j in range(n):
                t = negatives[j] - d_ap  # float32, as the library's an_dist - ap_dist
                mined = np.int32((t <= upper) & ((t > zero) | any_lower))
                passing = mined & np.int32(t < margin)
                active_uses[j] += passing
                mined_uses[j] += mined
                k_ap = np.int32(k_ap + passing)
            same_counts[q] = k_ap
            active += k_ap
            if k_ap > 0 and np.float64(d_ap) <= close:
                if near == capacity:  # rare: most batches list a few pairs, if any
                    capacity *= 2
                    grown_rows, grown_columns = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
                    grown_rows[:near], grown_columns[:near] = near_rows[:near], near_columns[:near]
                    near_rows, near_columns = grown_rows, grown_columns
                near_rows[near] = a
                near_columns[near] = p
                near += 1
        positive_pairs += size - 1
        row_tuples = np.int32(0)
        for j in range(n):  # zero on the anchor's class, overwritten next
            weights[a, j] = -active_uses[j]
            negative_columns[j] += mined_uses[j]
            row_tuples = np.int32(row_tuples + mined_uses[j])
        tuples += row_tuples
        for q in range(size):
            weights[a, same_class[q]] = same_counts[q]
    return (
        weights,
        negative_columns,
        tuples,
        active,
        close_negative,
        near_rows[:near],
        near_columns[:near],
        positive_pairs,
    )


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
    anchors, positives, negatives, d_ap, d_an = (x.cpu().numpy() for x in mine_batch_hard(dist, labels))
    # The library's test: relu(fl(d_ap - d_an) + margin) > 0, i.e. fl(d_an - d_ap) < margin.
    active = (d_an - d_ap) < np.float32(margin)
    step = active.astype(d_ap.dtype)
    pairs = (
        np.concatenate([anchors, anchors]),
        np.concatenate([positives, negatives]),
        np.concatenate([step, -step]),
    )
    return TripletCounts(
        weights=None,
        pairs=pairs,
        weighted_sum=float((step * (d_ap - d_an)).sum()),
        tuples=len(anchors),
        active=int(active.sum()),
        negative_columns=np.bincount(negatives, minlength=len(labels)).astype(np.int64),
    )
