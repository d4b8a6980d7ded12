"""Metrics, prediction rules, retrieval and evaluate against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet, Splits
from bench.evaluation import neighbours
from bench.evaluation.evaluate import evaluate, mean_images
from bench.evaluation.metrics import classification_metrics, compact_metrics, escape_rate_by_class
from bench.evaluation.neighbours import search
from bench.evaluation.retrieval import retrieval_metrics
from bench.evaluation.rules import knn_vote, predict_rules

CODES = ("0", "11", "12")


def test_classification_metrics_by_hand():
    # true: 4 good, 3 of code 11, 3 of code 12
    y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 2, 2, 0]
    m = classification_metrics(y_true, y_pred, CODES, good_index=0, cost_escape=10.0, cost_overkill=1.0)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 3 + 2 / 3) / 3)
    # F1 per class: good p=3/5 r=3/4; 11 p=1/2 r=1/3; 12 p=2/3 r=2/3
    f1 = [2 * p * r / (p + r) for p, r in ((3 / 5, 3 / 4), (1 / 2, 1 / 3), (2 / 3, 2 / 3))]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["per_class_recall"] == pytest.approx({"0": 0.75, "11": 1 / 3, "12": 2 / 3})
    assert m["confusion"] == {"labels": ["0", "11", "12"], "matrix": [[3, 1, 0], [1, 1, 1], [1, 0, 2]]}
    assert m["escape_rate"] == pytest.approx(2 / 6)  # two defects judged good
    assert m["overkill_rate"] == pytest.approx(1 / 4)  # one good part judged defective
    assert m["defect_confusion_rate"] == pytest.approx(1 / 6)  # an 11 called 12
    test_mix = 1000 * (0.6 * (2 / 6) * 10 + 0.4 * (1 / 4) * 1)
    assert m["cost_per_1000"] == pytest.approx({"test_mix": test_mix, "production_mix": test_mix})
    json.dumps(m, allow_nan=False)


def test_escape_rate_by_class_separates_the_severity_levels():
    # ELPV's four levels: 4 good, 4 unsure defects (1 passed as good), 2 likely (none passed),
    # 4 certain (2 passed): the pooled escape rate 3/10 hides that half the certain ones escape.
    codes = ("good", "defect-33", "defect-67", "defect-100")
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3]
    y_pred = [0, 0, 1, 0, 0, 1, 2, 1, 3, 2, 0, 0, 3, 2]
    m = classification_metrics(y_true, y_pred, codes, good_index=0)
    assert m["escape_rate"] == pytest.approx(3 / 10)
    assert m["escape_rate_by_class"] == pytest.approx(
        {"defect-33": 1 / 4, "defect-67": 0.0, "defect-100": 2 / 4}
    )
    assert list(m["escape_rate_by_class"]) == ["defect-33", "defect-67", "defect-100"]  # class order
    # A good class in the middle, a defect class absent from the truth (None), no good class.
    by_class = escape_rate_by_class([1, 0, 0, 2], [1, 1, 2, 1], ("a", "ok", "b", "c"), good_index=1)
    assert by_class == {"a": 0.5, "b": 1.0, "c": None}
    assert escape_rate_by_class([0, 1], [0, 0], ("a", "b"), None) is None
    assert classification_metrics([0, 1], [0, 1], ("3", "7"), None)["escape_rate_by_class"] is None


def test_cost_at_production_mix():
    m = classification_metrics([0, 0, 1, 1], [1, 0, 0, 1], ("0", "5"), 0, cost_escape=20.0, good_share=0.95)
    # escape 1/2, overkill 1/2
    assert m["cost_per_1000"]["production_mix"] == pytest.approx(1000 * (0.05 * 0.5 * 20 + 0.95 * 0.5 * 1))
    assert m["cost_per_1000"]["test_mix"] == pytest.approx(1000 * (0.5 * 0.5 * 20 + 0.5 * 0.5 * 1))


def test_no_good_class_leaves_inspection_fields_none():
    m = classification_metrics([0, 1, 2], [0, 2, 2], ("3", "7", "9"), None)
    assert m["accuracy"] == pytest.approx(2 / 3)
    for key in ("escape_rate", "overkill_rate", "defect_confusion_rate", "cost_per_1000"):
        assert m[key] is None


def test_no_defect_in_set_gives_none_not_nan():
    m = classification_metrics([0, 0, 0], [0, 1, 0], CODES, 0, good_share=0.5)
    assert m["escape_rate"] is None and m["defect_confusion_rate"] is None
    assert m["overkill_rate"] == pytest.approx(1 / 3)
    assert m["per_class_recall"]["11"] is None
    # Only good parts in the test mix: the escape term does not matter there...
    assert m["cost_per_1000"]["test_mix"] == pytest.approx(1000 / 3)
    # ...but at a production mix with defects the cost is undefined.
    assert m["cost_per_1000"]["production_mix"] is None
    json.dumps(m, allow_nan=False)


def test_bad_good_share_is_a_bench_error():
    with pytest.raises(BenchError):
        classification_metrics([0], [0], CODES, 0, good_share=1.5)


def test_rules_on_hand_made_embeddings():
    # Class 0 around +x, class 1 around +y, class 2 around -x.
    train = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0], [-1.0, 0.0], [-1.0, 0.2]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    query = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.1], [1.0, 0.9]])
    mean_img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    logits = torch.tensor([[0.0, 1.0, 0.0]] * 4)
    preds = predict_rules(train, labels, query, mean_img, 3, head_logits=logits)
    assert list(preds) == ["prototype", "mean_image", "knn1", "knn5", "head"]
    assert preds["prototype"].tolist() == [0, 1, 2, 0]
    assert preds["mean_image"].tolist() == [0, 1, 2, 0]
    assert preds["knn1"].tolist() == [0, 1, 2, 0]
    # Query 3 lies at 42 degrees: its neighbours by angle are classes 0 (36), 1 (42), 0 (48),
    # 1 (54), 2; the 2-2 tie goes to class 0, whose member is nearest.
    assert preds["knn5"].tolist() == [0, 1, 2, 0]
    assert preds["head"].tolist() == [1, 1, 1, 1]
    assert preds["knn5"].dtype == torch.long


def test_knn_vote_majority_and_tie_break():
    neighbours = torch.tensor(
        [
            [2, 1, 1, 0, 1],  # majority 1 although the nearest is 2
            [2, 0, 0, 2, 1],  # 2-2 tie: class 2 has the nearest member
            [0, 1, 2, 3, 4],  # all differ: 1-NN
        ]
    )
    assert knn_vote(neighbours, 5).tolist() == [1, 2, 0]


def _stable_knn(query, k, reference, ref_includes_query=False):
    """The library's distance, sorted stably: ties in reference order (``torch.topk`` orders
    them arbitrarily, so no tie order is the calculator's own)."""
    distance = LpDistance(normalize_embeddings=True)(query, reference)
    nearest = torch.sort(distance, dim=1, stable=True).indices[:, :k]
    return distance.gather(1, nearest), nearest


