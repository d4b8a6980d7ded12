"""Embedding 10,000 images with every registered method's trunk."""

from __future__ import annotations

import pytest

from bench.profile.evaluation import synthetic_splits
from bench.sampling.budget import Budget
from methods import create_method, list_methods


@pytest.mark.parametrize("name", list_methods())
def test_embed_10k(benchmark, name, embed_images):
    benchmark.group = "embed 10,000 images"
    benchmark.extra_info["method"] = name
    train = synthetic_splits(references=200, queries=10).train
    method = create_method(name).fit(train, budget=Budget(steps=1, batch_images=24), seed=0)
    out = benchmark.pedantic(method.embed, args=(embed_images,), rounds=3, iterations=1)
    assert out.shape == (embed_images.shape[0], Budget().embedding_size)
