"""The retrieval view of an embedding: test queries against the training split as reference.

Precision@1, R-precision and MAP@R as pytorch-metric-learning's ``AccuracyCalculator``
defines them with ``k="max_bin_count"`` (R = the number of references of the query's class;
a query whose class has no reference is left out), each averaged over queries and, as
``..._per_class``, over classes (the calculator's ``avg_of_avgs=True``). The values come from
``bench.evaluation.neighbours.search``, the same search that serves the k-NN rules, which ranks
by the calculator's distance but finds each query's R nearest without the calculator's sorted
top-R list of every query (``tests/test_metrics.py`` holds the two to equal values).
"""

from __future__ import annotations

import torch

from bench.evaluation.metrics import finite_or_none
from bench.evaluation.neighbours import Neighbours, search

#: The metrics, as ``Neighbours`` and a record name them.
RETRIEVAL_METRICS: tuple[str, ...] = ("precision_at_1", "r_precision", "map_at_r")


def retrieval_metrics(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor,
    reference_emb: torch.Tensor,
    reference_labels: torch.Tensor,
) -> dict[str, float | None]:
    """Precision@1, R-precision and MAP@R of queries against a disjoint reference set.

    Args:
        query_emb: (n, d) query embeddings (the test split).
        query_labels: (n,) class indices.
        reference_emb: (m, d) reference embeddings (the training split).
        reference_labels: (m,) class indices.

    Returns:
        ``precision_at_1``, ``r_precision``, ``map_at_r`` (averaged over queries) and the same
        with ``_per_class`` (averaged over classes); None where undefined, e.g. when no query
        class occurs in the reference.
    """
    found = search(query_emb, reference_emb, 0, query_labels, reference_labels)
    return summarize(found, query_labels)


def summarize(found: Neighbours, query_labels: torch.Tensor) -> dict[str, float | None]:
    """The record's retrieval metrics from a search's per-query values."""
    labels = query_labels.detach().long().cpu()
    out: dict[str, float | None] = {}
    for key in RETRIEVAL_METRICS:
        values = getattr(found, key)
        scored = ~torch.isnan(values)
        if not bool(scored.any()):
            out[key], out[f"{key}_per_class"] = None, None
            continue
        classes, members = torch.unique(labels[scored], return_inverse=True)
        sums = torch.zeros(len(classes), dtype=torch.float64).index_add_(0, members, values[scored])
        counts = torch.bincount(members, minlength=len(classes)).double()
        out[key] = finite_or_none((sums.sum() / counts.sum()).item())
        out[f"{key}_per_class"] = finite_or_none((sums / counts).mean().item())
    return out
