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
neighbour search runs once, not twice. Measured on 2 CPU cores with random 128-d embeddings,
10 classes: about 13 s for 10k x 60k (see ``tests/test_metrics.py`` for the check that the
derived numbers equal the calculator's own).
"""

from __future__ import annotations

import logging

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from bench.metrics import finite_or_none

# Calculator metric name -> the key a record carries.
RETRIEVAL_METRICS: dict[str, str] = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "mean_average_precision_at_r": "map_at_r",
}
RETRIEVAL_KEYS: tuple[str, ...] = tuple(
    key for name in RETRIEVAL_METRICS.values() for key in (name, f"{name}_per_class")
)

# pytorch-metric-learning logs a warning for chunks with no query class in the reference.
logging.getLogger("PML").setLevel(logging.ERROR)


def make_calculator(knn_batch: int = 1024, **kwargs) -> AccuracyCalculator:
    """The project's AccuracyCalculator: Euclidean distance on normalized embeddings, CPU, no faiss."""
    knn = CustomKNN(LpDistance(normalize_embeddings=True), batch_size=knn_batch)
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
    knn_batch: int = 1024,
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
        knn_batch: queries per distance matrix inside the neighbour search.

    Returns:
        ``precision_at_1``, ``r_precision``, ``map_at_r`` (averaged over queries) and the same
        with ``_per_class`` (averaged over classes, i.e. ``avg_of_avgs=True``); None where
        undefined, e.g. when no query class occurs in the reference.
    """
    calc = make_calculator(knn_batch=knn_batch, return_per_class=True)
    q = query_emb.detach().float().cpu()
    r = reference_emb.detach().float().cpu()
    ql = query_labels.detach().long().cpu()
    rl = reference_labels.detach().long().cpu()
    num_classes = int(max(ql.max().item() if len(ql) else 0, rl.max().item() if len(rl) else 0)) + 1
    sums = {name: torch.zeros(num_classes, dtype=torch.float64) for name in RETRIEVAL_METRICS}
    counts = torch.zeros(num_classes, dtype=torch.float64)
    in_reference = torch.bincount(rl, minlength=num_classes) > 0
    for start in range(0, len(q), query_chunk):
        qc, lc = q[start : start + query_chunk], ql[start : start + query_chunk]
        # The calculator skips queries whose class is absent from the reference ("lone").
        kept = lc[in_reference[lc]]
        if len(kept) == 0:
            continue
        present, n_per_class = torch.unique(kept, return_counts=True)
        result = calc.get_accuracy(qc, lc, r, rl, ref_includes_query=False)
        for name in RETRIEVAL_METRICS:
            per_class = torch.tensor(result[name], dtype=torch.float64)
            sums[name][present] += per_class * n_per_class
        counts[present] += n_per_class.double()
    out: dict[str, float | None] = {}
    seen = counts > 0
    for name, key in RETRIEVAL_METRICS.items():
        if not bool(seen.any()):
            out[key], out[f"{key}_per_class"] = None, None
            continue
        out[key] = finite_or_none((sums[name].sum() / counts.sum()).item())
        out[f"{key}_per_class"] = finite_or_none((sums[name][seen] / counts[seen]).mean().item())
    return out