def _calculator(knn_func=None, **kwargs) -> AccuracyCalculator:
    """pytorch-metric-learning's AccuracyCalculator as the harness used it before its own search."""
    return AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=knn_func or CustomKNN(LpDistance(normalize_embeddings=True)),
        device=torch.device("cpu"),
        **kwargs,
    )


def _retrieval_problem(seed: int, ties: bool):
    """Classes of about 500 references (each query ranks a few hundred to a thousand candidates,
    more than one sorting chunk), one class absent from the reference."""
    g = torch.Generator().manual_seed(seed)
    ref, ref_labels = torch.randn(2000, 6, generator=g), torch.randint(0, 4, (2000,), generator=g)
    query, query_labels = torch.randn(90, 6, generator=g), torch.randint(0, 5, (90,), generator=g)
    ref[:, 0] += ref_labels
    query[:, 0] += query_labels  # class 4 is absent from the reference: "lone" queries
    if ties:  # duplicated references across classes and queries equal to references
        ref[1::3] = ref[0::3][: len(ref[1::3])]
        query[::4] = ref[: len(query[::4])]
    return query, query_labels, ref, ref_labels


SEARCHES = {  # threshold exact, from a 1-in-16 sample, and one that is too tight (redone with all)
    "exact": {},
    "sampled": {"EXACT_UP_TO": 100},
    "too-tight": {"EXACT_UP_TO": 100, "SAFETY_SIGMAS": -3.0},
}


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("way", SEARCHES)
def test_retrieval_equals_accuracy_calculator(way, ties, monkeypatch):
    """Equal to the calculator handed neighbours in distance order, ties by position; and to
    the calculator as the harness used it (``torch.topk``, whose order of equal float32
    distances is arbitrary) up to that order."""
    for name, value in SEARCHES[way].items():
        monkeypatch.setattr(neighbours, name, value)
    for seed in range(2):
        query, query_labels, ref, ref_labels = _retrieval_problem(seed, ties)
        ours = retrieval_metrics(query, query_labels, ref, ref_labels)
        checks = [(_stable_knn, 1e-12)] + ([] if ties else [(None, 1e-5)])
        for knn, rel in checks:
            plain = _calculator(knn).get_accuracy(query, query_labels, ref, ref_labels)
            averaged = _calculator(knn, avg_of_avgs=True).get_accuracy(query, query_labels, ref, ref_labels)
            for name, key in (
                ("precision_at_1", "precision_at_1"),
                ("r_precision", "r_precision"),
                ("mean_average_precision_at_r", "map_at_r"),
            ):
                assert ours[key] == pytest.approx(plain[name], rel=rel, abs=0)
                assert ours[f"{key}_per_class"] == pytest.approx(averaged[name], rel=rel, abs=0)


