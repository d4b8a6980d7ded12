"""One training step of every registered method at the default batch size."""

from __future__ import annotations

import math

import pytest
import torch

from bench.sampling.budget import Budget
from methods import create_method, list_methods
from methods.trunks import build_trunk


@pytest.mark.parametrize("name", list_methods(label_free=False))
def test_training_step(benchmark, name, inspection_train, default_budget):
    """A 1-step fit: the step plus fit's fixed setup (trunk, optimizer, class index)."""
    benchmark.group = "training step (default batch)"
    benchmark.extra_info["method"] = name
    benchmark.extra_info["batch_images"] = default_budget.batch_images
    budget = Budget(steps=1, batch_images=default_budget.batch_images)
    method = create_method(name)

    def step():
        method.fit(inspection_train, budget=budget, seed=0)

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    # The step that was timed drew a full batch, scored it and moved the trunk off its seeded start.
    assert method.sampling_["steps"] == 1 and method.sampling_["images_seen"] == budget.batch_images
    assert method.sampling_["tuples"] > 0 and all(math.isfinite(v) for v in method.loss_history_)
    torch.manual_seed(0)
    start = build_trunk("mlp", inspection_train.image_shape, budget.embedding_size)
    moved = [
        not torch.equal(a, b) for a, b in zip(start.parameters(), method.model_.parameters(), strict=True)
    ]
    assert all(moved)
