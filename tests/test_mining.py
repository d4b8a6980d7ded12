"""The vectorized miners select exactly the triplets pytorch-metric-learning's miners select."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner

import methods.mined_triplet as mined_triplet
from methods.mined_triplet import mine_batch_hard, mine_margin_triplets


def _layout(kind: str, gen: torch.Generator) -> torch.Tensor:
    """Label layouts the training loop produces, plus edge cases."""
    if kind == "groups-of-4":  # 24 class draws of 4 images from 10 classes (repeats merge groups)
        return torch.randint(0, 10, (24,), generator=gen).repeat_interleave(4)
    if kind == "two-classes":
        return torch.randint(0, 2, (64,), generator=gen)
    if kind == "imbalanced":
        return torch.cat([torch.zeros(50, dtype=torch.int64), torch.arange(1, 8).repeat_interleave(2)])
    if kind == "singletons":  # anchors without positives
        return torch.cat([torch.arange(20), torch.tensor([3, 3, 7])])
    if kind == "one-class":  # no negatives at all
        return torch.zeros(16, dtype=torch.int64)
    raise AssertionError(kind)


LAYOUTS = ["groups-of-4", "two-classes", "imbalanced", "singletons", "one-class"]


def _embeddings(n: int, gen: torch.Generator, duplicates: bool) -> torch.Tensor:
    emb = torch.randn(n, 16, generator=gen)
    if duplicates:  # the same image drawn twice in one batch: tied distances
        emb[1::5] = emb[0::5][: emb[1::5].shape[0]]
    return emb


def _as_set(triplets) -> torch.Tensor:
    """The triplets as a sorted tensor of keys: equal keys mean equal sets, in any order."""
    a, p, n = (t.long() for t in triplets)
    return torch.sort((a * 100_000 + p) * 100_000 + n).values


def _mine(miner, distance, emb, labels):
    mat = distance(emb, emb)
    if miner == "batch-hard":
        return mine_batch_hard(mat, labels, distance.is_inverted)
    kind, margin = miner
    return mine_margin_triplets(mat, labels, margin, kind, distance.is_inverted)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["semihard", "hard", "all", "easy"])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_margin_miner_matches_library(layout, kind, margin, normalize):
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        labels = _layout(layout, gen)
        emb = _embeddings(labels.numel(), gen, duplicates=seed == 2)
        distance = LpDistance(normalize_embeddings=normalize, p=2, power=1)
        expected = TripletMarginMiner(margin=margin, type_of_triplets=kind, distance=distance)(emb, labels)
        got = _mine((kind, margin), distance, emb, labels)
        assert all(t.dtype == torch.int64 for t in got)
        assert torch.equal(_as_set(got), _as_set(expected))
        # Same order too: by anchor, then positive, then negative.
        for g, e in zip(got, expected, strict=True):
            assert torch.equal(g, e)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("normalize", [True, False])
def test_batch_hard_matches_library(layout, normalize):
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        labels = _layout(layout, gen)
        emb = _embeddings(labels.numel(), gen, duplicates=seed == 2)
        distance = LpDistance(normalize_embeddings=normalize, p=2, power=1)
        expected = BatchHardMiner(distance=distance)(emb, labels)
        got = _mine("batch-hard", distance, emb, labels)
        for g, e in zip(got, expected, strict=True):
            assert torch.equal(g, e)


@pytest.mark.parametrize("miner", ["batch-hard", ("semihard", 0.2), ("hard", 0.1)])
def test_inverted_distance_matches_library(miner):
    gen = torch.Generator().manual_seed(4)
    labels = _layout("groups-of-4", gen)
    emb = _embeddings(labels.numel(), gen, duplicates=False)
    distance = CosineSimilarity()
    if miner == "batch-hard":
        expected = BatchHardMiner(distance=distance)(emb, labels)
    else:
        expected = TripletMarginMiner(margin=miner[1], type_of_triplets=miner[0], distance=distance)(
            emb, labels
        )
    assert torch.equal(_as_set(_mine(miner, distance, emb, labels)), _as_set(expected))


def test_default_batch_matches_library():
    """The training default: 192 images, 48 draws of 4 from 10 classes, semihard at 0.2."""
    gen = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 10, (48,), generator=gen).repeat_interleave(4)
    emb = _embeddings(labels.numel(), gen, duplicates=True)
    distance = LpDistance(normalize_embeddings=True, p=2, power=1)
    expected = TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=distance)(emb, labels)
    got = _mine(("semihard", 0.2), distance, emb, labels)
    assert expected[0].numel() > 0
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)


def test_chunked_mining_matches_unchunked(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    labels = _layout("groups-of-4", gen)
    emb = _embeddings(labels.numel(), gen, duplicates=False)
    mat = LpDistance()(emb, emb)
    whole = mine_margin_triplets(mat, labels, 0.5, "all")
    monkeypatch.setattr(mined_triplet, "MINING_CHUNK", 1000)  # forces many chunks
    chunked = mine_margin_triplets(mat, labels, 0.5, "all")
    for g, e in zip(chunked, whole, strict=True):
        assert torch.equal(g, e)


def test_mined_triplet_fit_uses_library_selection(digits_splits):
    """One training step's mined triplets equal the library miner's on the step's embeddings."""
    from bench.sampling.budget import Budget
    from methods import create_method

    train = digits_splits.train
    method = create_method("mined-triplet")
    method.fit(train, budget=Budget(steps=2, batch_images=64, embedding_size=16), seed=0)
    emb = method.embed(train.images[:64])
    labels = train.labels[:64]
    distance = LpDistance(normalize_embeddings=True, p=2, power=1)
    expected = TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=distance)(emb, labels)
    assert torch.equal(_as_set(method._mine(emb, labels)), _as_set(expected))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("positives", [0, 5, 32])
