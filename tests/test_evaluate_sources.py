"""``evaluate`` takes its references, class centres and mean images from the training split only:
poisoned validation and test images, which would win their own queries if they were references,
must not change a single prediction."""

from __future__ import annotations

import pytest
import torch

from bench.datasets.image_set import ImageSet, Splits
from bench.evaluation.evaluate import evaluate

CLASSES = ("0", "1", "2")
CLEAN_PER_CLASS = 5
POISON = 60  # more than the training images of class 0, so a leak into a class mean shows


class Flatten:
    """A fitted method whose embedding is the image itself (2 x 2 pixels -> 4 numbers)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(len(images), -1).float()


def _images(direction: int, n: int) -> torch.Tensor:
    """``n`` images along axis ``direction`` of the 4-d pixel space, spread a little along axis 3."""
    x = torch.zeros(n, 4)
    x[:, direction] = 1.0
    x[:, 3] = torch.linspace(0.0, 0.05, n)
    return x.view(n, 2, 2)


def _set(per_class: int, poison: int) -> ImageSet:
    images = [_images(c, per_class) for c in range(3)]
    labels = [torch.full((per_class,), c) for c in range(3)]
    # Good parts (class 0) that look like class 1: pixels e1 + 0.5 e0, nearer class 1 than class 0.
    poisoned = torch.zeros(poison, 4)
    poisoned[:, 0], poisoned[:, 1] = 0.5, 1.0
    return ImageSet(
        torch.cat([*images, poisoned.view(poison, 2, 2)]),
        torch.cat([*labels, torch.zeros(poison, dtype=torch.long)]),
        CLASSES,
        0,
        "poisoned",
    )


@pytest.fixture(scope="module")
def result():
    splits = Splits(train=_set(10, 0), val=_set(CLEAN_PER_CLASS, POISON), test=_set(CLEAN_PER_CLASS, POISON))
    return evaluate(Flatten(), splits)


RULES = ("prototype", "mean_image", "knn1", "knn5")


@pytest.mark.parametrize("rule", RULES)
def test_poisoned_test_and_val_images_are_judged_by_the_training_split_alone(result, rule):
    # From the training split every poisoned image is nearest class 1 (its images, their centre,
    # their mean image): only the clean images are right. Had a poisoned image of val or test
    # been a reference, or entered the class-0 centre or mean image, it would be judged 0.
    n = 3 * CLEAN_PER_CLASS + POISON
    test = result["metrics_by_rule"][rule]
    assert test["accuracy"] == pytest.approx(3 * CLEAN_PER_CLASS / n)
    assert test["overkill_rate"] == pytest.approx(POISON / (POISON + CLEAN_PER_CLASS))
    assert test["escape_rate"] == 0.0
    assert result["val_metrics_by_rule"][rule]["accuracy"] == pytest.approx(3 * CLEAN_PER_CLASS / n)


def test_retrieval_references_are_the_training_split(result):
    # precision@1: the nearest reference has the query's class; for a poisoned query that would
    # be another poisoned image (class 0) if val or test images were references.
    n = 3 * CLEAN_PER_CLASS + POISON
    assert result["metrics"]["precision_at_1"] == pytest.approx(3 * CLEAN_PER_CLASS / n)
