"""Evaluate a fitted method on a split: embed once, apply every rule, measure, project to 2-D.

The headline rule defaults to ``knn5`` (majority vote of the 5 nearest training embeddings):
it needs no classifier head, so it applies to every method alike, it uses the same
normalized-Euclidean geometry the metric-learning losses optimize, and voting over 5
neighbours is less sensitive to a single mislabelled or atypical training image than 1-NN.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.decomposition import PCA

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet, Splits, class_means
from bench.evaluation.health import embedding_spread
from bench.evaluation.metrics import classification_metrics, compact_metrics
from bench.evaluation.neighbours import search
from bench.evaluation.operating import DEFAULT_ESCAPE_BUDGETS, operating_metrics
from bench.evaluation.retrieval import summarize
from bench.evaluation.rules import RULES, SCORE_RULE, l2_normalize, predict_rules
from bench.evaluation.scores import rule_scores
from bench.evaluation.test_views import flip_views, with_test_views

HEADLINE_DEFAULT = "knn5"
#: The retrieval metrics, None for a label-free method.
_RETRIEVAL_KEYS = (
    "precision_at_1",
    "precision_at_1_per_class",
    "r_precision",
    "r_precision_per_class",
    "map_at_r",
    "map_at_r_per_class",
)


class EmbeddingMethod(Protocol):
    """What ``evaluate`` needs from a method (``predict_head`` is optional)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


