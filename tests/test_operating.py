"""Operating points: the threshold chosen on validation, the test rates at it, AUROC and AP, the
scores of every rule, and the label-free baselines end to end."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers_processes import run_bench

from bench.evaluation.evaluate import SCORE_RULE, evaluate
from bench.evaluation.operating import choose_threshold, operating_metrics, rates_at
from bench.evaluation.scores import neighbour_scores
from bench.grid.record import Metrics, Record
from bench.sampling.budget import Budget
from methods import create_method, list_methods

# A constructed score distribution (higher: more likely defective).
VAL_DEFECT = [0.1, 0.4, 0.6, 0.7, 0.9]
VAL_GOOD = [0.0, 0.2, 0.3, 0.5]
TEST_DEFECT = [0.35, 0.45, 0.8, 0.95]
TEST_GOOD = [0.05, 0.15, 0.38, 0.42, 0.6]


def _split(defect, good):
    return np.array(defect + good), np.array([True] * len(defect) + [False] * len(good))


def test_constructed_scores_give_the_hand_computed_auroc_threshold_and_test_rates():
    val, val_d = _split(VAL_DEFECT, VAL_GOOD)
    test, test_d = _split(TEST_DEFECT, TEST_GOOD)
    out = operating_metrics(val, val_d, test, test_d, budgets=(0.2, 0.01), cost_escape=10, cost_overkill=1)
    # AUROC: pairs (defect, good) ordered right: 2 + 4 + 5 + 5 of 20.
    assert out["defect_auroc"] == pytest.approx(16 / 20)
    # AP: defects at ranks 1, 2, 4, 7 of the descending order: (1 + 1 + 3/4 + 4/7) / 4.
    assert out["defect_ap"] == pytest.approx((1 + 1 + 0.75 + 4 / 7) / 4)
    loose, tight = out["operating_points"][1], out["operating_points"][0]
    assert (tight["escape_budget"], loose["escape_budget"]) == (0.01, 0.2)
    # Budget 20% of 5 validation defects: 1 may escape, so t = the 2nd lowest defect score, 0.4.
    assert loose["threshold"] == 0.4
    assert loose["val_escape_rate"] == pytest.approx(1 / 5) and loose["val_overkill_rate"] == pytest.approx(
        1 / 4
    )
    assert loose["escape_rate"] == pytest.approx(1 / 4)  # 0.35 < 0.4
    assert loose["overkill_rate"] == pytest.approx(2 / 5)  # 0.42 and 0.6 >= 0.4
    assert loose["cost_per_1000"]["test_mix"] == pytest.approx(1000 * (4 / 9 * 0.25 * 10 + 5 / 9 * 0.4))
    # Budget 1% of 5: none may escape, t = the lowest defect score, 0.1.
    assert tight["threshold"] == 0.1 and tight["val_escape_rate"] == 0.0
    assert tight["escape_rate"] == 0.0 and tight["overkill_rate"] == pytest.approx(4 / 5)
    # The test curve at escape 20%: floor(0.8) = 0 of 4 test defects may escape, t = 0.35.
    curve = out["overkill_at_escape"]
    assert curve["overkill"][curve["escape"].index(0.2)] == pytest.approx(3 / 5)  # t = 0.35: 0.38, 0.42, 0.6


def test_ties_at_the_threshold_are_caught_and_no_defect_means_no_threshold():
    scores, defect = np.array([0.5, 0.5, 0.9, 0.5]), np.array([True, True, True, False])
    t = choose_threshold(scores, defect, 0.34)  # 1 of 3 may escape: the 2nd lowest, 0.5
    assert t == 0.5 and rates_at(scores, defect, t) == (0.0, 1.0)
    assert choose_threshold(scores, np.zeros(4, bool), 0.01) is None


def test_changing_only_test_labels_never_changes_a_chosen_threshold():
    rng = np.random.default_rng(0)
    val, test = rng.normal(size=200), rng.normal(size=300)
    val_d = rng.random(200) < 0.3
    base = operating_metrics(val, val_d, test, rng.random(300) < 0.3, budgets=(0.005, 0.01, 0.05))
    for seed in range(5):
        shuffled = np.random.default_rng(seed + 1).random(300) < 0.5
        out = operating_metrics(val, val_d, test, shuffled, budgets=(0.005, 0.01, 0.05))
        assert [p["threshold"] for p in out["operating_points"]] == [
            p["threshold"] for p in base["operating_points"]
        ]


def _relabelled(split, seed):
    g = torch.Generator().manual_seed(seed)
    return replace(split, labels=split.labels[torch.randperm(len(split), generator=g)])


@pytest.mark.parametrize("name", ["classifier", "knn-distance"])
def test_evaluate_chooses_thresholds_without_the_test_labels(name, digits_splits):
    method = create_method(name).fit(digits_splits.train, budget=Budget(steps=20, batch_images=64), seed=0)

    def thresholds(splits):
        result = evaluate(method, splits, escape_budgets=(0.01, 0.05))
        return {
            r: [p["threshold"] for p in m["operating_points"]] for r, m in result["metrics_by_rule"].items()
        }

    base = thresholds(digits_splits)
    assert base and all(t is not None for ts in base.values() for t in ts)
    for seed in (1, 2):
        assert thresholds(replace(digits_splits, test=_relabelled(digits_splits.test, seed))) == base
    # ...while validation labels do move them (the test would pass vacuously otherwise).
    assert thresholds(replace(digits_splits, val=_relabelled(digits_splits.val, 3))) != base


def test_knn5_score_orders_all_good_neighbourhoods_by_distance():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    query = torch.tensor([[1.0, 0.1], [1.0, 0.9], [0.1, 1.0]])
    nearest = torch.tensor([[0], [0], [1]])
    s = neighbour_scores(query, train, labels, nearest, good=0)
    assert s["knn5"][0] < s["knn5"][1] < 0 < 1 < s["knn5"][2]  # farther from good scores higher
    assert s["knn1"][0] < s["knn1"][1] < 0 < s["knn1"][2]


def test_label_free_baselines_are_out_of_all_and_score_without_class_metrics(digits_splits):
    baselines = list_methods(label_free=True)
    assert set(baselines) >= {"knn-distance", "pca-gaussian"}
    for name in baselines:
        method = create_method(name).fit(digits_splits.train, seed=0)
        result = evaluate(method, digits_splits)
        metrics = Metrics.from_json(result["metrics"])
        assert result["headline_rule"] == SCORE_RULE
        assert metrics.accuracy is None and metrics.escape_rate is None and metrics.precision_at_1 is None
        assert metrics.defect_auroc > 0.8  # digits' 0 is far from the other digits in pixel space
        (point,) = metrics.operating_points
        assert point.escape_budget == 0.01 and point.overkill_rate is not None


def test_old_metrics_write_back_without_the_new_fields():
    old = {"n": 3, "accuracy": 1.0, "escape_rate": 0.0}
    assert "defect_auroc" not in Metrics.from_json(old).to_json()
    new = {**old, "defect_auroc": 0.9, "operating_points": [{"escape_budget": 0.01, "threshold": 0.2}]}
    back = Metrics.from_json(new)
    assert (
        back.operating_points[0].threshold == 0.2
        and back.to_json()["operating_points"][0]["threshold"] == 0.2
    )
    assert Record  # the record type reads these parts through Metrics


def test_separation_gives_scikit_learns_auroc_and_average_precision_ties_included():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from bench.evaluation.operating import separation

    rng = np.random.default_rng(7)
    for i in range(200):
        n = int(rng.integers(3, 300))
        # every other case: few distinct scores, so most thresholds are ties
        s = rng.integers(0, 5, n).astype(float) if i % 2 else rng.random(n)
        d = rng.random(n) < 0.3
        if d.all() or not d.any():
            continue
        auroc, ap = separation(s, d)
        assert auroc == pytest.approx(roc_auc_score(d, s), abs=1e-12)
        assert ap == pytest.approx(average_precision_score(d, s), abs=1e-12)


def test_a_study_with_baselines_gives_them_every_seed_and_shows_each_once(tmp_path):
    """Seeds on demand grow the trained groups; the baselines (no accuracy to target) follow the
    largest, so they pair with every method on every seed; the report shows each baseline once
    (it draws nothing, so every scheme gives it the same cell) and gives it no class rows."""
    out = tmp_path / "run"
    argv = "run --dataset inspection --quick --method classifier --method pca-gaussian --scheme uniform"
    argv = [*argv.split(), *"--scheme sqrt --target-ci 0.1 --max-seeds 4 --executor local".split()]
    run_bench(*argv, "--out", out, check=True)
    rows = [Record.from_dict(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]
    seeds: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        seeds.setdefault((r.config.method, r.config.scheme), set()).add(r.config.seed)
    assert seeds[("classifier", "uniform")] == {0, 1, 2, 3}  # 60 steps: too noisy for ±0.1
    assert seeds[("pca-gaussian", "uniform")] == seeds[("pca-gaussian", "sqrt")] == {0, 1, 2, 3}
    assert all(r.metrics.escape_rate_by_class is None for r in rows if r.config.method == "pca-gaussian")
    report = (out / "report.md").read_text()
    headline = report.split("### Headline")[1].split("###")[0]
    assert len(re.findall(r"^\| pca-gaussian\s+\|", headline, flags=re.M)) == 1
    assert "each is shown and tested once: `pca-gaussian` under `uniform`" in report
    escapes = report.split("### Escapes per defect class")[1].split("\n### ")[0]
    assert "pca-gaussian" not in escapes
    between = report.split("### Paired comparisons between methods")[1].split("\n### ")[0]
    assert "**Accuracy**" not in between  # its one pair has a baseline, with no class metric
    assert re.search(r"\| uniform\s+\| classifier\s+\| pca-gaussian\s+\| 4 ", between)  # at the escape budget
