"""What real images need, shared by every method: augmentation declared by the dataset and applied in
the fit's data path, the residual trunk, and the budget's schedule and weight decay."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.core.errors import BenchError
from bench.datasets.augment import Augmentation, check_augment, parse_augment
from bench.datasets.image_set import ImageSet
from bench.datasets.validate import check_image_set
from bench.grid.config import CellConfig, GridConfig, load_grid_toml
from bench.sampling.budget import Budget
from methods import create_method, list_methods
from methods.trunks import build_trunk

FLIPS = ("hflip", "vflip")


def _toy(augment: tuple[str, ...] = (), n_per_class: int = 24, side: int = 8) -> ImageSet:
    """Random images (no two alike, none symmetric) of three classes, shifted apart by class."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    images = torch.rand((3 * n_per_class, side, side), generator=g) + labels.view(-1, 1, 1).float()
    return ImageSet(images, labels, ("good", "a", "b"), good_index=0, name="toy", augment=augment)


def test_augmentation_flips_each_image_at_random_and_draws_nothing_without_transforms():
    images = _toy().images[:64]
    g = torch.Generator().manual_seed(3)
    out = Augmentation(FLIPS).apply(images, g)
    variants = torch.stack([images, images.flip(2), images.flip(1), images.flip(1).flip(2)])  # (4, n, h, w)
    which = (variants == out.unsqueeze(0)).flatten(2).all(2)  # (4, n): which variant each image became
    assert bool((which.sum(0) == 1).all())  # every image is exactly one of its four flips
    assert bool(which.all(1).logical_not().all()) and bool(which.any(1).all())  # each variant occurs
    again = Augmentation(("vflip", "hflip")).apply(images, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # one seed, one augmentation; the order of the names is canonical
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert Augmentation().apply(images, g) is images
    assert torch.equal(g.get_state(), state)  # no transforms: the generator is not touched


def test_augment_names_are_checked():
    assert check_augment(["vflip", "hflip", "vflip"]) == FLIPS
    assert parse_augment("vflip, hflip") == FLIPS and parse_augment("none") == ()
    with pytest.raises(BenchError, match="unknown augmentation 'rot90'; known: hflip, vflip"):
        parse_augment("hflip,rot90")
    with pytest.raises(BenchError, match="augment must be a list"):
        check_augment("hflip")
    with pytest.raises(BenchError, match="dataset 'toy': unknown augmentation 'blur'"):
        check_image_set(_toy(augment=("blur",)))


def _forwarded(name: str, train: ImageSet, monkeypatch) -> list[torch.Tensor]:
    """The image batches ``name``'s trunk forwards while it fits ``train`` (4 steps)."""
    import methods.base

    seen: list[torch.Tensor] = []

    def spying_trunk(trunk, image_shape, embedding_size):
        model = build_trunk(trunk, image_shape, embedding_size)
        model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
        return model

    monkeypatch.setattr(methods.base, "build_trunk", spying_trunk)
    create_method(name).fit(train, budget=Budget(steps=4, batch_images=24), seed=0)
    return seen


@pytest.mark.parametrize("name", list_methods(label_free=False))
def test_every_method_forwards_the_shared_augmentation(name, monkeypatch):
    """On: the images a method forwards are flips of the stored ones, many not the stored ones
    themselves. Off: every forwarded image is a stored one (or, for the mean-anchor triplet, a
    class mean of them), and the fit is the one it was before augmentation existed."""
    plain, flipped = _toy(), _toy(augment=FLIPS)
    stored = plain.images.flatten(1)
    means = torch.stack([plain.images[plain.labels == c].mean(0) for c in range(3)]).flatten(1)
    orbit = torch.cat(
        [plain.images, plain.images.flip(2), plain.images.flip(1), plain.images.flip(1).flip(2)]
    )

    def rows_in(batches, pool):
        rows = torch.cat(batches).flatten(1)
        found = (rows.unsqueeze(1) == pool.flatten(1).unsqueeze(0)).all(2).any(1)
        is_mean = torch.isclose(rows.unsqueeze(1), means.unsqueeze(0), atol=1e-6).all(2).any(1)
        return found[~is_mean]

    off = _forwarded(name, plain, monkeypatch)
    assert bool(rows_in(off, stored).all())
    on = _forwarded(name, flipped, monkeypatch)
    assert bool(rows_in(on, orbit).all())  # only flips of training images...
    assert 0.5 < float(rows_in(on, stored).logical_not().double().mean()) < 0.95  # ...3/4 of them flipped
    # Off, the fit draws nothing more than before: the same embeddings as with no augment field.
    a = create_method(name).fit(plain, budget=Budget(steps=4, batch_images=24), seed=0)
    b = create_method(name).fit(
        dataclasses.replace(plain, augment=()), budget=Budget(steps=4, batch_images=24), seed=0
    )
    assert torch.equal(a.embed(plain.images), b.embed(plain.images))


def test_a_cell_states_its_augment_only_when_given():
    default = CellConfig("elpv", "classifier", "uniform", 0)
    none, flips = (dataclasses.replace(default, augment=a) for a in ((), FLIPS))
    assert "augment" not in default.to_dict()  # the dataset's own: the hash of before
    assert len({default.hash, none.hash, flips.hash}) == 3
    for cell in (default, none, flips):
        assert CellConfig.from_dict(cell.to_dict()) == cell
    grid = GridConfig(
        dataset="elpv", methods=("classifier",), schemes=("uniform",), augment=["vflip", "hflip"]
    )
    assert grid.augment == FLIPS and grid.cells()[0].augment == FLIPS
    with pytest.raises(BenchError, match="unknown augmentation"):
        GridConfig(methods=("classifier",), schemes=("uniform",), augment=("twist",))


def test_the_grid_file_and_the_flag_carry_augment(tmp_path, capsys):
    from bench.cli.main import main

    path = tmp_path / "grid.toml"
    path.write_text(GridConfig(methods=("classifier",), schemes=("uniform",), augment=FLIPS).to_toml())
    assert GridConfig(**load_grid_toml(path)).augment == FLIPS
    assert "augment" not in GridConfig(methods=("classifier",), schemes=("uniform",)).to_toml()
    assert main(["run", "--config", str(path), "--dry-run"]) == 0
    assert 'augment = ["hflip", "vflip"]' in capsys.readouterr().out
    assert main(["run", "--config", str(path), "--augment", "none", "--dry-run"]) == 0
    assert "augment = []" in capsys.readouterr().out
    assert main(["run", "--config", str(path), "--augment", "hflip,spin", "--dry-run"]) == 2
    assert "unknown augmentation 'spin'" in capsys.readouterr().err


def test_the_runner_applies_the_cell_augment_and_records_it(monkeypatch):
    import bench.grid.runner as runner

    monkeypatch.setattr(runner, "prepare_data", lambda *a: _split(_toy(augment=FLIPS)))
    cell = CellConfig("toy", "classifier", "uniform", 0, inputs="raw")
    assert runner.prepare_inputs(cell)[0].train.augment == FLIPS
    assert runner.prepare_inputs(dataclasses.replace(cell, augment=()))[0].train.augment == ()
    record = runner.run_cell(dataclasses.replace(cell, budget=Budget(steps=2, batch_images=12)))
    assert record["status"] == "ok" and record["dataset"]["augment"] == list(FLIPS)


def _split(data: ImageSet):
    from bench.datasets import split_dataset

    return split_dataset(data, seed=0)


def test_the_resnet_trunk_embeds_any_size_and_trains_every_weight():
    for shape in ((8, 8), (48, 48), (39, 36)):
        model = build_trunk("resnet", shape, 16)
        x = torch.randn(5, *shape)
        out = model(x)
        assert out.shape == (5, 16)
        out.square().mean().backward()
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Conv2d", "BatchNorm2d", "AdaptiveAvgPool2d", "Linear"} <= kinds
    model.eval()  # batch statistics in training, running ones in evaluation: one image alone embeds
    assert model(x[:1]).shape == (1, 16)


def test_a_budget_without_schedule_or_weight_decay_keeps_its_dict_and_adam():
    # lr None: each method's own default rate (written into the cell's params by the grid)
    assert Budget().to_dict() == {"steps": 600, "batch_images": 192, "embedding_size": 128, "eval_every": 0}
    assert Budget(lr=1e-3).to_dict() == {
        "steps": 600,
        "batch_images": 192,
        "lr": 1e-3,
        "embedding_size": 128,
        "eval_every": 0,
    }
    tuned = Budget(schedule="onecycle", weight_decay=0.05)
    assert tuned.to_dict()["schedule"] == "onecycle" and Budget(**tuned.to_dict()) == tuned
    with pytest.raises(BenchError, match="schedule must be one of constant, onecycle"):
        Budget(schedule="step")
    with pytest.raises(BenchError, match="weight_decay >= 0"):
        Budget(weight_decay=-1.0)


def test_onecycle_warms_up_and_anneals_the_learning_rate(monkeypatch):
    import methods.base

    rates, build = [], methods.base.build_schedule

    def recording(optimizer, schedule, steps):
        sched = build(optimizer, schedule, steps)
        step = sched.step
        sched.step = lambda: (rates.append(optimizer.param_groups[0]["lr"]), step())[1]
        assert type(optimizer).__name__ == "AdamW"
        return sched

    monkeypatch.setattr(methods.base, "build_schedule", recording)
    budget = Budget(steps=20, batch_images=12, lr=0.01, schedule="onecycle", weight_decay=0.01)
    create_method("classifier").fit(_toy(), budget=budget, seed=0)
    assert len(rates) == 20 and rates[0] == pytest.approx(0.01 / 25)
    assert max(rates) == pytest.approx(0.01, rel=0.05) and rates[-1] < 0.01 / 100
