"""Good-vs-defect scores: one number per image and rule, higher meaning *more likely defective*.

A class rule (``bench.evaluation.rules``) gives one operating point, the class it predicts. An
inspection line instead thresholds a score, so every rule also gets a defect score, built from
what the rule already looks at (normalized embeddings, as the rules measure them):

    prototype: the cosine similarity to the nearest *defect* class centre minus that to the good
        class centre; positive exactly where the rule predicts a defect.
    mean_image: the same with the embedded per-class mean images.
    knn1: the distance to the nearest *good* neighbour minus the distance to the nearest
        *defective* one, among the 5 nearest training embeddings; a class absent from the 5 counts
        at distance 2 (the farthest two unit vectors can be). Positive exactly where 1-NN predicts
        a defect.
    knn5: the distance-weighted defect share of the 5 nearest training embeddings, each neighbour
        weighted by 1 / (distance + 1e-6), in (0, 1) where both kinds are among the 5. Where all 5
        are good it is -(2 - D) / 2 (D their mean distance), below 0 and rising as they get
        farther; where all 5 are defective, 1 + (2 - D) / 2, above 1 and rising as they get nearer.
        A share alone ties every all-good neighbourhood at 0, and a threshold at a tie flags them all.
    head: the log-odds of "some defect" under the head's softmax, ``logsumexp(defect logits) -
        good logit`` (monotone in 1 - p(good), without its rounding to 1 near certainty).

A label-free method (``bench.evaluation.evaluate``) scores images itself (``defect_score``).
"""

from __future__ import annotations

import torch

from bench.evaluation.rules import class_means, l2_normalize

#: Distance between two unit vectors at most: a class missing from the nearest neighbours.
FAR = 2.0
#: Keeps a neighbour at distance 0 finite in the distance weights.
WEIGHT_EPS = 1e-6


def centre_margin(
    query: torch.Tensor, centres: torch.Tensor, good: int, present: torch.Tensor
) -> torch.Tensor:
    """Similarity to the nearest present defect centre minus similarity to the good centre (n,)."""
    sims = l2_normalize(query) @ l2_normalize(centres).T
    defect = present.clone()
    defect[good] = False
    if not bool(defect.any()):
        return torch.full((query.shape[0],), -float("inf"))
    best_defect = sims.masked_fill(~defect.unsqueeze(0), float("-inf")).max(dim=1).values
    return best_defect - sims[:, good]


def neighbour_scores(
    query: torch.Tensor, train: torch.Tensor, train_labels: torch.Tensor, nearest: torch.Tensor, good: int
) -> dict[str, torch.Tensor]:
    """The ``knn1`` and ``knn5`` defect scores from each query's nearest training positions (n, k)."""
    q, r = l2_normalize(query), l2_normalize(train)
    distance = (q.unsqueeze(1) - r[nearest]).norm(dim=2)  # (n, k), nearest first
    is_defect = train_labels[nearest] != good
    weights = 1.0 / (distance + WEIGHT_EPS)
    share = (weights * is_defect).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-12)
    nearness = (FAR - distance.mean(dim=1)) / FAR  # in [0, 1]
    share = torch.where(is_defect.any(dim=1), share, -nearness)
    share = torch.where(is_defect.all(dim=1), 1.0 + nearness, share)
    far = torch.full_like(distance, FAR)
    to_good = torch.where(is_defect, far, distance).min(dim=1).values
    to_defect = torch.where(is_defect, distance, far).min(dim=1).values
    return {"knn1": to_good - to_defect, "knn5": share}


def head_score(logits: torch.Tensor, good: int) -> torch.Tensor:
    """``logsumexp(defect logits) - good logit`` (n,): the log-odds of a defect."""
    logits = logits.detach().double()
    defect = torch.ones(logits.shape[1], dtype=torch.bool)
    defect[good] = False
    if not bool(defect.any()):
        return torch.full((logits.shape[0],), -float("inf"), dtype=torch.float64)
    return torch.logsumexp(logits[:, defect], dim=1) - logits[:, good]


def rule_scores(
    train_emb: torch.Tensor,
    train_labels: torch.Tensor,
    query_emb: torch.Tensor,
    mean_image_emb: torch.Tensor | None,
    num_classes: int,
    good: int,
    nearest: torch.Tensor,
    head_logits: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every applicable rule's defect score of ``query_emb`` (higher: more likely defective).

    Args:
        train_emb: (m, d) training embeddings; ``train_labels`` their classes.
        query_emb: (n, d) embeddings to score.
        mean_image_emb: (C, d) embedded per-class mean training images, or None.
        num_classes: C.
        good: the good class's index.
        nearest: (n, >= 1) positions of each query's nearest training embeddings, nearest first
            (the search ``evaluate`` already made for the k-NN rules).
        head_logits: (n, C) logits, or None (no ``head`` score).

    Returns:
        ``{rule: float tensor (n,)}`` for the rules ``predict_rules`` applies.
    """
    train_labels = train_labels.long()
    present = torch.bincount(train_labels, minlength=num_classes) > 0
    out = {
        "prototype": centre_margin(
            query_emb, class_means(train_emb, train_labels, num_classes), good, present
        )
    }
    if mean_image_emb is not None:
        out["mean_image"] = centre_margin(query_emb, mean_image_emb, good, present)
    out.update(neighbour_scores(query_emb, train_emb, train_labels, nearest[:, :5], good))
    if head_logits is not None:
        out["head"] = head_score(head_logits, good)
    return out
