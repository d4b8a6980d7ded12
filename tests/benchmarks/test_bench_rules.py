"""Each prediction rule, and the retrieval view, for 10,000 queries against 10,000 references."""

from __future__ import annotations

import pytest

from bench.evaluation.retrieval import retrieval_metrics
from bench.evaluation.rules import RULES, predict_rules


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


@pytest.mark.parametrize("rule", RULES)
def test_rule(benchmark, rule, rule_problem):
    """predict_rules always computes prototype and k-NN; the group compares the rule's extra."""
    benchmark.group = "rules: 10k queries x 10k references"
    benchmark.extra_info["rule"] = rule
    out = benchmark.pedantic(predict_rules, kwargs=_only(rule, rule_problem), rounds=3, iterations=1)
    assert rule in out


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
    assert out["precision_at_1"] is not None
