"""One training step of every registered method at the default batch size."""

from __future__ import annotations

import pytest

from bench.sampling.budget import Budget
from methods import create_method, list_methods


@pytest.mark.parametrize("name", list_methods())
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
