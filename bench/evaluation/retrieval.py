"""The retrieval view of an embedding: test queries against the training split as reference.

Computed by pytorch-metric-learning's ``AccuracyCalculator`` with
``knn_func=CustomKNN(LpDistance(normalize_embeddings=True))`` so faiss stays optional, and
``k="max_bin_count"`` because MAP@R needs the R = (size of the query's class in the reference)
nearest neighbours of every query.

Cost and how it is bounded: with 10,000 queries against 60,000 references of 10 balanced
classes, R = 6,000, so the neighbour table alone is 10,000 x 6,000 indices and the calculator's
intermediate tensors (float64 precisions, int64 ranks) reach about 5 GB when run in one go.
The queries are therefore fed in chunks (``query_chunk``); every per-query value depends only
on that query and the full reference set, so chunking changes nothing in the result. One
calculator run with ``return_per_class=True`` per chunk gives per-class sums and counts, from
which both the per-query averages (``precision_at_1`` ...) and the per-class averages
(``..._per_class``, what ``avg_of_avgs=True`` reports) follow exactly, so the expensive
neighbour search runs once, not twice. The search itself is CustomKNN's (same distance, same
``topk``) but made here per chunk and handed to the calculator through ``PrecomputedKNN``, so
``evaluate`` reuses its first 5 columns for the k-NN rules instead of searching again (see
``tests/test_metrics.py`` for the check that the numbers equal the calculator's own).
"""

from __future__ import annotations

import logging

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from bench.evaluation.metrics import finite_or_none

# Calculator metric name -> the key a record carries.
RETRIEVAL_METRICS: dict[str, str] = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "mean_average_precision_at_r": "map_at_r",
}
RETRIEVAL_KEYS: tuple[str, ...] = tuple(
    key for name in RETRIEVAL_METRICS.values() for key in (name, f"{name}_per_class")
)

_DISTANCE = LpDistance(normalize_embeddings=True)

# pytorch-metric-learning logs a warning for chunks with no query class in the reference.
logging.getLogger("PML").setLevel(logging.ERROR)


class PrecomputedKNN:
    """A ``knn_func`` for ``AccuracyCalculator`` that hands back neighbours found beforehand.

    The calculator asks for the ``k`` nearest references of the query chunk it was given;
    ``retrieval_and_neighbours`` found (at least) those with one matrix product per chunk
    and sets them here, so the search is not repeated and the k-NN rules can share it.
    """

    def __init__(self) -> None:
        self.distances: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None

    def set(self, distances: torch.Tensor, indices: torch.Tensor) -> None:
        self.distances, self.indices = distances, indices

    def __call__(self, query, k, reference, ref_includes_query=False):
        if self.indices is None or ref_includes_query or len(query) != len(self.indices):
            raise ValueError("PrecomputedKNN holds neighbours of another query set")
        if k > self.indices.shape[1]:
            raise ValueError(f"PrecomputedKNN holds {self.indices.shape[1]} neighbours, {k} requested")
        return self.distances[:, :k], self.indices[:, :k]


def make_calculator(knn_batch: int = 1024, knn_func=None, **kwargs) -> AccuracyCalculator:
    """The project's AccuracyCalculator: Euclidean distance on normalized embeddings, CPU, no faiss.

    ``knn_func`` defaults to ``CustomKNN(LpDistance(normalize_embeddings=True))``.
    """
    knn = knn_func or CustomKNN(LpDistance(normalize_embeddings=True), batch_size=knn_batch)
    return AccuracyCalculator(
        include=tuple(RETRIEVAL_METRICS),
        k="max_bin_count",
        knn_func=knn,
        device=torch.device("cpu"),
        **kwargs,
    )


