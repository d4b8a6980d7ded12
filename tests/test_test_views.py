"""Test-time views: with a dataset's flips, every method's outputs are the mean over the flipped
views of the image, for all methods alike; without flips, evaluation is what it was."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.datasets.image_set import ImageSet, Splits
from bench.evaluation.evaluate import evaluate
from bench.evaluation.test_views import flip_views, with_test_views
from bench.sampling.budget import Budget
from methods import create_method
from tests.test_real_images import FLIPS


def _splits(augment: tuple[str, ...]) -> Splits:
    """Noisy images of three classes that overlap (so that the metrics are not all perfect),
    none symmetric, split a third each into train, validation and test."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(30)
    images = torch.rand((90, 8, 8), generator=g) + 0.15 * labels.view(-1, 1, 1).float()
    images[:, :2, :3] += 0.3 * (labels == 1).view(-1, 1, 1)  # a corner mark, not where a flip puts it
    data = ImageSet(images, labels, ("good", "a", "b"), good_index=0, name="toy", augment=augment)
    pick = torch.arange(len(data.labels))
    parts = [data.subset(pick[pick % 3 == k]) for k in range(3)]
    return Splits(*parts)


def _flipped(splits: Splits, dims: tuple[int, ...]) -> Splits:
    return dataclasses.replace(
        splits, test=dataclasses.replace(splits.test, images=splits.test.images.flip(dims))
    )


def test_the_views_are_every_combination_of_the_declared_flips():
    assert flip_views(()) == ((),)
    assert flip_views(("hflip",)) == ((), (2,))
    assert flip_views(FLIPS) == ((), (2,), (1,), (2, 1))


@pytest.mark.parametrize("name", ["classifier", "siamese", "knn-distance"])
def test_with_flips_a_flipped_test_image_scores_as_the_image_itself(name):
    splits = _splits(FLIPS)
    method = create_method(name)
    method.fit(splits.train, splits.val, budget=Budget(steps=6, batch_images=24), seed=0)
    as_loaded = evaluate(method, splits)
    assert as_loaded["test_views"] == 4
    for dims in ((2,), (1,), (1, 2)):
        mirrored = evaluate(method, _flipped(splits, dims))
        assert _scalars(mirrored["metrics"]) == pytest.approx(_scalars(as_loaded["metrics"]), abs=1e-6)
    # The method itself is not flip-invariant: the views are what makes the evaluation so.
    raw = method.embed(splits.test.images)
    assert not torch.allclose(raw, method.embed(splits.test.images.flip(2)), atol=1e-4)
    averaged = with_test_views(method, FLIPS)
    assert torch.allclose(
        averaged.embed(splits.test.images), averaged.embed(splits.test.images.flip(2)), atol=1e-5
    )


def test_without_flips_the_method_is_evaluated_as_it_is():
    splits = _splits(())
    method = create_method("classifier")
    method.fit(splits.train, splits.val, budget=Budget(steps=6, batch_images=24), seed=0)
    assert with_test_views(method, ()) is method
    result = evaluate(method, splits)
    assert result["test_views"] == 1
    assert _scalars(evaluate(method, _flipped(splits, (2,)))["metrics"]) != _scalars(result["metrics"])


def _scalars(metrics: dict) -> dict:
    """The metrics that are numbers, with the good-vs-defect ones (AUROC, AP) among them."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    flat.update(
        {f"sep.{k}": v for k, v in (metrics.get("separation") or {}).items() if isinstance(v, int | float)}
    )
    return flat
