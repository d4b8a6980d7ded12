"""The contract every registered method meets (one parametrized test set over the registry)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from bench.core.errors import BenchError
from bench.sampling.budget import Budget
from methods import create_method, list_methods
from methods.base import RECORD_EVERY, TrainingDiverged
from methods.trunks import build_trunk

SMALL = Budget(steps=150, batch_images=96)
SAMPLING_KEYS = {
    "anchor_counts",
    "negative_counts",
    "tuples",
    "active_share",
    "steps",
    "images_seen",
    "forward_images",
}
METHODS = list_methods(label_free=False)  # the label-free baselines: tests/test_operating.py


def knn_accuracy(method, train, test, k: int = 5) -> float:
    knn = KNeighborsClassifier(n_neighbors=k).fit(method.embed(train.images).numpy(), train.labels.numpy())
    return float(knn.score(method.embed(test.images).numpy(), test.labels.numpy()))


@pytest.fixture(scope="module")
def fitted(digits_splits):
    """fitted(name, seed): a method fitted on digits at the SMALL budget, cached per module."""
    cache = {}

    def get(name: str, seed: int = 0):
        if (name, seed) not in cache:
            calls = []
            method = create_method(name)
            method.fit(
                digits_splits.train, budget=SMALL, seed=seed, progress=lambda s, t: calls.append((s, t))
            )
            cache[name, seed] = (method, calls)
        return cache[name, seed][0]

    get.calls = lambda name: cache[name, 0][1]
    return get


@pytest.mark.parametrize("name", METHODS)
def test_embeddings_have_the_contract_shape(name, fitted, digits_splits):
    method = fitted(name)
    emb = method.embed(digits_splits.test.images)
    assert emb.shape == (len(digits_splits.test), SMALL.embedding_size)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert method.embed(digits_splits.test.images[:0]).shape == (0, SMALL.embedding_size)
    assert method.embed(digits_splits.test.images, batch_size=7).allclose(emb, atol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_learns_clearly_above_chance(name, fitted, digits_splits):
    # Chance is 0.1 on ten balanced digits; a working method is far above it at 150 steps.
    assert knn_accuracy(fitted(name), digits_splits.train, digits_splits.test) > 0.8


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_embeddings_other_seed_different(name, fitted, digits_splits):
    again = create_method(name).fit(digits_splits.train, budget=SMALL, seed=0)
    images = digits_splits.test.images
    assert torch.equal(again.embed(images), fitted(name).embed(images))
    assert not torch.equal(fitted(name, seed=1).embed(images), fitted(name).embed(images))


@pytest.mark.parametrize("name", METHODS)
def test_params_and_sampling_record_are_json(name, fitted, digits_splits):
    method = fitted(name)
    params = method.get_params()
    assert params["trunk"] == "mlp"
    json.dumps(params)
    assert create_method(name, **params).get_params() == params

    sampling = method.sampling_
    json.dumps(sampling)
    assert set(sampling) == SAMPLING_KEYS
    assert set(sampling["anchor_counts"]) == set(digits_splits.train.classes)
    assert sampling["steps"] == SMALL.steps
    assert sampling["images_seen"] == SMALL.steps * SMALL.batch_images
    assert 0 < sampling["forward_images"] <= sampling["images_seen"]
    assert sampling["tuples"] > 0 and 0.0 <= sampling["active_share"] <= 1.0
    assert method.classes_ == digits_splits.train.classes


def test_nominal_images_per_step_are_equal_across_methods(fitted, digits_splits):
    c, steps, batch = digits_splits.train.num_classes, SMALL.steps, SMALL.batch_images
    triplets, pairs = batch // 3, batch // 2
    mean_anchor = fitted("mean-anchor-triplet").sampling_
    assert mean_anchor["tuples"] == steps * triplets
    assert sum(mean_anchor["anchor_counts"].values()) == steps * triplets
    assert mean_anchor["forward_images"] == steps * (c + 2 * triplets)  # one anchor forward per class
    siamese = fitted("siamese").sampling_
    assert siamese["tuples"] == steps * pairs and siamese["forward_images"] == steps * 2 * pairs
    for name in ("mined-triplet", "classifier"):
        sampling = fitted(name).sampling_
        assert sum(sampling["anchor_counts"].values()) == steps * batch
        assert sampling["forward_images"] == steps * batch


@pytest.mark.parametrize("name", METHODS)
def test_progress_and_loss_history(name, fitted):
    method = fitted(name)
    calls = fitted.calls(name)
    assert calls[-1] == (SMALL.steps, SMALL.steps)
    assert [s for s, _ in calls] == list(range(RECORD_EVERY, SMALL.steps + 1, RECORD_EVERY))
    assert len(method.loss_history_) == math.ceil(SMALL.steps / RECORD_EVERY)
    assert all(math.isfinite(v) for v in method.loss_history_)


@pytest.mark.parametrize("name", METHODS)
def test_predict_head_only_for_the_classifier(name, fitted, digits_splits):
    logits = fitted(name).predict_head(digits_splits.test.images)
    if name == "classifier":
        assert logits.shape == (len(digits_splits.test), digits_splits.train.num_classes)
        accuracy = (logits.argmax(1) == digits_splits.test.labels).double().mean()
        assert accuracy > 0.8
    else:
        assert logits is None


@pytest.mark.parametrize("name", METHODS)
def test_fit_draws_only_training_images(name, digits_splits):
    """Every image a step forwards is a training image: never one of val or test."""
    train, val, test = digits_splits.train, digits_splits.val, digits_splits.test
    method = create_method(name)
    drawn = []
    draw = method._draw

    def recording_draw(ctx, prepared, weights):
        batch = draw(ctx, prepared, weights)
        drawn.append(batch.positions.clone())
        return batch

    method._draw = recording_draw
    method.fit(train, val=val, budget=Budget(steps=20, batch_images=96, eval_every=10), seed=0)
    positions = torch.cat(drawn)
    assert positions.min() >= 0 and positions.max() < len(train)
    used = set(train.index[positions].tolist())
    assert used <= set(train.index.tolist())
    assert used.isdisjoint(val.index.tolist()) and used.isdisjoint(test.index.tolist())


@pytest.mark.parametrize("name", METHODS)
def test_divergence_raises_with_the_step(name, digits_splits):
    method = create_method(name)
    loss = method._loss
    calls = []

    def poisoned_loss(ctx, prepared, batch):
        out = loss(ctx, prepared, batch)
        calls.append(1)
        if len(calls) == 23:
            out.loss = out.loss * float("nan")
        return out

    method._loss = poisoned_loss
    with pytest.raises(TrainingDiverged, match=r"^loss diverged \(nan\) at step 23$") as err:
        method.fit(digits_splits.train, budget=Budget(steps=40, batch_images=48), seed=0)
    assert err.value.step == 23 and isinstance(err.value, RuntimeError)


def test_validation_selects_a_checkpoint(digits_splits):
    budget = Budget(steps=60, batch_images=96, eval_every=20)
    method = create_method("siamese").fit(digits_splits.train, val=digits_splits.val, budget=budget, seed=0)
    checkpoint = method.checkpoint_
    assert [step for step, _ in checkpoint["history"]] == [20, 40, 60]
    assert checkpoint["val_accuracy"] == max(acc for _, acc in checkpoint["history"])
    json.dumps(checkpoint)
    assert create_method("siamese").fit(digits_splits.train, budget=Budget(steps=10)).checkpoint_ is None


@pytest.mark.parametrize("name", METHODS)
def test_fit_keeps_only_hyperparameters_and_learned_state(name, fitted):
    """Training data and per-fit state pass through the hooks as arguments (scikit-learn never
    keeps X on the estimator): after fit, every attribute is a hyperparameter or learned."""
    method = fitted(name)
    params = set(method.get_params())
    learned = {key for key in vars(method) if key not in params}
    assert all(key.endswith("_") and not key.startswith("_") for key in learned), learned
    assert {"model_", "classes_", "budget_", "sampling_", "loss_history_", "checkpoint_"} <= learned
    assert not [v for v in vars(method).values() if torch.is_tensor(v)]  # no training tensors


def test_fit_leaves_the_global_rng_alone(digits_splits):
    state = torch.get_rng_state()
    create_method("classifier").fit(digits_splits.train, budget=Budget(steps=5, batch_images=32), seed=3)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("siamese", {"pair_positive_share": 1.5}, "pair_positive_share=1.5 is not a number in [0, 1]"),
        ("siamese", {"margin": 0}, "siamese: margin=0 is not a positive number"),
        ("siamese", {"normalize": 1}, "siamese: normalize=1 is not a boolean"),
        (
            "mean-anchor-triplet",
            {"anchor": "median"},
            "mean-anchor-triplet: anchor='median' is not one of 'image', 'embedding'",
        ),
        ("mean-anchor-triplet", {"anchor_sample": 2.0}, "anchor_sample=2.0 is not an integer >= 1"),
        ("mined-triplet", {"miner": "random"}, "miner='random' is not one of 'semihard', 'hard', 'all'"),
        ("mined-triplet", {"images_per_class": 1}, "images_per_class=1 is not an integer >= 2"),
        ("mined-triplet", {"margin": float("nan")}, "margin=nan is not a non-negative number"),
        ("classifier", {"trunk": "vit"}, "classifier: trunk='vit' is not one of 'cnn', 'mlp', 'resnet'"),
        ("classifier", {"label_smoothing": -0.1}, "label_smoothing=-0.1 is not a number in [0, 1]"),
    ],
)
def test_bad_hyperparameter_values_are_one_line_bench_errors(name, params, message, digits_splits):
    with pytest.raises(BenchError) as err:
        create_method(name, **params).fit(digits_splits.train, budget=Budget(steps=2))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", METHODS)
def test_every_hyperparameter_declares_its_constraints_and_the_defaults_meet_them(name):
    method = create_method(name)
    assert set(type(method).parameter_constraints()) == set(method.get_params())
    method.check_params()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mean-anchor-triplet", {"anchor": "embedding"}),
        ("mean-anchor-triplet", {"negatives": "class", "normalize": False}),
        ("mined-triplet", {"miner": "batch-hard"}),
        ("siamese", {"trunk": "cnn"}),
    ],
)
def test_variants_train(name, params, digits_splits):
    method = create_method(name, **params).fit(
        digits_splits.train, budget=Budget(steps=20, batch_images=96), seed=0
    )
    assert method.embed(digits_splits.test.images).shape == (len(digits_splits.test), 128)
    assert method.get_params() == {**create_method(name).get_params(), **params}


def test_embedding_anchor_counts_its_forwards(digits_splits):
    method = create_method("mean-anchor-triplet", anchor="embedding", anchor_sample=4)
    method.fit(digits_splits.train, budget=Budget(steps=10, batch_images=96), seed=0)
    c = digits_splits.train.num_classes
    assert method.sampling_["forward_images"] == 10 * (4 * c + 2 * 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", METHODS)
def test_fits_on_cuda(name, digits_splits):
    method = create_method(name).fit(digits_splits.train, budget=Budget(steps=20), seed=0, device="cuda")
    emb = method.embed(digits_splits.test.images)
    assert emb.device.type == "cpu" and emb.shape == (len(digits_splits.test), 128)


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_default_budget_reaches_target_accuracy(name, digits_splits):
    """The acceptance bar: each method alone on digits at the default budget, 5-NN >= 0.93."""
    method = create_method(name).fit(digits_splits.train, budget=Budget(), seed=0)
    assert knn_accuracy(method, digits_splits.train, digits_splits.test) >= 0.93


def test_embedding_anchor_is_the_mean_embedding_of_its_class_sample_with_its_gradient(digits_splits):
    """``anchor="embedding"``: each class's anchor is the mean of the embeddings of its
    ``anchor_sample`` images drawn this step (not its mean image), and the loss backpropagates
    through them: value and gradient equal the triplet formula computed here by hand."""
    method = create_method("mean-anchor-triplet", anchor="embedding", anchor_sample=4)
    loss = method._loss
    checked = []

    def checking_loss(ctx, prepared, batch):
        out = loss(ctx, prepared, batch)
        if not checked:
            model, images, parts, c = method.model_, ctx.train_images, batch.parts, ctx.num_classes
            drawn = ctx.train_labels[parts["sample"]].view(c, 4)
            assert torch.equal(drawn, torch.arange(c).unsqueeze(1).expand(c, 4))  # 4 images of each class
            unit = torch.nn.functional.normalize
            anchors = unit(model(images[parts["sample"]]).view(c, 4, -1).mean(1)[parts["anchors"]], dim=1)
            pos = unit(model(images[parts["positives"]]), dim=1)
            neg = unit(model(images[parts["negatives"]]), dim=1)
            margin = ((anchors - pos) ** 2).sum(1) - ((anchors - neg) ** 2).sum(1) + method.margin
            expected = torch.relu(margin).mean()
            params = list(model.parameters())
            got = torch.autograd.grad(out.loss, params, retain_graph=True)
            want = torch.autograd.grad(expected, params)
            checked.append((out.loss.item(), expected.item(), got, want))
        return out

    method._loss = checking_loss
    method.fit(digits_splits.train, budget=Budget(steps=2, batch_images=96), seed=0)
    value, expected, got, want = checked[0]
    assert value > 0 and value == pytest.approx(expected, rel=1e-5)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)


def test_the_cnn_trunk_is_a_conv_net_that_learns(digits_splits):
    """More than shapes: the cnn trunk convolves, and a classifier on it learns digits (its own
    head, which an untrained trunk leaves at chance, is right on over 80% of the test split)."""
    method = create_method("classifier", trunk="cnn")
    method.fit(digits_splits.train, budget=Budget(steps=100, batch_images=96), seed=0)
    layers = [type(m).__name__ for m in method.model_]
    assert layers == [
        "_AddChannel", "Conv2d", "ReLU", "Conv2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear",
    ]  # fmt: skip
    # One set of weights for every image size (the adaptive pool), unlike the MLP's first layer.
    sizes = {
        sum(p.numel() for p in build_trunk("cnn", shape, 128).parameters())
        for shape in ((8, 8), (28, 28), (39, 36))
    }
    assert sizes == {sum(p.numel() for p in method.model_.parameters())}
    assert method.loss_history_[0] > 1.5 and method.loss_history_[-1] < method.loss_history_[0] / 3
    logits = method.predict_head(digits_splits.test.images)
    assert (logits.argmax(1) == digits_splits.test.labels).double().mean() > 0.8