def retrieval_metrics(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor,
    reference_emb: torch.Tensor,
    reference_labels: torch.Tensor,
    query_chunk: int = 2048,
) -> dict[str, float | None]:
    """Precision@1, R-precision and MAP@R of queries against a disjoint reference set.

    Args:
        query_emb: (n, d) query embeddings (the test split).
        query_labels: (n,) class indices.
        reference_emb: (m, d) reference embeddings (the training split; ``ref_includes_query``
            is False because the splits are disjoint).
        reference_labels: (m,) class indices.
        query_chunk: queries per calculator call, which bounds memory to about
            ``query_chunk * R * 40`` bytes.

    Returns:
        ``precision_at_1``, ``r_precision``, ``map_at_r`` (averaged over queries) and the same
        with ``_per_class`` (averaged over classes, i.e. ``avg_of_avgs=True``); None where
        undefined, e.g. when no query class occurs in the reference.
    """
    metrics, _ = retrieval_and_neighbours(
        query_emb, query_labels, reference_emb, reference_labels, keep=0, query_chunk=query_chunk
    )
    return metrics


def retrieval_and_neighbours(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor,
    reference_emb: torch.Tensor,
    reference_labels: torch.Tensor,
    keep: int = 5,
    query_chunk: int = 2048,
) -> tuple[dict[str, float | None], torch.Tensor]:
    """``retrieval_metrics`` plus the ``keep`` nearest references of every query, from one search.

    Per query chunk, one distance matrix and ``topk`` find the R nearest references
    (R = the largest reference class among the chunk's query classes, what the calculator's
    ``k="max_bin_count"`` asks for); the calculator gets them through ``PrecomputedKNN``
    and the first ``keep`` columns are kept for the k-NN rules.

    Returns:
        ``(metrics, indices)``: the metrics of ``retrieval_metrics`` and (n, keep) positions in
        the reference, nearest first.
    """
    knn = PrecomputedKNN()
    calc = make_calculator(knn_func=knn, return_per_class=True)
    q = query_emb.detach().float().cpu()
    r = reference_emb.detach().float().cpu()
    ql = query_labels.detach().long().cpu()
    rl = reference_labels.detach().long().cpu()
    num_classes = int(max(ql.max().item() if len(ql) else 0, rl.max().item() if len(rl) else 0)) + 1
    sums = {name: torch.zeros(num_classes, dtype=torch.float64) for name in RETRIEVAL_METRICS}
    counts = torch.zeros(num_classes, dtype=torch.float64)
    reference_counts = torch.bincount(rl, minlength=num_classes)
    in_reference = reference_counts > 0
    keep = min(int(keep), len(r))
    kept_neighbours = []
    for start in range(0, len(q), query_chunk):
        qc, lc = q[start : start + query_chunk], ql[start : start + query_chunk]
        # The calculator skips queries whose class is absent from the reference ("lone").
        kept = lc[in_reference[lc]]
        present, n_per_class = torch.unique(kept, return_counts=True)
        k = max(keep, int(reference_counts[present].max()) if len(present) else 0)
        if k == 0:
            continue
        # Exactly CustomKNN(LpDistance(normalize_embeddings=True))'s search, so the neighbour
        # order (ties included) and hence every metric equal the calculator's own.
        distances, indices = torch.topk(_DISTANCE(qc, r), k, dim=1, largest=False)
        if keep:
            kept_neighbours.append(indices[:, :keep])
        if len(kept) == 0:
            continue
        knn.set(distances, indices)
        result = calc.get_accuracy(qc, lc, r, rl, ref_includes_query=False)
        for name in RETRIEVAL_METRICS:
            per_class = torch.tensor(result[name], dtype=torch.float64)
            sums[name][present] += per_class * n_per_class
        counts[present] += n_per_class.double()
    knn.set(None, None)
    out: dict[str, float | None] = {}
    seen = counts > 0
    for name, key in RETRIEVAL_METRICS.items():
        if not bool(seen.any()):
            out[key], out[f"{key}_per_class"] = None, None
            continue
        out[key] = finite_or_none((sums[name].sum() / counts.sum()).item())
        out[f"{key}_per_class"] = finite_or_none((sums[name][seen] / counts[seen]).mean().item())
    neighbours = (
        torch.cat(kept_neighbours) if kept_neighbours else torch.empty(len(q), keep, dtype=torch.long)
    )
    return out, neighbours