@pytest.mark.parametrize("way", SEARCHES)
def test_search_finds_the_nearest_in_distance_order_ties_by_position(way, monkeypatch):
    for name, value in SEARCHES[way].items():
        monkeypatch.setattr(neighbours, name, value)
    query, query_labels, ref, ref_labels = _retrieval_problem(0, ties=True)
    expected = _stable_knn(query, 7, ref)[1]
    assert torch.equal(search(query, ref, 7, block=16).nearest, expected)
    assert torch.equal(search(query, ref, 7, query_labels, ref_labels, block=16).nearest, expected)


def test_threshold_takes_every_reference_at_the_rth_distance():
    """Two squared distances one float apart whose square roots are one distance tie at the
    R-th place: the threshold takes both, so the position can order them."""
    low = torch.tensor(1.7, dtype=torch.float32)
    high = torch.nextafter(low, torch.tensor(2.0))
    while neighbours._distance(high.clone()) != neighbours._distance(low.clone()):
        low, high = high, torch.nextafter(high, torch.tensor(2.0))
    # A query whose products with the references are just their last column: [0, 0, 1] . [r, 1, v] = v.
    query = torch.tensor([[0.0, 0.0, 1.0]])
    reference = torch.tensor(
        [[0.0, 1.0, 0.5], [0.0, 1.0, float(low)], [0.0, 1.0, float(high)], [0.0, 1.0, 3.0]]
    )
    floor = neighbours._thresholds(query, reference, 2, None)
    assert floor[0] == float(high)


def test_search_shares_cdists_distances():
    """The search ranks by the library's distance values themselves (float32 ties included)."""
    g = torch.Generator().manual_seed(3)
    query, ref = torch.randn(300, 128, generator=g), torch.randn(2000, 128, generator=g)
    expected = LpDistance(normalize_embeddings=True)(query, ref)
    q = neighbours._augmented(torch.nn.functional.normalize(query, dim=1), query=True)
    r = neighbours._augmented(torch.nn.functional.normalize(ref, dim=1), query=False)
    assert torch.equal(neighbours._distance(q[:256] @ r.T), expected[:256])


