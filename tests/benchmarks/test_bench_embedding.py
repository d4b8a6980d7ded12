"""Embedding 10,000 images with every registered method's trunk."""

from __future__ import annotations

import pytest
import torch

from bench.profile.evaluation import synthetic_splits
from bench.sampling.budget import Budget
from methods import create_method, list_methods


@pytest.mark.parametrize("name", list_methods(label_free=False))
def test_embed_10k(benchmark, name, embed_images):
    benchmark.group = "embed 10,000 images"
    benchmark.extra_info["method"] = name
    train = synthetic_splits(references=200, queries=10).train
    method = create_method(name).fit(train, budget=Budget(steps=1, batch_images=24), seed=0)
    out = benchmark.pedantic(method.embed, args=(embed_images,), rounds=3, iterations=1)
    # The trunk applied to the images in order (in one pass here), unit rows where the loss normalizes.
    with torch.no_grad():
        direct = method.model_(embed_images[:500])
    if method.normalize:
        direct = torch.nn.functional.normalize(direct, dim=1)
    assert out.shape == (embed_images.shape[0], Budget().embedding_size)
    torch.testing.assert_close(out[:500], direct, rtol=1e-4, atol=1e-5)
