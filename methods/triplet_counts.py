"""How many active triplets use each distance entry: pytorch-metric-learning's miners, counted.

``TripletMarginMiner`` lists every (anchor, positive, negative) triplet of the batch whose margin
``t = d_an - d_ap`` passes its test, 10^4 to 10^5 of them for 192 images. The loss only needs,
per distance entry, how many active triplets (``t < margin``) use it: ``+k_ap`` on ``[a, p]``
and ``-k_an`` on ``[a, n]`` (``methods/mined_triplet_loss.py``). Those counts come from one
sort:

- each row of the distance matrix is sorted once, its anchor's positives first, then its
  negatives (numpy's vectorized sort of integer keys that carry the row, the distance and
  the column, so that the sorted rows form one sorted array);
- for each positive pair, the negatives whose margin passes the test form one contiguous run
  of that sorted row, found by one ``searchsorted`` over the whole array at ``d_ap`` and
  ``d_ap + margin``;
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

from dataclasses import dataclass

import numpy as np
import torch

#: Pairs closer than this (times the largest embedding norm) are listed, not left to ``W / D``:
#: cdist's distances that small are mostly rounding noise of the squared distance.
CLOSE = 1e-3
#: A float32 distance's bits: non-negative floats (and NaN, with the sign bit dropped) order as
#: their int32 bits.
_FLOAT_BITS = 31
#: Bands of a row's sort keys: the anchor's positives, its negatives, then the anchor itself.
_POSITIVE, _NEGATIVE, _ANCHOR = 0, 1, 2
#: Rows of up to 2^15 images: row, band, distance and column fit the 63 bits of a key.
_MAX_ROWS = 1 << 15


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


def _at_most(margin32: float) -> tuple[float, bool]:
    """``(bound, inclusive)`` with ``fl32(y) <= margin32`` exactly when ``y < bound``, or ``y == bound``
    and ``inclusive``, for every real ``y`` (round to nearest, ties to even)."""
    m = np.float32(margin32)
    bound = (np.float64(m) + np.float64(np.nextafter(m, np.float32(np.inf)))) / 2
    return float(bound), bool(m.view(np.int32) & 1 == 0)


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

    The counting runs in numpy (a few dozen operations on arrays of a few thousand entries,
    where torch's per-operation dispatch would cost more than the work). Every row's integer
    sort keys hold, from the top bits down, the row, the band (the anchor's positives, its
    negatives, the anchor), the distance's float32 bits and the column, so the sorted rows form
    one sorted array and a single ``searchsorted`` finds every positive pair's run of
    negatives: those at ``t <= 0`` (``z``), at ``t < margin`` (``lt``) and at ``t <= margin``
    (``le``), as far as the kind of triplets needs. The run's length is the pair's ``k_ap``; a prefix sum of +1/-1 marks
    at the runs' ends counts the runs (active triplets) that use each negative.
    """
    if type_of_triplets not in ("semihard", "hard", "all"):
        raise ValueError(f"unknown triplet type {type_of_triplets!r}")
    d, lab = dist, labels
    n = d.shape[0]
    if n > _MAX_ROWS:
        raise ValueError(f"triplet counting takes batches of at most {_MAX_ROWS} images, got {n}")
    positives = np.bincount(lab)[lab] - 1 if n else np.zeros(0, np.int64)
    if n == 0 or int(positives.max()) == 0:
        return TripletCounts(np.zeros_like(d), None, 0.0, 0, 0, np.zeros(n, np.int64))
    col_bits, band_shift, positive_keys, negative_keys, scatter = _layout(n)
    same = lab[:, None] == lab[None, :]
    keys = (d.view(np.int32) & 0x7FFFFFFF).astype(np.int64)
    np.left_shift(keys, col_bits, out=keys)
    keys |= np.where(same, positive_keys, negative_keys)
    keys.sort(axis=1)
    flat = keys.reshape(-1)
    order = flat & ((1 << col_bits) - 1)

    # The positive pairs: slot s < positives[r] of row r (its positives come first).
    rows = np.arange(n)
    pair_rows = np.repeat(rows, positives)
    first = np.repeat(rows * n - (np.cumsum(positives) - positives), positives) + np.arange(len(pair_rows))
    pair_keys = flat[first]  # ``first``: each pair's own place in ``flat``
    d_ap = d[pair_rows, pair_keys & ((1 << col_bits) - 1)].astype(np.float64)
    negatives_start = pair_rows * n + positives[pair_rows]
    # The query key of a bound: the pair's row, the negatives' band, the largest float32 at most
    # the bound, and every column: searchsorted (right) counts the negatives at or below it.
    top = (_NEGATIVE << band_shift) | ((1 << col_bits) - 1)

    def query(bound: np.ndarray) -> np.ndarray:
        b32 = bound.astype(np.float32)
        b32 = np.where(b32 > bound, np.nextafter(b32, np.float32(-np.inf)), b32)
        bits = (b32.view(np.int32) & 0x7FFFFFFF).astype(np.int64) << col_bits
        row = pair_keys & ~((1 << band_shift) - 1)
        # A negative bound (margin 0 and d_ap = 0: t < 0 asks for d_an < 0) admits no negative;
        # its sign bit, dropped above, would admit those at distance 0. The key just below the
        # negatives' band counts none.
        return np.where(bound < 0, (row | (_NEGATIVE << band_shift)) - 1, bits | row | top)

    def count(*queries: np.ndarray) -> list[np.ndarray]:
        found = np.searchsorted(flat, np.concatenate(queries), side="right")
        return [x - negatives_start for x in np.split(found, len(queries))]

    def at_most_margin(lt: np.ndarray) -> np.ndarray:
        """``le`` from ``lt``: they differ only where a margin equals the margin exactly."""
        le_query = query(_bound(d_ap, margin))
        tied = flat[negatives_start + lt] <= le_query  # the next negative (or the anchor's key)
        if not tied.any():
            return lt
        le = lt.copy()
        le[tied] = np.searchsorted(flat, le_query[tied], side="right") - negatives_start[tied]
        return le

    z_query = pair_keys | top  # t <= 0: d_an <= d_ap, the pair's own distance bits
    below = float(np.nextafter(np.float32(margin), np.float32(-np.inf)))
    if type_of_triplets == "hard":  # t <= 0 and t <= margin (>= 0): mined by z
        if margin > 0:
            (z,) = count(z_query)
            k_ap = z
        else:
            z, lt = count(z_query, query(_bound(d_ap, below)))
            k_ap = np.minimum(z, lt)
        start, mined = np.zeros_like(z), z
    elif type_of_triplets == "semihard":  # 0 < t <= margin: the run after the t <= 0 ones
        z, lt = count(z_query, query(_bound(d_ap, below)))
        start = z
        k_ap, mined = np.maximum(lt - z, 0), np.maximum(at_most_margin(lt) - z, 0)
    else:  # t <= margin
        (lt,) = count(query(_bound(d_ap, below)))
        start = np.zeros_like(lt)
        k_ap, mined = lt, at_most_margin(lt)

    # How many runs cover each sorted negative: -1 where a run starts, +1 where it ends,
    # summed along the sorted array (every run ends inside its own row). Mined runs differ
    # from active ones only where some triplet's margin equals the margin exactly (mined,
    # zero loss).
    def cover(k: np.ndarray) -> np.ndarray:
        begin = negatives_start + start
        marks = np.bincount(begin, minlength=n * n + 1) - np.bincount(begin + k, minlength=n * n + 1)
        return -np.cumsum(marks[:-1])

    signed = cover(k_ap).astype(np.float32)
    signed[first] += k_ap
    weights = np.empty(n * n, np.float32)
    weights[scatter + order] = signed
    weights = weights.reshape(n, n)
    if np.array_equal(k_ap, mined):
        negative_columns = -np.minimum(weights, 0).sum(0)
    else:
        negative_columns = np.bincount(order, -cover(mined), minlength=n)

    # The loss's sum over every counted entry, taken before close pairs leave the dense weights
    # (a NaN distance anywhere makes it NaN).
    weighted_sum = float(torch.dot(torch.from_numpy(weights).view(-1), torch.from_numpy(d).view(-1)))
    # Close pairs: a positive pair of one image drawn twice (or nearly so) goes to the list;
    # a close negative (rare: two classes' embeddings nearly coincide) makes the backward
    # look through the whole matrix.
    near = (d_ap <= close) & (k_ap > 0)
    pairs = None
    if near.any():
        near_rows, near_columns = pair_rows[near], order[first[near]]
        weights[near_rows, near_columns] = 0
        pairs = (near_rows, near_columns, k_ap[near].astype(np.float32))
    has_negatives = positives < n - 1
    nearest_negative = d[rows, order[rows * n + positives]][has_negatives]
    return TripletCounts(
        weights=weights,
        pairs=pairs,
        weighted_sum=weighted_sum,
        tuples=int(mined.sum()),
        active=int(k_ap.sum()),
        negative_columns=negative_columns.astype(np.int64),
        close_in_weights=bool((nearest_negative <= close).any()),
    )