def test_contrastive_losses_match_library(normalize, positives):
    """Siamese's direct contrastive formula equals pytorch-metric-learning's ContrastiveLoss
    (values and gradients) on the same pair indices."""
    from pytorch_metric_learning.losses import ContrastiveLoss
    from pytorch_metric_learning.reducers import DoNothingReducer

    from methods.siamese import contrastive_losses

    pairs = 32
    gen = torch.Generator().manual_seed(positives)
    emb = torch.randn(2 * pairs, 8, generator=gen) * (1.0 if normalize else 0.3)
    emb[pairs] = emb[0]  # an identical positive pair: distance 0
    first = torch.arange(pairs)
    second = first + pairs
    k = positives
    loss_fn = ContrastiveLoss(
        pos_margin=0.1,
        neg_margin=1.0,
        distance=LpDistance(normalize_embeddings=normalize),
        reducer=DoNothingReducer(),
    )
    ref = emb.clone().requires_grad_(True)
    out = loss_fn(ref, indices_tuple=(first[:k], second[:k], first[k:], second[k:]))
    parts = [out[key]["losses"] for key in ("pos_loss", "neg_loss")]
    expected = torch.cat([p.reshape(-1) for p in parts if torch.is_tensor(p)])
    mine = emb.clone().requires_grad_(True)
    got = contrastive_losses(mine[:pairs], mine[pairs:], k, 0.1, 1.0, normalize)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    expected.mean().backward()
    got.mean().backward()
    assert torch.isfinite(mine.grad).all()
    # The library's matrix distance has no useful gradient at distance 0; compare elsewhere.
    torch.testing.assert_close(mine.grad[1:pairs], ref.grad[1:pairs], rtol=1e-3, atol=1e-4)


def _library_loss_and_grad(distance, emb, labels, margin, kind, reduction):
    """pytorch-metric-learning's miner + TripletMarginLoss, reduced as the method reduces."""
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.reducers import DoNothingReducer

    from methods.base import per_tuple_reduce

    leaf = emb.clone().requires_grad_(True)
    triplets = TripletMarginMiner(margin=margin, type_of_triplets=kind, distance=distance)(emb, labels)
    loss_fn = TripletMarginLoss(margin=margin, distance=distance, reducer=DoNothingReducer())
    losses = loss_fn(leaf, labels, indices_tuple=triplets)["loss"]["losses"]
    if not torch.is_tensor(losses):
        return triplets, None, None, None
    loss = per_tuple_reduce(losses, reduction)
    loss.backward()
    return triplets, losses, loss, leaf.grad


