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


@pytest.mark.parametrize("miner", ["semihard", "hard", "all", "batch-hard"])
def test_mined_triplet_loss(benchmark, miner, default_budget):
    """The mined triplet's loss alone, forward and backward, on a default batch (192 images of
    48 draws of 4 from 19 classes, 128-d): distances, counting, gradient."""
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner

    from methods.mined_triplet_loss import mined_triplet_loss

    benchmark.group = "mined triplet loss (forward + backward, default batch)"
    benchmark.extra_info["miner"] = miner
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 19, (default_budget.batch_images // 4,), generator=g).repeat_interleave(4)
    emb = torch.randn(len(labels), default_budget.embedding_size, generator=g, requires_grad=True)

    def step():
        emb.grad = None
        out = mined_triplet_loss(emb, labels, 0.2, miner)
        out.loss.backward()
        return float(out.loss.detach())

    loss = benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=2)
    # The library's miner and loss on the same embeddings.
    distance = LpDistance(normalize_embeddings=True)
    mine = (
        BatchHardMiner(distance=distance)
        if miner == "batch-hard"
        else TripletMarginMiner(0.2, distance=distance, type_of_triplets=miner)
    )
    expected = TripletMarginLoss(0.2, distance=distance)(emb.detach(), labels, mine(emb.detach(), labels))
    assert loss > 0 and abs(loss - float(expected)) <= 1e-5 * float(expected)