_LAYOUTS: dict[int, tuple] = {}


def _layout(n: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """For ``n`` images: the column's bits, the band's shift, each entry's key bits (row, band
    and column) were it a positive or a negative (the diagonal: the anchor's band), and each
    sorted entry's row offset in the flattened matrix."""
    if n not in _LAYOUTS:
        col_bits = max(1, (n - 1).bit_length())
        band_shift = _FLOAT_BITS + col_bits
        rows = np.arange(n, dtype=np.int64)
        rowcol = (rows << (band_shift + 2))[:, None] | rows[None, :]
        positive, negative = rowcol | (_POSITIVE << band_shift), rowcol | (_NEGATIVE << band_shift)
        for keys in (positive, negative):
            np.fill_diagonal(keys, np.diagonal(rowcol) | (_ANCHOR << band_shift))
        _LAYOUTS[n] = (col_bits, band_shift, positive, negative, (rows * n).repeat(n))
    return _LAYOUTS[n]


def _bound(d_ap: np.ndarray, margin32: float) -> np.ndarray:
    """Per pair, the float64 ``b`` with ``fl32(d_an - d_ap) <= margin32`` exactly when
    ``d_an <= b`` (``d_an`` a float32): ``d_ap`` plus the midpoint to the next float32, or the
    float64 just below that sum when the midpoint itself rounds up."""
    at_most, inclusive = _at_most(margin32)
    bound = d_ap + at_most  # exact: few significant bits on both sides
    return bound if inclusive else np.nextafter(bound, -np.inf)


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