def test_precision_at_1_by_hand():
    ref = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    ref_labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.05], [0.95, 0.3], [0.2, 1.0]])
    query_labels = torch.tensor([0, 1, 1])  # the second query's nearest is class 0: a miss
    m = retrieval_metrics(query, query_labels, ref, ref_labels)
    assert m["precision_at_1"] == pytest.approx(2 / 3)
    assert m["precision_at_1_per_class"] == pytest.approx((1 + 1 / 2) / 2)


class _Flatten:
    """A method whose embedding is the image itself; optionally a head."""

    def __init__(self, head: bool = False):
        self.head = head

    def embed(self, images):
        return images.reshape(len(images), -1)

    def predict_head(self, images):
        return self.embed(images)[:, :3] if self.head else None


def _tiny_splits() -> Splits:
    g = torch.Generator().manual_seed(0)
    proto = torch.eye(4)[:3].reshape(3, 2, 2)

    def split(n):
        labels = torch.arange(3).repeat(n)
        return ImageSet(
            proto[labels] + 0.05 * torch.rand(len(labels), 2, 2, generator=g), labels, CODES, 0, "t"
        )

    return Splits(split(6), split(3), split(3))


def test_evaluate_returns_json_ready_record_parts():
    out = evaluate(_Flatten(head=True), _tiny_splits(), embed_sample=5)
    assert out["headline_rule"] == "knn5"
    assert set(out["metrics_by_rule"]) == {"prototype", "mean_image", "knn1", "knn5", "head"}
    assert out["metrics"]["accuracy"] == pytest.approx(1.0)
    assert out["metrics"]["precision_at_1"] == pytest.approx(1.0)
    assert set(out["val_metrics_by_rule"]["knn5"]) >= {"accuracy", "escape_rate"}
    assert len(out["embedding_2d"]["x"]) == 5 and set(out["embedding_2d"]["label"]) <= set(CODES)
    assert out["embed_images_per_s"] > 0 and out["eval_s"] > 0
    text = json.dumps(out, allow_nan=False)
    assert "NaN" not in text and not any(
        isinstance(v, float) and math.isnan(v) for v in out["metrics"].values()
    )


def test_evaluate_unknown_rule_lists_the_rules():
    with pytest.raises(BenchError, match="knn5"):
        evaluate(_Flatten(), _tiny_splits(), headline_rule="knn7")
    with pytest.raises(BenchError, match="does not apply"):
        evaluate(_Flatten(head=False), _tiny_splits(), headline_rule="head")


def test_mean_images_is_per_class_mean():
    images = torch.tensor([[[1.0]], [[3.0]], [[5.0]]])
    assert mean_images(images, torch.tensor([0, 0, 1]), 3).flatten().tolist() == [2.0, 5.0, 0.0]


def test_val_and_test_splits_share_one_search_and_its_tie_order():
    """Both splits take their k-NN neighbours from the same search, whose ties go to the
    earlier training image: the same images score the same as val and as test."""
    codes = ("a", "b", "c")
    train = ImageSet(
        torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[-1.0, 0.1]], [[-1.0, -0.1]], [[0.1, -1.0]]]),
        torch.tensor([1, 0, 2, 2, 2]),
        codes,
        0,
        "t",
    )
    # Query 0 is equally far from training images 0 (class 1) and 1 (class 0).
    queries = ImageSet(torch.tensor([[[1.0, 1.0]], [[0.9, -0.2]]]), torch.tensor([0, 1]), codes, 0, "q")
    out = evaluate(_Flatten(), Splits(train, queries, queries), embed_sample=0)
    for rule, metrics in out["metrics_by_rule"].items():
        assert out["val_metrics_by_rule"][rule] == compact_metrics(metrics)
    knn1 = out["metrics_by_rule"]["knn1"]["confusion"]["matrix"]
    assert knn1[0] == [0, 1, 0]  # the tie went to training image 0, class 1