@pytest.mark.parametrize("layout", ["groups-of-4", "two-classes", "imbalanced", "singletons"])
@pytest.mark.parametrize("kind", ["semihard", "hard", "all"])
@pytest.mark.parametrize("reduction", ["mean-nonzero", "mean"])
@pytest.mark.parametrize("distance_name", ["l2-normalized", "l2", "cosine"])
def test_count_based_loss_has_the_library_gradient_bit_for_bit(layout, kind, reduction, distance_name):
    """``margin_triplet_loss`` never lists the triplets, yet its gradient is exactly the
    library's, and so are the triplet and active counts."""
    from methods.mined_triplet import margin_triplet_loss

    distance = {
        "l2-normalized": LpDistance(normalize_embeddings=True, p=2, power=1),
        "l2": LpDistance(normalize_embeddings=False, p=2, power=1),
        "cosine": CosineSimilarity(),
    }[distance_name]
    margin = 1.0 if distance_name == "l2" else 0.2
    compared = 0
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        labels = _layout(layout, gen)
        emb = _embeddings(labels.numel(), gen, duplicates=seed == 3)
        triplets, losses, expected, expected_grad = _library_loss_and_grad(
            distance, emb, labels, margin, kind, reduction
        )
        leaf = emb.clone().requires_grad_(True)
        out = margin_triplet_loss(distance(leaf, leaf), labels, margin, kind, reduction, distance.is_inverted)
        if expected is None:
            assert out is None
            continue
        out.loss.backward()
        assert torch.equal(leaf.grad, expected_grad)
        torch.testing.assert_close(out.loss, expected.detach(), rtol=1e-5, atol=1e-6)
        assert int(out.tuples) == triplets[0].numel()
        assert int(out.active) == int((losses > 0).sum())
        assert torch.equal(out.negative_columns, torch.bincount(triplets[2], minlength=labels.numel()))
        compared += 1
    assert compared > 0


def test_count_based_loss_is_the_same_in_small_blocks(monkeypatch):
    from methods.mined_triplet import margin_triplet_loss

    gen = torch.Generator().manual_seed(8)
    labels = _layout("groups-of-4", gen)
    emb = _embeddings(labels.numel(), gen, duplicates=True)
    distance = LpDistance(normalize_embeddings=True)
    grads = []
    for chunk in (mined_triplet.MINING_CHUNK, 500):
        monkeypatch.setattr(mined_triplet, "MINING_CHUNK", chunk)
        leaf = emb.clone().requires_grad_(True)
        margin_triplet_loss(distance(leaf, leaf), labels, 0.3, "all").loss.backward()
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


def test_count_based_loss_returns_none_when_nothing_is_mined():
    from methods.mined_triplet import margin_triplet_loss

    labels = torch.tensor([0, 0, 1, 1])
    emb = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # classes far apart
    mat = LpDistance(normalize_embeddings=True)(emb, emb)
    assert margin_triplet_loss(mat, labels, 0.2, "semihard") is None


def test_repeated_sums_add_one_term_at_a_time():
    import numpy as np

    from methods.mined_triplet import _repeated_sums

    for count in (3, 7, 1000, 123457):
        g = torch.ones(()) / count
        table = _repeated_sums(g, 300)
        total = np.float32(0)
        for k in range(1, 301):
            total = total + np.float32(g.item())
            assert table[k].item() == total


def test_count_based_loss_ignores_non_finite_distances_outside_its_triplets():
    """As the library's loss: a NaN distance no mined triplet uses leaves the loss finite."""
    from methods.mined_triplet import margin_triplet_loss

    gen = torch.Generator().manual_seed(2)
    labels = _layout("groups-of-4", gen)
    emb = _embeddings(labels.numel(), gen, duplicates=False)
    mat = LpDistance(normalize_embeddings=True)(emb, emb)
    clean = margin_triplet_loss(mat, labels, 0.2, "semihard")
    mat[0, 0] = float("nan")  # the diagonal is never an anchor-positive or anchor-negative entry
    out = margin_triplet_loss(mat, labels, 0.2, "semihard")
    assert torch.isfinite(out.loss)
    assert torch.equal(out.loss, clean.loss)
