"""The mined triplet trains on pytorch-metric-learning's triplets, loss and gradient.

Training never lists its triplets (``methods/mined_triplet_loss.py`` counts them). These tests
run the real training step (``MinedTriplet._loss`` inside ``fit``) or the loss function on
hand-made ties, and hold what it computed to the library's ``TripletMarginMiner`` /
``BatchHardMiner`` + ``TripletMarginLoss`` with ``AvgNonZeroReducer`` / ``MeanReducer`` on the
same embeddings: the same triplets (counts, active counts, negatives per image, exactly), the
loss to relative 1e-5 and the gradient to relative 1e-4 of its largest entry.
"""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner
from pytorch_metric_learning.reducers import AvgNonZeroReducer, DoNothingReducer, MeanReducer

from bench.datasets.image_set import ImageSet
from bench.sampling.budget import Budget
from methods import create_method
from methods.mined_triplet_loss import cdist, distances, mined_triplet_loss
from methods.triplet_counts import mine_batch_hard

MINERS = ["semihard", "hard", "all", "batch-hard"]


class ExactLpDistance(LpDistance):
    """``LpDistance`` through cdist's direct path: the same distances up to rounding, and the
    gradient of a zero distance is zero. The library's matrix-product path takes the square
    root of the squared distance's rounding noise there and divides by it, so where one image
    is drawn twice its gradient is noise (or NaN when that noise is exactly 0)."""

    def compute_mat(self, query_emb, ref_emb):
        ref = query_emb if ref_emb is None else ref_emb
        return torch.cdist(query_emb, ref, compute_mode="donot_use_mm_for_euclid_dist")


def _library(emb, labels, miner, margin, reduction, normalize, distance=None):
    """The library's triplets, per-triplet losses, reduced loss and gradient on ``emb``."""
    mining = LpDistance(normalize_embeddings=normalize)
    if miner == "batch-hard":
        triplets = BatchHardMiner(distance=mining)(emb, labels)
    else:
        triplets = TripletMarginMiner(margin=margin, type_of_triplets=miner, distance=mining)(emb, labels)
    distance = distance or mining
    losses = TripletMarginLoss(margin=margin, distance=distance, reducer=DoNothingReducer())(
        emb, labels, indices_tuple=triplets
    )["loss"]["losses"]
    reducer = AvgNonZeroReducer() if reduction == "mean-nonzero" else MeanReducer()
    leaf = emb.detach().clone().requires_grad_(True)
    loss = TripletMarginLoss(margin=margin, distance=distance, reducer=reducer)(
        leaf, labels, indices_tuple=triplets
    )
    loss.backward()
    losses = losses if torch.is_tensor(losses) else emb.new_zeros(0)
    return {"triplets": triplets, "losses": losses.detach(), "loss": loss.detach(), "grad": leaf.grad}


def _assert_close_to(grad, expected, rows=None):
    rows = torch.ones(len(grad), dtype=torch.bool) if rows is None else rows
    scale = expected.abs().max()
    torch.testing.assert_close(grad[rows], expected[rows], rtol=1e-4, atol=1e-4 * float(scale))


def _training_step(params: dict, train: ImageSet, batch_images: int, seed: int = 0):
    """Fit one step and capture what ``_loss`` saw and computed: the batch labels, the
    embeddings, their gradient from the step's backward, and the step's ``StepLoss``."""
    method = create_method("mined-triplet", **params)
    seen: dict = {}
    real_loss = method._loss

    def spy(ctx, prepared, batch):
        def keep(module, inputs, emb):
            seen["emb"] = emb.detach().clone()
            emb.register_hook(lambda grad: seen.__setitem__("grad", grad.clone()))

        handle = method.model_.register_forward_hook(keep)
        try:
            out = real_loss(ctx, prepared, batch)
        finally:
            handle.remove()
        seen["batch"], seen["out"] = batch, out
        return out

    method._loss = spy
    method.fit(train, budget=Budget(steps=1, batch_images=batch_images, embedding_size=16), seed=seed)
    return seen


def _drawn_twice() -> ImageSet:
    """Three images per class, two of them shared with another class: a 64-image batch draws
    most images several times and has pairs of classes whose embeddings coincide."""
    base = torch.rand(7, 8, 8, generator=torch.Generator().manual_seed(3))
    pick = torch.tensor([0, 1, 2, 1, 3, 4, 3, 5, 0, 6, 5, 2])
    labels = torch.arange(4).repeat_interleave(3)
    return ImageSet(base[pick], labels, ("a", "b", "c", "d"), None, "drawn-twice")


