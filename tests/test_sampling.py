"""The vectorized sampler: plan-following class draws, within-class and other-class images.

Statistical checks use 100,000 draws and 4.5-sigma binomial bounds per class (a false
alarm has probability below 1e-5 per class), with fixed generator seeds, so they are both
meaningful and deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.core.errors import BenchError
from bench.sampling.budget import Budget
from bench.sampling.plan import BalancePlan
from methods import create_method
from methods.sampling import ClassIndex, plan_weight_table

DRAWS = 100_000
SIGMAS = 4.5


def assert_binomial(counts: torch.Tensor, probabilities: torch.Tensor, n: int) -> None:
    """Every count within SIGMAS standard deviations of n * p."""
    for k, (count, p) in enumerate(zip(counts.tolist(), probabilities.tolist(), strict=True)):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) <= SIGMAS * sd + 1e-9, (
            f"class {k}: {count} vs expected {n * p:.0f} (sd {sd:.1f})"
        )


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def train(digits_splits):
    return digits_splits.train


@pytest.fixture(scope="module")
def index(train):
    return ClassIndex(train.labels, train.num_classes)


def good_x5(classes) -> torch.Tensor:
    w = torch.ones(len(classes), dtype=torch.float64)
    w[0] = 5.0
    return w / w.sum()


def test_class_draws_follow_plan_weights(index, train):
    weights = good_x5(train.classes)
    classes = index.draw_classes(weights, DRAWS, gen())
    assert_binomial(torch.bincount(classes, minlength=train.num_classes), weights, DRAWS)


def test_images_drawn_within_class_belong_to_it_and_cover_it(index, train):
    classes = index.draw_classes(torch.ones(train.num_classes, dtype=torch.float64), DRAWS, gen(1))
    positions = index.draw_in_class(classes, gen(2))
    assert torch.equal(train.labels[positions], classes)
    # Uniform within a class: each of class 3's images is hit about equally often.
    counts = torch.bincount(positions[classes == 3], minlength=len(train))[train.labels == 3]
    n3 = int((classes == 3).sum())
    assert_binomial(counts, torch.full((len(counts),), 1.0 / len(counts), dtype=torch.float64), n3)


def test_negatives_by_image_never_share_the_anchor_class_and_weight_classes_by_size(index, train):
    anchors = torch.full((DRAWS,), 4, dtype=torch.int64)
    negatives = train.labels[index.draw_outside_class(anchors, gen(3))]
    assert not (negatives == 4).any()
    sizes = train.class_counts().double()
    sizes[4] = 0
    assert_binomial(torch.bincount(negatives, minlength=train.num_classes), sizes / sizes.sum(), DRAWS)


def test_negatives_by_class_are_uniform_over_other_classes(index, train):
    anchors = torch.full((DRAWS,), 0, dtype=torch.int64)
    negatives = train.labels[index.draw_negatives(anchors, gen(4), by="class")]
    assert not (negatives == 0).any()
    expected = torch.full((train.num_classes,), 1.0 / (train.num_classes - 1), dtype=torch.float64)
    expected[0] = 0
    assert_binomial(torch.bincount(negatives, minlength=train.num_classes), expected, DRAWS)


def test_negatives_never_share_the_anchor_class_for_mixed_anchors(index, train):
    anchors = index.draw_classes(good_x5(train.classes), DRAWS, gen(5))
    for by in ("image", "class"):
        negatives = index.draw_negatives(anchors, gen(6), by=by)
        assert not (train.labels[negatives] == anchors).any()


def test_draws_are_reproducible_from_the_generator_seed(index, train):
    weights = good_x5(train.classes)
    a = index.draw_in_class(index.draw_classes(weights, 1000, gen(7)), gen(8))
    b = index.draw_in_class(index.draw_classes(weights, 1000, gen(7)), gen(8))
    assert torch.equal(a, b)


def test_a_class_without_training_images_is_a_bench_error():
    with pytest.raises(BenchError, match="no training images"):
        ClassIndex(torch.tensor([0, 0, 2, 2]), 3)


def test_weight_table_static_and_moving(train):
    static = BalancePlan.uniform(train.classes)
    assert plan_weight_table(static, 50).shape == (1, train.num_classes)
    start = good_x5(train.classes)
    end = torch.full((train.num_classes,), 1.0 / train.num_classes, dtype=torch.float64)
    moving = BalancePlan("progressive", start, train.classes, end=end)
    table = plan_weight_table(moving, 50)
    assert table.shape == (50, train.num_classes)
    assert torch.allclose(table[0], start) and torch.allclose(table[-1], end)
    assert torch.allclose(table[20], moving.weights_at(20, 50))


@pytest.mark.parametrize("name", ["mean-anchor-triplet", "siamese"])
def test_fit_draws_anchor_classes_by_the_plan(name, train):
    """End to end: a fit's recorded anchor counts follow a good-x5 plan."""
    weights = good_x5(train.classes)
    plan = BalancePlan("good-x5", weights, train.classes)
    budget = Budget(steps=30, batch_images=192)
    method = create_method(name).fit(train, plan=plan, budget=budget, seed=0)
    counts = torch.tensor([method.sampling_["anchor_counts"][c] for c in train.classes])
    assert_binomial(counts, weights, int(counts.sum()))
    assert method.sampling_["negative_counts"][train.classes[0]] < counts[0]