def mean_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class mean image (C, h, w) of a split; a class without images gets a zero image."""
    return class_means(images.float(), labels, num_classes)


def _head(method: Any, images: torch.Tensor) -> torch.Tensor | None:
    predict_head = getattr(method, "predict_head", None)
    return None if predict_head is None else predict_head(images)


def embedding_2d(
    embeddings: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], sample: int, seed: int = 0
) -> dict[str, list]:
    """A PCA projection of up to ``sample`` normalized embeddings, for the scatter plot.

    The sample is a fixed-seed random subset so that reruns draw the same points; the
    projection is sklearn's exact (``svd_solver="full"``) PCA so it is deterministic too.
    """
    n = embeddings.shape[0]
    if n == 0 or sample <= 0:
        return {"x": [], "y": [], "label": []}
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(n, generator=g)[: min(sample, n)].sort().values
    x = l2_normalize(embeddings[pick]).numpy().astype(np.float64)
    if x.shape[0] >= 2 and x.shape[1] >= 2:
        xy = PCA(n_components=2, svd_solver="full").fit_transform(x)
    else:  # too little data for two components: show the raw leading coordinates
        xy = np.zeros((x.shape[0], 2))
        xy[:, : min(2, x.shape[1])] = x[:, :2]
    xy = np.round(xy, 4)
    codes = np.asarray(classes, dtype=object)[labels[pick].numpy()]
    return {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "label": [str(c) for c in codes]}


def evaluate(
    method: EmbeddingMethod,
    splits: Splits,
    headline_rule: str = HEADLINE_DEFAULT,
    cost_escape: float = 10.0,
    cost_overkill: float = 1.0,
    good_share: float | None = None,
    embed_sample: int = 1000,
    escape_budgets: tuple[float, ...] = DEFAULT_ESCAPE_BUDGETS,
) -> dict:
    """Embed train/val/test once, apply every rule on val and test, and measure.

    Every rule's test metrics also hold its good-vs-defect metrics (``operating_metrics``): AUROC,
    average precision, the test trade-off curve and, per escape budget, the threshold chosen on
    the validation split with its test escape and overkill. A label-free method (one with
    ``defect_score(images) -> (n,)``, higher meaning more likely defective) has no rules: its one
    ``score`` rule carries those metrics, and every class metric is None.

    Args:
        method: a fitted method with ``embed(images) -> (n, d)`` and optionally
            ``predict_head(images) -> (n, C) logits | None``.
        splits: the train/val/test split the method was fitted on (train only).
        headline_rule: the rule whose test metrics become ``metrics`` (one of ``RULES``).
        cost_escape: cost of one escape, for ``cost_per_1000``.
        cost_overkill: cost of one overkill.
        good_share: production share of good parts, for ``cost_per_1000["production_mix"]``.
        embed_sample: test embeddings kept for the 2-D projection.
        escape_budgets: the escape budgets of the operating points (shares of defective parts).

    Returns:
        ``metrics`` (the headline rule's test metrics merged with the retrieval metrics),
        ``metrics_by_rule`` ({rule: test metrics + retrieval}), ``val_metrics_by_rule``
        ({rule: compact metrics}), ``headline_rule``, ``embed_images_per_s`` (over the three
        splits), ``eval_s`` (wall time of this call, embedding included), ``operating_s`` (the
        part of it spent on the good-vs-defect scores and operating points), ``embedding_2d`` and
        ``test_spread`` (how many dimensions the test embeddings fill and how often their nearest
        training embedding has their class: ``embedding_spread``) and ``test_views`` (how many
        flip views each output is the mean of: ``bench.evaluation.test_views``; 1 without flips).

    Raises:
        BenchError: for an unknown headline rule, or the ``head`` rule on a method without one.
    """
    if headline_rule not in RULES:
        raise BenchError(f"unknown headline rule {headline_rule!r}; known rules: {', '.join(RULES)}")
    started = time.perf_counter()
    # Every output is the mean over the training augmentation's flip views (one view: as is).
    method = with_test_views(method, splits.train.augment)
    if getattr(method, "defect_score", None) is not None:
        return _evaluate_label_free(
            method, splits, (cost_escape, cost_overkill, good_share), embed_sample, escape_budgets, started
        )
    train, classes = splits.train, splits.train.classes
    num_classes = len(classes)

    with torch.no_grad():
        embed_start = time.perf_counter()
        emb = {name: method.embed(s.images).detach().float().cpu() for name, s in _named(splits)}
        embed_s = time.perf_counter() - embed_start
        n_embedded = sum(len(s) for _, s in _named(splits))
        mean_image_emb = method.embed(mean_images(train.images, train.labels, num_classes)).detach().float()
        heads = {name: _head(method, s.images) for name, s in _named(splits) if name != "train"}

        # One neighbour search per split, the same for both: it finds the nearest training
        # embeddings of the k-NN rules and, for the test split, the retrieval view's R nearest.
        found = {
            "val": search(emb["val"], emb["train"], 5),
            "test": search(emb["test"], emb["train"], 5, splits.test.labels, train.labels),
        }
        retrieval = summarize(found["test"], splits.test.labels)
        preds = {
            name: predict_rules(
                emb["train"],
                train.labels,
                emb[name],
                mean_image_emb,
                num_classes,
                heads[name],
                neighbours=found[name].nearest,
            )
            for name in ("val", "test")
        }
    if headline_rule not in preds["test"]:
        raise BenchError(
            f"headline rule {headline_rule!r} does not apply to this method; "
            f"rules available: {', '.join(preds['test'])}"
        )

    def measure(split: ImageSet, y_pred: torch.Tensor) -> dict:
        return classification_metrics(
            split.labels, y_pred, classes, split.good_index, cost_escape, cost_overkill, good_share
        )

    metrics_by_rule = {
        rule: {**measure(splits.test, y_pred), **retrieval} for rule, y_pred in preds["test"].items()
    }
    val_metrics_by_rule = {
        rule: compact_metrics(measure(splits.val, y_pred)) for rule, y_pred in preds["val"].items()
    }
    good = train.good_index
    operating_started = time.perf_counter()
    if good is not None:
        with torch.no_grad():
            scores = {
                name: rule_scores(
                    emb["train"],
                    train.labels,
                    emb[name],
                    mean_image_emb,
                    num_classes,
                    good,
                    found[name].nearest,
                    heads[name],
                )
                for name in ("val", "test")
            }
        for rule, metrics in metrics_by_rule.items():
            metrics.update(
                operating_metrics(
                    scores["val"][rule],
                    (splits.val.labels != good).numpy(),
                    scores["test"][rule],
                    (splits.test.labels != good).numpy(),
                    escape_budgets,
                    cost_escape,
                    cost_overkill,
                    good_share,
                )
            )
    operating_s = time.perf_counter() - operating_started
    projection = embedding_2d(emb["test"], splits.test.labels, classes, embed_sample)
    return {
        "metrics": metrics_by_rule[headline_rule],
        "metrics_by_rule": metrics_by_rule,
        "val_metrics_by_rule": val_metrics_by_rule,
        "headline_rule": headline_rule,
        "embed_images_per_s": float(n_embedded / embed_s) if embed_s > 0 else None,
        "eval_s": float(time.perf_counter() - started),
        "operating_s": float(operating_s),
        "embedding_2d": projection,
        "test_spread": embedding_spread(emb["test"], retrieval["precision_at_1_per_class"]),
        "test_views": len(flip_views(splits.train.augment)),
    }


def _evaluate_label_free(
    method: Any, splits: Splits, costs: tuple, embed_sample: int, budgets: tuple[float, ...], started: float
) -> dict:
    """``evaluate`` for a method that scores images itself and never saw a defect label: the
    good-vs-defect metrics of its ``defect_score``; class and retrieval metrics are None."""
    test, good = splits.test, splits.test.good_index
    if good is None:
        raise BenchError(
            f"{getattr(method, 'name', 'this method')} scores good against defect; the dataset has no good class"
        )
    with torch.no_grad():
        scoring_start = time.perf_counter()
        val_scores = method.defect_score(splits.val.images)
        test_scores = method.defect_score(test.images)
        scoring_s = time.perf_counter() - scoring_start
        test_emb = method.embed(test.images).detach().float().cpu()
    metrics = classification_metrics(test.labels, test.labels, test.classes, good, *costs)
    blank = ("accuracy", "balanced_accuracy", "macro_f1", "per_class_recall", "confusion")
    rates = ("escape_rate", "overkill_rate", "escape_rate_by_class", "defect_confusion_rate")
    metrics.update({key: None for key in (*blank, *rates)})
    metrics.update({key: None for key in _RETRIEVAL_KEYS}, cost_per_1000=None)
    operating_started = time.perf_counter()
    metrics.update(
        operating_metrics(
            val_scores,
            (splits.val.labels != good).numpy(),
            test_scores,
            (test.labels != good).numpy(),
            budgets,
            *costs,
        )
    )
    operating_s = time.perf_counter() - operating_started
    scored = len(splits.val) + len(test)
    return {
        "metrics": metrics,
        "metrics_by_rule": {SCORE_RULE: metrics},
        "val_metrics_by_rule": {},
        "headline_rule": SCORE_RULE,
        "embed_images_per_s": float(scored / scoring_s) if scoring_s > 0 else None,
        "eval_s": float(time.perf_counter() - started),
        "operating_s": float(operating_s),
        "embedding_2d": embedding_2d(test_emb, test.labels, test.classes, embed_sample),
        "test_spread": embedding_spread(test_emb, None),
        "test_views": len(flip_views(splits.train.augment)),
    }


def _named(splits: Splits) -> tuple[tuple[str, ImageSet], ...]:
    return (("train", splits.train), ("val", splits.val), ("test", splits.test))
