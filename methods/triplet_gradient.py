"""The mined triplet loss's gradient from its per-entry counts (``methods/triplet_counts.py``).

With ``W`` the signed counts over the reduction's count, the loss is ``sum W * D`` and
``dL/du_i = sum_j (V_ij + V_ji) (u_i - u_j)`` with ``V = W / D``: ``u_i * rowsum(V) - (V @ u)_i``,
one matrix product. That form cancels where a distance is small, and cdist's distances below
``close`` are mostly rounding noise of the squared distance, so those entries (and batch-hard's
triplets) are listed and summed term by term instead: ``w (u_i - u_j) / |u_i - u_j|``, zero for
coinciding embeddings (an image drawn twice has no direction). Last, the normalization's
Jacobian drops the radial part and divides by the norm.

The element-wise steps run as four compiled loops (``methods/compiled.py``) that round exactly
as the numpy expressions they replaced (``(w / max(D, close)) + transposed``, ``u * s - P``,
index-add of the listed terms in order, the Jacobian); the row sums stay numpy's and the
product torch's (whose thread setting holds), so the gradient is the same bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from methods.compiled import compiled
from methods.triplet_counts import TripletCounts

#: ``F.normalize``'s default eps, as pytorch-metric-learning's ``LpDistance`` normalizes.
NORM_EPS = 1e-12


def counted_gradient(
    u: np.ndarray,
    norm: np.ndarray | None,
    dist: np.ndarray,
    counted: TripletCounts,
    close: float,
    scale: float,
) -> np.ndarray:
    """``scale * d(sum W * D) / dx`` for the embeddings ``x`` (float32, (n, d)).

    Args:
        u: (n, d) the (normalized) embeddings the distances were measured on.
        norm: (n, 1) the norms ``u`` was normalized by, or None when not normalized.
        dist: (n, n) their distances.
        counted: the signed counts ``W`` (dense, listed or both).
        close: distances at most this are listed when ``counted.close_in_weights``.
        scale: the upstream gradient over the reduction's count.
    """
    groups = [counted.pairs] if counted.pairs is not None else []
    dense = counted.weights is not None
    if dense:
        v, rows, columns, weights = compiled(_symmetric_weights)(
            counted.weights, dist, np.float32(close), counted.close_in_weights
        )
        if len(rows):
            groups.append((rows, columns, weights))
        product = torch.from_numpy(v).mm(torch.from_numpy(u)).numpy()
        row_sums = v.sum(1, keepdims=True)
    else:
        product = row_sums = np.zeros((0, 0), np.float32)
    if groups:
        rows, columns, weights = (
            groups[0] if len(groups) == 1 else (np.concatenate([g[k] for g in groups]) for k in range(3))
        )
        ends = np.cumsum([len(g[0]) for g in groups])
        diff, squares = compiled(_differences)(u, rows, columns)
        squared_lengths = squares.sum(1, keepdims=True)
    else:
        rows = columns = ends = np.zeros(0, np.int64)
        weights = np.zeros(0, np.float32)
        diff = squared_lengths = np.zeros((0, 0), np.float32)
    grad, radial = compiled(_gradient)(
        u, dense, row_sums, product, rows, columns, weights, ends, diff, squared_lengths, norm is not None
    )
    if norm is None:
        return compiled(_scaled)(grad, np.float32(scale))
    return compiled(_normalized)(
        grad, u, norm, radial.sum(1, keepdims=True), np.float32(scale), np.float32(NORM_EPS)
    )


def _symmetric_weights(weights, dist, close, close_in_weights):  # pragma: no cover (compiled)
    """``V + V.T`` with ``V = W / max(D, close)``; with ``close_in_weights``, ``V = W / D`` where
    ``D > close`` and 0 elsewhere, the other non-zero counts listed (row-major)."""
    n = weights.shape[0]
    v = np.empty((n, n), np.float32)
    zero = np.float32(0)
    for i in range(n):
        for j in range(n):
            d = dist[i, j]
            if close_in_weights:
                v[i, j] = weights[i, j] / d if d > close else zero
            else:
                v[i, j] = weights[i, j] / (close if d < close else d)  # np.maximum: NaN stays
    listed = 0
    if close_in_weights:
        for i in range(n):
            for j in range(n):
                if (not dist[i, j] > close) and weights[i, j] != 0:
                    listed += 1
    rows = np.empty(listed, np.int64)
    columns = np.empty(listed, np.int64)
    counts = np.empty(listed, np.float32)
    k = 0
    if close_in_weights:
        for i in range(n):
            for j in range(n):
                if (not dist[i, j] > close) and weights[i, j] != 0:
                    rows[k], columns[k], counts[k] = i, j, weights[i, j]
                    k += 1
    for i in range(n):
        for j in range(i + 1, n):
            s = v[i, j] + v[j, i]
            v[i, j] = s
            v[j, i] = s
        v[i, i] = v[i, i] + v[i, i]
    return v, rows, columns, counts


def _differences(u, rows, columns):  # pragma: no cover (compiled)
    """``u[rows] - u[columns]`` and its squares."""
    k, d = rows.shape[0], u.shape[1]
    diff = np.empty((k, d), np.float32)
    squares = np.empty((k, d), np.float32)
    for r in range(k):
        for c in range(d):
            x = u[rows[r], c] - u[columns[r], c]
            diff[r, c] = x
            squares[r, c] = x * x
    return diff, squares


def _gradient(
    u, dense, row_sums, product, rows, columns, weights, ends, diff, squared_lengths, radial
):  # pragma: no cover (compiled)
    """``u * row_sums - product`` (zero when not ``dense``), plus each listed term
    ``weights / length * diff`` at its row and minus it at its column, group by group (as
    ``index_add_``), 0 where the length is; and ``u * grad`` for the radial part when
    ``radial``."""
    n, d = u.shape
    grad = np.zeros((n, d), np.float32)
    if dense:
        for i in range(n):
            for c in range(d):
                grad[i, c] = u[i, c] * row_sums[i, 0] - product[i, c]
    start = 0
    zero = np.float32(0)
    for end in ends:
        for sign in range(2):
            for r in range(start, end):
                length = np.sqrt(squared_lengths[r, 0])  # correctly rounded, as numpy's
                pull = weights[r] / length if length > 0 else zero
                at = rows[r] if sign == 0 else columns[r]
                for c in range(d):
                    term = pull * diff[r, c]
                    grad[at, c] = grad[at, c] + (term if sign == 0 else -term)
        start = end
    products = np.empty((n, d) if radial else (0, 0), np.float32)
    if radial:
        for i in range(n):
            for c in range(d):
                products[i, c] = u[i, c] * grad[i, c]
    return grad, products


def _normalized(grad, u, norm, radial, scale, eps):  # pragma: no cover (compiled)
    """Through ``u = x / max(|x|, eps)``: ``(grad - u * radial) * (scale / max(norm, eps))``,
    the radial part 0 where the norm is below eps."""
    n, d = u.shape
    out = np.empty((n, d), np.float32)
    zero = np.float32(0)
    for i in range(n):
        r = radial[i, 0] if norm[i, 0] >= eps else zero
        m = norm[i, 0]
        factor = scale / (eps if m < eps else m)
        for c in range(d):
            out[i, c] = (grad[i, c] - u[i, c] * r) * factor
    return out


def _scaled(grad, scale):  # pragma: no cover (compiled)
    """``grad * scale``."""
    return grad * scale