@pytest.mark.parametrize("data", ["digits", "drawn-twice"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("reduction", ["mean-nonzero", "mean"])
@pytest.mark.parametrize("miner", MINERS)
def test_training_step_matches_library(miner, reduction, normalize, data, digits_splits):
    train = digits_splits.train if data == "digits" else _drawn_twice()
    params = {"miner": miner, "reduction": reduction, "normalize": normalize, "margin": 0.2}
    seen = _training_step(params, train, batch_images=64)
    emb, labels, out = seen["emb"], seen["batch"].anchor_classes, seen["out"]
    ref = _library(emb, labels, miner, 0.2, reduction, normalize)
    a, _, n = ref["triplets"]

    assert a.numel() > 0
    assert int(out.tuples) == a.numel()
    assert int(out.active) == int((ref["losses"] > 0).sum())
    assert torch.equal(seen["batch"].negative_weights, torch.bincount(n, minlength=len(labels)))
    torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
    # Rows of images drawn twice: the library's gradient there divides rounding noise by a
    # distance of ~0; compare them with the library on exact distances, the rest with both.
    coincide = (emb[:, None] == emb[None, :]).all(-1)
    coincide.fill_diagonal_(False)
    exact = _library(
        emb, labels, miner, 0.2, reduction, normalize, ExactLpDistance(normalize_embeddings=normalize)
    )
    _assert_close_to(seen["grad"], exact["grad"])
    apart = ~coincide.any(1)
    _assert_close_to(seen["grad"], ref["grad"], rows=apart)
    assert int(apart.sum()) > len(labels) // 2 if data == "digits" else coincide.any()


def test_default_batch_matches_library():
    """The training default: 192 inspection images, 48 draws of 4 from 19 classes, semihard."""
    from bench.datasets import load_dataset, split_dataset

    train = split_dataset(load_dataset("inspection"), seed=0).train
    seen = _training_step({}, train, batch_images=192, seed=1)
    emb, labels, out = seen["emb"], seen["batch"].anchor_classes, seen["out"]
    ref = _library(emb, labels, "semihard", 0.2, "mean-nonzero", True)
    assert int(out.tuples) == ref["triplets"][0].numel() > 1000
    assert int(out.active) == int((ref["losses"] > 0).sum())
    torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
    exact = _library(emb, labels, "semihard", 0.2, "mean-nonzero", True, ExactLpDistance())
    _assert_close_to(seen["grad"], exact["grad"])


def _lattice(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct integer points: every distance is exact, so many margins are exactly 0 or
    exactly the margin (the boundaries of every test), and many distances tie."""
    g = torch.Generator().manual_seed(seed)
    points = torch.unique(torch.randint(-2, 3, (80, 3), generator=g), dim=0)[:40].float()
    emb = torch.cat([points, torch.zeros(len(points), 5)], 1)
    labels = torch.randint(0, 4, (len(points),), generator=g)
    return emb, labels


@pytest.mark.parametrize("reduction", ["mean-nonzero", "mean"])
@pytest.mark.parametrize("margin", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("miner", MINERS)
def test_exact_ties_and_boundaries_match_library(miner, margin, reduction):
    on_boundary = torch.zeros(2, dtype=torch.int64)
    for seed in range(3):
        emb, labels = _lattice(seed)
        ref = _library(emb, labels, miner, margin, reduction, normalize=False)
        leaf = emb.clone().requires_grad_(True)
        out = mined_triplet_loss(leaf, labels, margin, miner, reduction, normalize=False)
        out.loss.backward()
        a, p, n = ref["triplets"]
        assert int(out.tuples) == a.numel()
        assert int(out.active) == int((ref["losses"] > 0).sum())
        assert torch.equal(out.negative_columns, torch.bincount(n, minlength=len(labels)))
        torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
        _assert_close_to(leaf.grad, ref["grad"])
        dist = torch.cdist(emb, emb)
        same = labels[:, None] == labels[None, :]
        candidate = same[:, :, None] & ~same[:, None, :]  # (anchor, positive, negative)
        candidate[:, range(len(labels)), range(len(labels))] = False
        gap = (dist[:, None, :] - dist[:, :, None])[candidate]  # d_an - d_ap
        on_boundary += torch.stack([(gap == 0).sum(), (gap == margin).sum()])
    assert bool((on_boundary > 0).all())  # the data reach both boundaries of every test


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("miner", MINERS)
def test_margin_zero_ties_at_zero_distance_match_library(miner, normalize):
    """Margin 0: a triplet whose positive and negative both coincide with the anchor is mined by
    ``hard`` and ``all`` (t = 0 <= 0) but has zero loss. Points (1,0), (1,0), (1,0), (0,1) with
    labels 0, 0, 1, 0: the library's loss is sqrt(2) over 2 active triplets of 6 mined."""
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 0])
    ref = _library(
        emb, labels, miner, 0.0, "mean-nonzero", normalize, ExactLpDistance(normalize_embeddings=normalize)
    )
    leaf = emb.clone().requires_grad_(True)
    out = mined_triplet_loss(leaf, labels, 0.0, miner, normalize=normalize)
    out.loss.backward()
    expected = {"semihard": (0, 0), "hard": (6, 2), "all": (6, 2), "batch-hard": (3, 2)}[miner]
    assert (int(out.tuples), int(out.active)) == expected
    assert int(out.tuples) == ref["triplets"][0].numel()
    assert int(out.active) == int((ref["losses"] > 0).sum())
    torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
    if miner != "semihard":
        assert float(out.loss.detach()) == pytest.approx(2**0.5, rel=1e-6)
    _assert_close_to(leaf.grad, ref["grad"])


def _exact_gradient(emb, ref, normalize):
    """The gradient of the library's loss on its own triplets and active set, with each distance
    measured exactly (zero gradient where two images coincide). Through cdist's matrix product,
    coinciding images are apart by rounding noise, on which the library selects; recomputing its
    loss on exact distances (``ExactLpDistance``) would change which triplets are active."""
    a, p, n = ref["triplets"]
    active = ref["losses"] > 0
    leaf = emb.clone().requires_grad_(True)
    u = torch.nn.functional.normalize(leaf) if normalize else leaf
    dist = torch.cdist(u, u, compute_mode="donot_use_mm_for_euclid_dist")
    terms = dist[a[active], p[active]] - dist[a[active], n[active]]
    (terms.sum() / max(int(active.sum()), 1)).backward()
    return leaf.grad


def _drawn_with_ties(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images drawn from ``n // 3`` points, with labels drawn independently: the same point
    is often both an anchor's positive and its negative, so many distances are exactly 0."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randint(-2, 3, (n // 3, 6), generator=g).float()
    emb = points[torch.randint(0, len(points), (n,), generator=g)]
    return emb, torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("n", [24, 64])  # cdist's direct path, then its matrix-product path
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("miner", MINERS)
def test_random_margin_zero_batches_with_ties_match_library(miner, normalize, n):
    zero_ties = 0
    for seed in range(3):
        emb, labels = _drawn_with_ties(seed, n)
        ref = _library(emb, labels, miner, 0.0, "mean-nonzero", normalize)
        leaf = emb.clone().requires_grad_(True)
        out = mined_triplet_loss(leaf, labels, 0.0, miner, normalize=normalize)
        out.loss.backward()
        a, p, neg = ref["triplets"]
        assert int(out.tuples) == a.numel()
        assert int(out.active) == int((ref["losses"] > 0).sum())
        assert torch.equal(out.negative_columns, torch.bincount(neg, minlength=n))
        torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
        _assert_close_to(leaf.grad, _exact_gradient(emb, ref, normalize))
        dist = LpDistance(normalize_embeddings=normalize)(emb)
        zero_ties += int(((dist[a, p] == 0) & (dist[a, neg] == 0)).sum())
    if miner in ("hard", "all"):
        assert zero_ties > 0  # the data reach the case: d_ap = d_an = 0, mined, zero loss


@pytest.mark.parametrize("reduction", ["mean-nonzero", "mean"])
def test_batch_hard_triplet_at_exactly_the_margin_is_mined_but_not_active(reduction):
    """Points 0, 1 (class 0) and 2, 3 (class 1) on a line, margin 1: anchors 0 and 3 have
    d_an - d_ap = 1 exactly (zero loss), anchors 1 and 2 have 0."""
    emb = torch.zeros(4, 3)
    emb[:, 0] = torch.arange(4.0)
    labels = torch.tensor([0, 0, 1, 1])
    ref = _library(emb, labels, "batch-hard", 1.0, reduction, normalize=False)
    leaf = emb.clone().requires_grad_(True)
    out = mined_triplet_loss(leaf, labels, 1.0, "batch-hard", reduction, normalize=False)
    out.loss.backward()
    assert int(out.tuples) == 4 and int(out.active) == int((ref["losses"] > 0).sum()) == 2
    torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
    _assert_close_to(leaf.grad, ref["grad"])


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("seed", range(3))
def test_random_batches_match_library(miner, seed):
    """Loss function alone, normalized and not, on random batches with the training layout."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (24,), generator=g).repeat_interleave(4)
    emb = torch.randn(96, 16, generator=g)
    for normalize, margin in ((True, 0.2), (False, 1.0)):
        ref = _library(emb, labels, miner, margin, "mean-nonzero", normalize)
        leaf = emb.clone().requires_grad_(True)
        out = mined_triplet_loss(leaf, labels, margin, miner, normalize=normalize)
        out.loss.backward()
        assert int(out.tuples) == ref["triplets"][0].numel() > 0
        assert int(out.active) == int((ref["losses"] > 0).sum())
        torch.testing.assert_close(out.loss.detach(), ref["loss"], rtol=1e-5, atol=1e-7)
        _assert_close_to(leaf.grad, ref["grad"])


def test_nothing_mined_gives_zero_loss_and_gradient():
    labels = torch.tensor([0, 0, 1, 1])
    emb = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]], requires_grad=True)
    out = mined_triplet_loss(emb, labels, 0.2, "semihard")  # classes far apart: nothing mined
    out.loss.backward()
    assert int(out.tuples) == 0 and float(out.loss.detach()) == 0.0
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_non_finite_embedding_makes_the_loss_nan():
    """Training must stop (TrainingDiverged) rather than drop a NaN image from the selection."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (8,), generator=g).repeat_interleave(4)
    emb = torch.randn(32, 8, generator=g)
    emb[5, 2] = float("nan")
    for miner in MINERS:
        assert torch.isnan(mined_triplet_loss(emb, labels, 0.2, miner).loss)


@pytest.mark.parametrize("normalize", [True, False])
def test_batch_hard_selection_matches_library(normalize):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        labels = torch.cat([torch.randint(0, 6, (30,), generator=g), torch.tensor([7])])  # 7: no positive
        emb = torch.randn(31, 8, generator=g)
        distance = LpDistance(normalize_embeddings=normalize)
        expected = BatchHardMiner(distance=distance)(emb, labels)
        mat = distance(emb, emb)
        anchors, positives, negatives, d_ap, d_an = mine_batch_hard(mat, labels)
        for mine, theirs in zip((anchors, positives, negatives), expected, strict=True):
            assert torch.equal(mine, theirs)
        assert torch.equal(d_ap, mat[anchors, positives]) and torch.equal(d_an, mat[anchors, negatives])


@pytest.mark.parametrize("n", [3, 25, 26, 64, 192])
def test_cdist_is_torch_cdist_bit_for_bit(n):
    """The loss measures with the library's distance values, so its miner's tests agree."""
    g = torch.Generator().manual_seed(n)
    for emb in (
        torch.randn(n, 16, generator=g),
        torch.nn.functional.normalize(torch.randn(n, 128, generator=g)),
    ):
        assert torch.equal(cdist(emb), torch.cdist(emb, emb))


@pytest.mark.parametrize("n", [3, 25, 26, 64, 192])
@pytest.mark.parametrize("normalize", [True, False])
def test_distances_are_the_librarys_bit_for_bit(n, normalize):
    """The compiled normalization and cdist factors round as torch's operations: the embeddings
    as measured are ``F.normalize``'s and the distances ``torch.cdist``'s, zero rows, duplicated
    rows and tiny or huge scales included."""
    g = torch.Generator().manual_seed(n)
    for scale in (1e-20, 1.0, 1e3):
        emb = torch.randn(n, 128, generator=g) * scale
        emb[0] = 0
        emb[-1] = emb[1]
        u, norm, dist = distances(emb, normalize)
        expected = torch.nn.functional.normalize(emb, dim=1) if normalize else emb
        assert torch.equal(torch.from_numpy(u), expected)
        assert torch.equal(torch.from_numpy(dist), torch.cdist(expected, expected))
        assert (norm is None) == (not normalize)
        if normalize:
            assert torch.equal(torch.from_numpy(norm), emb.norm(dim=1, keepdim=True))


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
