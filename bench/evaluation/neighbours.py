"""The one neighbour search of evaluation: every query's nearest references, in one fixed order.

It serves the k-NN rules (the ``keep`` nearest) and the retrieval view (precision@1,
R-precision and MAP@R over the R = size-of-the-query's-class nearest) for any split alike.

Order: pytorch-metric-learning's ``LpDistance(normalize_embeddings=True)``, the distance its
``AccuracyCalculator`` ranks by (``torch.cdist`` of the L2-normalized embeddings, computed here
the way cdist computes it, so the same float32 values), smallest first; equal distances are
broken by reference position, so results never depend on a sort's whims (``torch.topk``, which
the calculator uses, orders ties arbitrarily).

Cost: one matrix product per block of queries is the floor. MAP@R needs each query's R nearest
among the M references ranked, not a sorted top-R list of every query: a squared distance at
about the R-th smallest is read off a fixed, class-stratified sample of 1 in ``SAMPLE_STRIDE``
references, raised by ``SAFETY_SIGMAS`` standard deviations of the sample's count so that at
least R references fall within it (a query where fewer do is redone with all of them); only the
references within it (R plus a few percent) are sorted, as 32-bit keys holding the distance's
bits and whether the reference shares the query's class (references are grouped by class, so
that is a range of positions). Equal distances across that boundary, where only the position can
order them, send the query through 64-bit keys that hold the position. With M at most
``EXACT_UP_TO`` the threshold is the exact R-th smallest instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: One reference in this many enters the threshold sample.
SAMPLE_STRIDE = 16
#: With at most this many references the threshold is exact (the sample is all of them).
EXACT_UP_TO = 16_384
#: Queries per matrix product.
QUERY_BLOCK = 256
#: How far beyond the sample's expected count the threshold goes, in standard deviations.
SAFETY_SIGMAS = 4.0


@dataclass(frozen=True)
class Neighbours:
    """What the search found for n queries.

    Attributes:
        nearest: (n, keep) int64 reference positions, nearest first.
        precision_at_1, r_precision, map_at_r: (n,) float64 per query, NaN where not scored
            (no labels given, or no reference shares the query's class).
    """

    nearest: torch.Tensor
    precision_at_1: torch.Tensor
    r_precision: torch.Tensor
    map_at_r: torch.Tensor


@dataclass
class _Candidates:
    """The references within a block's thresholds: each query's run of ``flat`` (positions in
    the (b, m) block, row-major) from ``starts[i]`` to ``starts[i + 1]``, and their distances."""

    flat: np.ndarray
    starts: np.ndarray
    distance: np.ndarray


def search(
    query: torch.Tensor,
    reference: torch.Tensor,
    keep: int = 5,
    query_labels: torch.Tensor | None = None,
    reference_labels: torch.Tensor | None = None,
    block: int = QUERY_BLOCK,
) -> Neighbours:
    """The ``keep`` nearest references of every query, and its retrieval metrics when labelled.

    Args:
        query: (n, d) embeddings (normalized here).
        reference: (m, d) embeddings (normalized here), disjoint from the queries.
        keep: neighbours to return per query (clipped to m).
        query_labels: (n,) class indices; with ``reference_labels``, turns retrieval on.
        reference_labels: (m,) class indices.
        block: queries per matrix product (memory: about ``block * m * 5`` bytes).

    Returns:
        ``Neighbours``; retrieval follows ``AccuracyCalculator(k="max_bin_count")`` with the
        reference not containing the queries: R is the number of references of the query's
        class, and a query whose class has none is not scored.
    """
    q = F.normalize(query.detach().float().cpu(), dim=1)
    r = F.normalize(reference.detach().float().cpu(), dim=1)
    n, m = len(q), len(r)
    keep = min(int(keep), m)
    scores = {name: torch.full((n,), float("nan"), dtype=torch.float64) for name in _METRICS}
    nearest = torch.zeros(n, keep, dtype=torch.int64)
    retrieval = query_labels is not None and reference_labels is not None and m > 0
    within = torch.zeros(n, dtype=torch.int64)  # R: references of the query's class
    first = torch.zeros(n, dtype=torch.int64)  # where its class starts among sorted references
    order = torch.arange(m)
    if retrieval:
        ref_labels = reference_labels.detach().long().cpu()
        labels = query_labels.detach().long().cpu()
        order = torch.argsort(ref_labels, stable=True)
        r = r[order]  # grouped by class, in position order within each class
        counts = torch.bincount(ref_labels, minlength=int(labels.max()) + 1 if n else 0)
        known = labels < len(counts)
        within[known] = counts[labels[known]]
        first[known] = (torch.cumsum(counts, 0) - counts)[labels[known]]
    if n == 0 or m == 0 or (keep == 0 and not retrieval):
        return Neighbours(nearest, **scores)
    qa, ra = _augmented(q, query=True), _augmented(r, query=False)
    sample = ra[SAMPLE_STRIDE // 2 :: SAMPLE_STRIDE] if m > EXACT_UP_TO else None
    squared = torch.empty(min(block, n), m)  # reused: fresh pages cost as much as the work
    need = within.clamp(min=keep)
    for size in torch.unique(need).tolist():
        rows = torch.nonzero(need == size).squeeze(1)
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            found = _candidates(qa[part], ra, size, sample, squared[: len(part)])
            if retrieval:
                got = _rank_by_class(found, size, keep, first[part].numpy(), within[part].numpy(), order, m)
                nearest[part] = torch.from_numpy(got[0])
                for name, values in zip(_METRICS, got[1:], strict=True):
                    scores[name][part] = torch.from_numpy(values)
            else:
                nearest[part] = torch.from_numpy(_rank_by_position(found, keep, m))
    return Neighbours(nearest, **scores)


_METRICS = ("precision_at_1", "r_precision", "map_at_r")


def _augmented(x: torch.Tensor, query: bool) -> torch.Tensor:
    """Rows whose products are squared distances, exactly as ``torch.cdist`` builds them:
    ``[-2x, |x|^2, 1] . [y, 1, |y|^2]``."""
    norm = x.pow(2).sum(-1, keepdim=True)
    pad = torch.ones_like(norm)
    return torch.cat([x.mul(-2), norm, pad] if query else [x, pad, norm], -1)


def _distance(squared: torch.Tensor) -> torch.Tensor:
    """cdist's distance from its squared distance (torch's sqrt: numpy's rounds differently)."""
    return squared.clamp(min=0).sqrt_()


def _thresholds(qa: torch.Tensor, ra: torch.Tensor, size: int, sample: torch.Tensor | None) -> np.ndarray:
    """Per query, a squared distance that at least ``size`` references stay within (almost
    surely), raised to the largest one with the same distance."""
    if sample is None:
        squared, rank = qa @ ra.T, size
    else:
        squared = qa @ sample.T
        expected = size * len(sample) / len(ra)
        rank = math.ceil(expected + SAFETY_SIGMAS * math.sqrt(expected)) + 1
    if rank >= squared.shape[1]:
        return np.full(len(qa), np.inf, dtype=np.float32)
    # The rank-th smallest: a partition, a fraction of a sort's cost.
    floor = torch.from_numpy(np.partition(squared.numpy(), rank - 1, axis=1)[:, rank - 1].copy())
    distance = _distance(floor)
    for _ in range(4):  # sqrt maps a few neighbouring floats to one distance
        up = torch.nextafter(floor, torch.tensor(float("inf")))
        floor = torch.where(_distance(up) <= distance, up, floor)
    return floor.numpy()


def _candidates(
    qa: torch.Tensor, ra: torch.Tensor, size: int, sample: torch.Tensor | None, squared: torch.Tensor
) -> _Candidates:
    """The references within each query's threshold (at least ``size`` of them)."""
    b, m = len(qa), len(ra)
    floor = _thresholds(qa, ra, size, sample)
    torch.mm(qa, ra.T, out=squared)
    block = squared.numpy()
    flat = np.flatnonzero(block <= floor[:, None])  # row-major: each query's run in turn
    starts = np.searchsorted(flat, np.arange(b + 1) * m)
    short = np.diff(starts) < size
    if short.any():  # the sample's threshold was too tight for these queries: take all
        floor[short] = np.inf
        flat = np.flatnonzero(block <= floor[:, None])
        starts = np.searchsorted(flat, np.arange(b + 1) * m)
    return _Candidates(flat, starts, _distance(torch.from_numpy(block.ravel()[flat])).numpy())


#: Rows of this many 32-bit keys sort in numpy's vectorized kernel; longer ones are sorted as
#: such chunks, then merged (a timsort of sorted runs), together several times faster.
_CHUNK = 512


def _sort(keys: np.ndarray) -> None:
    """Sort ``keys`` (uint32, a multiple of ``_CHUNK`` long) in place."""
    if len(keys) > _CHUNK:
        keys.reshape(-1, _CHUNK).sort(axis=1)
        keys.sort(kind="stable")
    else:
        keys.sort()


def _nearest_by_key(
    found: _Candidates, limit: np.ndarray | None, keep: int, ids: np.ndarray, m: int
) -> np.ndarray:
    """(b, keep) original positions of each query's ``keep`` nearest among its candidates at
    most ``limit`` (distance bits, per query) away, ties by position: one sort of 64-bit keys
    (query, distance bits, position) for the whole block."""
    b, starts = len(found.starts) - 1, found.starts
    bits = found.distance.view(np.uint32)
    counts = np.diff(starts)
    picked = np.flatnonzero(bits <= np.repeat(limit, counts)) if limit is not None else np.arange(len(bits))
    rows = np.searchsorted(starts, picked, side="right") - 1
    width = max(1, (m - 1).bit_length())
    if width + 31 + max(1, (b - 1).bit_length()) > 63:  # no room: query by query
        keys = (bits.astype(np.int64) << width) | ids[found.flat - np.repeat(np.arange(b) * m, counts)]
        return np.stack([np.sort(keys[starts[i] : starts[i + 1]])[:keep] for i in range(b)]) & (
            (1 << width) - 1
        )
    position = ids[found.flat[picked] - rows * m]
    keys = (rows.astype(np.int64) << (31 + width)) | (bits[picked].astype(np.int64) << width) | position
    keys.sort()
    first = np.searchsorted(keys >> (31 + width), np.arange(b))
    return keys[first[:, None] + np.arange(keep)] & ((1 << width) - 1)


def _rank_by_position(found: _Candidates, keep: int, m: int) -> np.ndarray:
    """(b, keep) positions of each query's ``keep`` nearest."""
    return _nearest_by_key(found, None, keep, np.arange(m), m)


def _rank_by_class(found, size, keep, first, within, order, m):
    """Nearest ``keep`` (original positions) and retrieval metrics of a block of queries whose
    references are grouped by class, the query's class at positions ``first`` to
    ``first + within``."""
    b, flat, starts, order = len(first), found.flat, found.starts, order.numpy()
    bits = found.distance.view(np.uint32)
    # The query's class is one run inside each query's run of candidates (positions are
    # grouped by class and the run is in position order).
    base = np.arange(b, dtype=np.int64) * m + first
    own = np.stack([np.searchsorted(flat, base), np.searchsorted(flat, base + within)], 1)
    # Key: distance bits, then 0 for a reference of the query's class, 1 for another.
    top = np.empty((b, size + 1), dtype=np.uint32)
    for row in range(b):
        lo, hi = starts[row], starts[row + 1]
        run = np.full(_CHUNK * -(-(hi - lo + 1) // _CHUNK), np.iinfo(np.uint32).max, dtype=np.uint32)
        np.left_shift(bits[lo:hi], 1, out=run[: hi - lo])
        run[: own[row, 0] - lo] |= 1
        run[own[row, 1] - lo : hi - lo] |= 1
        _sort(run)
        top[row] = run[: size + 1]
    # Ties at the keep-th distance are ordered by position.
    nearest = (
        _nearest_by_key(found, top[:, keep - 1] >> 1, keep, order, m) if keep else np.empty((b, 0), np.int64)
    )
    scores = np.full((len(_METRICS), b), np.nan)
    scored = within > 0
    if not scored.any():
        return (nearest, *scores)
    width = int(within.max())
    # A reference of the query's class and another one at one distance (float32 distances
    # tie often among thousands of candidates): that group is put in position order; only
    # groups inside the first R, or across its end, matter.
    crossed = ((top[:, 1 : width + 1] ^ top[:, :width]) == 1) & (np.arange(width) < within[:, None])
    last = np.maximum(within, 1) - 1
    straddles = (top[np.arange(b), last] >> 1) == (top[np.arange(b), last + 1] >> 1)
    for row in np.flatnonzero((crossed.any(1) | straddles) & scored):
        lo, hi = starts[row], starts[row + 1]
        top[row] = _order_ties(
            top[row].copy(), int(within[row]), bits[lo:hi], flat[lo:hi] - row * m, own[row] - lo, order
        )
    relevant = ((top[:, :width] & 1) == 0) & (np.arange(width) < within[:, None])  # the first R
    hits = np.cumsum(relevant, axis=1, dtype=np.int32)
    precision = np.zeros(relevant.shape)
    np.divide(hits, np.arange(1, width + 1, dtype=np.float64), out=precision, where=relevant)
    r = np.maximum(within, 1).astype(np.float64)
    for score, values in zip(scores, (relevant[:, 0], hits[:, -1] / r, precision.sum(1) / r), strict=True):
        score[scored] = values[scored]
    return (nearest, *scores)


def _order_ties(top, r, bits, columns, own, order):
    """``top`` (sorted keys of one query) with each group of equal distance that mixes the
    query's class with others, and lies in or across the first ``r``, in position order."""
    distance = top >> 1
    groups = distance[np.flatnonzero((top[1:r] ^ top[: r - 1]) == 1)]
    if len(top) > r and distance[r] == distance[r - 1]:
        groups = np.append(groups, distance[r - 1])
    for value in np.unique(groups):
        members = np.flatnonzero(bits == value)
        other = (members < own[0]) | (members >= own[1])
        at = np.searchsorted(distance, value)
        end = min(at + len(members), len(top))
        top[at:end] = (value << 1) | other[np.argsort(order[columns[members]])][: end - at]
    return top
