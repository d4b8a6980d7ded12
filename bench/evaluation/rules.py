"""Prediction rules on frozen embeddings: how an embedding becomes a class decision.

Every rule measures Euclidean distance between L2-normalized embeddings. Normalizing first
puts all methods on one footing (a contrastive or triplet trunk and a softmax classifier
produce embeddings of very different scales) and matches the ``LpDistance(normalize_embeddings=
True)`` that the retrieval view uses. The k-NN rules take their neighbours from
``bench.evaluation.neighbours.search``, the one search that also serves the retrieval view,
in the same order for every split.

Rules (``RULES``):
    prototype: nearest class centre, the mean of the class's normalized training embeddings
        (re-normalized onto the sphere).
    mean_image: nearest embedded per-class mean *image* of the training split, the rule of
        the reference experiment (its anchors were those mean images).
    knn1: the label of the nearest training embedding.
    knn5: majority vote among the 5 nearest training embeddings; a tie goes to the tied class
        whose member is nearest.
    head: argmax of the classifier's logits, only for methods that have a head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.datasets import image_set
from bench.evaluation.neighbours import QUERY_BLOCK, search

RULES: tuple[str, ...] = ("prototype", "mean_image", "knn1", "knn5", "head")
#: The one rule of a label-free method (``defect_score``): its own score, no class decision.
SCORE_RULE = "score"

# Queries per matrix product.
DEFAULT_CHUNK = QUERY_BLOCK


def l2_normalize(embeddings: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    return F.normalize(embeddings.detach().float(), dim=1)


def knn_vote(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Majority label of each row of ``neighbour_labels`` (n, k), columns ordered nearest first.

    A tie between classes goes to the tied class that appears first, i.e. whose member is
    nearest, which reduces to 1-NN when all k labels differ.
    """
    votes = F.one_hot(neighbour_labels, num_classes).sum(dim=1)  # (n, C)
    top = votes.max(dim=1, keepdim=True).values
    is_winner = votes.gather(1, neighbour_labels) == top  # (n, k): neighbour's class is a tied max
    # argmax returns the first maximal position, i.e. the nearest neighbour of a winning class.
    first = is_winner.to(torch.uint8).argmax(dim=1, keepdim=True)
    return neighbour_labels.gather(1, first).squeeze(1)


def nearest_centre(
    query: torch.Tensor, centres: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of the nearest centre (C, d) for each query (n, d), both normalized first.

    Args:
        query: (n, d) embeddings.
        centres: (C, d) one centre per class.
        present: optional (C,) bool mask; classes without training data are never predicted.
    """
    sims = l2_normalize(query) @ l2_normalize(centres).T
    if present is not None:
        sims = sims.masked_fill(~present.unsqueeze(0), float("-inf"))
    return sims.argmax(dim=1)


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class mean of the normalized embeddings, (C, d); an absent class gets a zero row."""
    return image_set.class_means(l2_normalize(embeddings), labels, num_classes)


def predict_rules(
    train_emb: torch.Tensor,
    train_labels: torch.Tensor,
    query_emb: torch.Tensor,
    mean_image_emb: torch.Tensor | None,
    num_classes: int,
    head_logits: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    neighbours: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Class predictions of every applicable rule for ``query_emb``.

    Args:
        train_emb: (m, d) embeddings of the training split (the reference set).
        train_labels: (m,) class indices of the training split.
        query_emb: (n, d) embeddings to classify.
        mean_image_emb: (C, d) embeddings of the per-class mean training images, or None to
            skip the ``mean_image`` rule.
        num_classes: C.
        head_logits: (n, C) classifier logits for the queries, or None (no ``head`` rule).
        chunk_size: queries per similarity matrix (memory bound).
        neighbours: optional (n, >= 5) positions of each query's nearest training embeddings,
            nearest first, from ``search`` already made (``evaluate`` makes one per split, which
            also serves the retrieval view); the k-NN rules then search no more.

    Returns:
        ``{rule: LongTensor (n,)}`` in ``RULES`` order, holding only the rules that apply.
    """
    train_labels = train_labels.long()
    present = torch.bincount(train_labels, minlength=num_classes) > 0
    out: dict[str, torch.Tensor] = {}
    out["prototype"] = nearest_centre(query_emb, class_means(train_emb, train_labels, num_classes), present)
    if mean_image_emb is not None:
        out["mean_image"] = nearest_centre(query_emb, mean_image_emb, present)
    # One neighbour search serves both k-NN rules: the 5 nearest include the nearest.
    k = min(5, train_emb.shape[0])
    if neighbours is not None and neighbours.shape[1] >= k:
        idx = neighbours[:, :k]
    else:
        idx = search(query_emb, train_emb, keep=k, block=chunk_size).nearest
    neighbour_labels = train_labels[idx]
    out["knn1"] = neighbour_labels[:, 0].clone()
    out["knn5"] = knn_vote(neighbour_labels, num_classes)
    if head_logits is not None:
        out["head"] = head_logits.detach().argmax(dim=1).long()
    return out
