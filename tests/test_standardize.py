"""Input standardization: training-split statistics only, the same map on every split, in the
runner's data path for every method; ``raw`` is today's data, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.core.errors import BenchError
from bench.datasets import ImageSet, Splits, load_dataset, split_dataset
from bench.datasets.standardize import STD_FLOOR_SHARE, fit_input_stats, standardize_splits
from bench.grid import runner
from bench.grid.config import CellConfig, GridConfig
from bench.grid.record import Record
from bench.sampling.budget import Budget
from methods import registry
from methods.classifier import Classifier

ROOT = Path(__file__).resolve().parent.parent
CODES = ("0", "1", "2")


def _part(images: torch.Tensor, start: int) -> ImageSet:
    labels = torch.arange(len(images)) % len(CODES)
    index = torch.arange(start, start + len(images))
    return ImageSet(images, labels, CODES, 0, "toy", "synthetic", index)


def _toy(poison: float | None = None) -> Splits:
    """Random 5 x 4 images; val and test hold ``poison`` everywhere when given."""
    g = torch.Generator().manual_seed(0)
    train = torch.rand(30, 5, 4, generator=g) * torch.linspace(0.1, 1.0, 20).view(5, 4)
    val, test = torch.rand(12, 5, 4, generator=g), torch.rand(12, 5, 4, generator=g)
    if poison is not None:
        val, test = torch.full_like(val, poison), torch.full_like(test, poison)
    return Splits(_part(train, 0), _part(val, 30), _part(test, 42))


@pytest.mark.parametrize("inputs", ["pixel", "global"])
def test_statistics_come_from_the_training_split_only(inputs):
    clean, clean_stats = standardize_splits(_toy(), inputs)
    poisoned, stats = standardize_splits(_toy(poison=1e6), inputs)
    assert torch.equal(stats.mean, clean_stats.mean) and torch.equal(stats.std, clean_stats.std)
    assert torch.equal(poisoned.train.images, clean.train.images)
    # The one map, fitted on train, applied to val and test as they are.
    raw_train = _toy().train.images.double()
    dims = (0,) if inputs == "pixel" else (0, 1, 2)
    mean, std = raw_train.mean(dims), raw_train.std(dims, correction=0)
    expected = ((1e6 - mean) / std).float().expand(12, 5, 4)
    assert torch.allclose(poisoned.val.images, expected) and torch.allclose(poisoned.test.images, expected)
    standardized = clean.train.images.double()
    assert torch.allclose(standardized.mean(dims), torch.zeros((), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        standardized.std(dims, correction=0), torch.ones((), dtype=torch.float64), atol=1e-5
    )
    assert torch.equal(poisoned.val.index, torch.arange(30, 42))  # provenance kept


def test_std_floor_keeps_a_constant_training_pixel_finite():
    splits = _toy()
    train = splits.train.images.clone()
    train[:, 0, 0] = 0.25  # constant in training, not in the test split
    splits = Splits(_part(train, 0), splits.val, splits.test)
    out, stats = standardize_splits(splits, "pixel")
    floor = STD_FLOOR_SHARE * float(train.double().std(correction=0))
    assert stats.floored == 1 and stats.std[0, 0] == pytest.approx(floor)
    assert torch.isfinite(out.test.images).all()
    assert torch.equal(out.train.images[:, 0, 0], torch.zeros(30))


def test_raw_inputs_are_todays_tensors_bit_for_bit():
    splits = split_dataset(load_dataset("inspection", n_per_defect=5), seed=3)
    out, stats = standardize_splits(splits, "raw")
    assert stats is None and out is splits
    fresh = split_dataset(load_dataset("inspection", n_per_defect=5), seed=3)
    for a, b in ((out.train, fresh.train), (out.val, fresh.val), (out.test, fresh.test)):
        assert torch.equal(a.images, b.images) and a.images.dtype == b.images.dtype == torch.float32


def test_unknown_inputs_is_a_clear_error():
    with pytest.raises(BenchError, match="unknown inputs 'zscore'"):
        standardize_splits(_toy(), "zscore")
    with pytest.raises(BenchError, match="unknown inputs"):
        GridConfig(methods=("siamese",), schemes=("uniform",), inputs="zscore")
    with pytest.raises(BenchError, match="raw inputs have no statistics"):
        fit_input_stats(_toy().train.images, "raw")


def test_a_record_without_inputs_means_raw_and_keeps_its_hash():
    # The hash and config of a record made before `inputs` existed: the first cell of the
    # raw-pixel inspection study (results/inspection/results.jsonl at commit bfd87ac).
    record = json.loads((ROOT / "tests" / "fixtures" / "record-before-inputs.json").read_text())
    assert "inputs" not in record["config"]
    cell = Record.from_dict({**record, "status": "ok"}).config  # the record reader fills it in
    assert cell.inputs == "raw" and cell.hash == record["hash"]
    # A new grid defaults to pixel, a different cell (and hash) from the raw one.
    new = GridConfig(methods=(cell.method,), schemes=(cell.scheme,), seeds=(cell.seed,)).cells()[0]
    assert new.inputs == "pixel" and new.hash != CellConfig.from_dict({**new.to_dict(), "inputs": "raw"}).hash
    again = CellConfig.from_dict(json.loads(json.dumps(new.to_dict())))
    assert again.inputs == "pixel" and again.hash == new.hash
    chosen = GridConfig(methods=("siamese",), schemes=("uniform",), inputs="global").cells()[0]
    assert chosen.inputs == "global" and chosen.hash not in (new.hash, cell.hash)


def test_dry_run_and_config_file_carry_inputs(tmp_path, capsys):
    assert main(["run", "--method", "siamese", "--scheme", "uniform", "--dry-run"]) == 0
    assert 'inputs = "pixel"' in capsys.readouterr().out
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["siamese"]\nschemes = ["uniform"]\ninputs = "global"\n')
    assert main(["run", "--config", str(config), "--dry-run"]) == 0
    assert 'inputs = "global"' in capsys.readouterr().out
    assert main(["run", "--config", str(config), "--inputs", "raw", "--dry-run"]) == 0
    assert 'inputs = "raw"' in capsys.readouterr().out


class ImageSpy(Classifier):
    """The classifier, keeping the images fit receives."""

    seen: dict = {}

    def fit(self, train, val=None, **kw):
        ImageSpy.seen.update(train=train.images.clone(), val=val.images.clone())
        return super().fit(train, val, **kw)


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setitem(registry.METHODS.entries, "test-image-spy", ImageSpy)
    yield ImageSpy
    ImageSpy.seen.clear()


@pytest.mark.parametrize("inputs", ["pixel", "raw"])
def test_runner_hands_every_method_the_standardized_splits(inputs, spy, monkeypatch):
    poisoned = _toy(poison=1e6)
    monkeypatch.setattr(runner, "prepare_data", lambda dataset, options, seed: poisoned)
    cell = CellConfig("toy", "test-image-spy", "uniform", 0, budget=Budget(steps=3, batch_images=12))
    cell = CellConfig.from_dict({**cell.to_dict(), "inputs": inputs})
    record = runner.run_cell(cell)
    assert record["status"] == "ok", record.get("error")
    if inputs == "raw":
        assert torch.equal(spy.seen["train"], poisoned.train.images)
        assert record["dataset"]["inputs"] == {"mode": "raw"}
        return
    clean, stats = standardize_splits(_toy(), "pixel")
    assert torch.equal(spy.seen["train"], clean.train.images)  # val/test poison never reached it
    assert torch.equal(spy.seen["val"], stats.apply(poisoned.val.images))
    assert record["dataset"]["inputs"] == stats.describe()


def test_tuning_trials_get_the_same_standardized_splits(monkeypatch):
    # bench tune fits its trials on prepare_cell's splits: the cell's inputs apply there too.
    monkeypatch.setattr(runner, "prepare_data", lambda dataset, options, seed: _toy(poison=1e6))
    cell = CellConfig("toy", "classifier", "uniform", 0)
    splits, plan = runner.prepare_cell(cell)
    clean, _ = standardize_splits(_toy(), "pixel")
    assert torch.equal(splits.train.images, clean.train.images) and plan.classes == CODES
    raw = CellConfig.from_dict({**cell.to_dict(), "inputs": "raw"})
    assert torch.equal(runner.prepare_cell(raw)[0].train.images, _toy().train.images)
