"""Each prediction rule, and the retrieval view, for 10,000 queries against 10,000 references.

Run as a smoke test, each also checks its output against an independent computation on the
first ``CHECKED`` queries (scikit-learn's neighbours, numpy's nearest centre)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from bench.evaluation.retrieval import retrieval_metrics
from bench.evaluation.rules import RULES, predict_rules

CHECKED = 500


def _only(rule: str, problem: dict) -> dict:
    """predict_rules' inputs with only ``rule``'s optional parts (mean images, head) present."""
    return {
        "train_emb": problem["train_emb"],
        "train_labels": problem["train_labels"],
        "query_emb": problem["query_emb"],
        "mean_image_emb": problem["mean_image_emb"] if rule == "mean_image" else None,
        "num_classes": 10,
        "head_logits": problem["head_logits"] if rule == "head" else None,
    }


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _neighbours(problem: dict, k: int) -> np.ndarray:
    """Positions of the k nearest references of the first CHECKED queries (normalized, Euclidean)."""
    search = NearestNeighbors(n_neighbors=k).fit(_unit(problem["train_emb"]))
    return search.kneighbors(_unit(problem["query_emb"][:CHECKED]), return_distance=False)


def expected(rule: str, problem: dict) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, mask of the queries where they are unambiguous) for the first CHECKED queries."""
    labels = problem["train_labels"].numpy()
    queries = _unit(problem["query_emb"][:CHECKED])
    every = np.ones(CHECKED, dtype=bool)
    if rule in ("prototype", "mean_image"):
        if rule == "prototype":
            refs = _unit(problem["train_emb"])
            centres = np.stack([refs[labels == c].mean(0) for c in range(10)])
        else:
            centres = np.asarray(problem["mean_image_emb"], dtype=np.float64)
        return (queries @ _unit(centres).T).argmax(1), every
    if rule == "head":
        return problem["head_logits"][:CHECKED].numpy().argmax(1), every
    k = 1 if rule == "knn1" else 5
    votes = np.stack([np.bincount(row, minlength=10) for row in labels[_neighbours(problem, k)]])
    top = np.sort(votes, axis=1)
    return votes.argmax(1), top[:, -1] > top[:, -2] if k > 1 else every  # a tied vote is left out


@pytest.mark.parametrize("rule", RULES)
def test_rule(benchmark, rule, rule_problem):
    """predict_rules always computes prototype and k-NN; the group compares the rule's extra."""
    benchmark.group = "rules: 10k queries x 10k references"
    benchmark.extra_info["rule"] = rule
    out = benchmark.pedantic(predict_rules, kwargs=_only(rule, rule_problem), rounds=3, iterations=1)
    predicted = out[rule][:CHECKED].numpy()
    want, clear = expected(rule, rule_problem)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(predicted[clear], want[clear])


def test_retrieval(benchmark, rule_problem):
    benchmark.group = "rules: 10k queries x 10k references"
    benchmark.extra_info["rule"] = "retrieval (MAP@R, R-precision, precision@1)"
    p = rule_problem
    out = benchmark.pedantic(
        retrieval_metrics,
        args=(p["query_emb"], p["query_labels"], p["train_emb"], p["train_labels"]),
        rounds=1,
        iterations=1,
    )
    # precision@1 is the share of queries whose nearest reference has their class: 1-NN accuracy.
    search = NearestNeighbors(n_neighbors=1).fit(_unit(p["train_emb"]))
    nearest = search.kneighbors(_unit(p["query_emb"]), return_distance=False)[:, 0]
    one_nn = float((p["train_labels"].numpy()[nearest] == p["query_labels"].numpy()).mean())
    assert out["precision_at_1"] == pytest.approx(one_nn, abs=1e-4)
    assert 0.1 < out["map_at_r"] <= out["r_precision"] <= 1.0
