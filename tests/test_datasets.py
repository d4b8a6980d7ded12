"""The dataset registry, the built-in sources, validation and the listing."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import BenchError
from bench.datasets import (
    ImageSet,
    check_image_set,
    describe_datasets,
    fashion_mnist,
    list_datasets,
    load_dataset,
)
from bench.datasets.describe import describe_image_set


def test_builtin_sources_are_registered():
    assert {"inspection", "digits", "fashion-mnist"} <= set(list_datasets())


def test_digits():
    ds = load_dataset("digits")
    assert len(ds) == 1797 and ds.num_classes == 10 and ds.image_shape == (8, 8)
    assert ds.good_index == 0 and float(ds.images.max()) <= 1.0


def test_unknown_dataset_suggests_a_close_name():
    with pytest.raises(BenchError, match="did you mean 'digits'") as info:
        load_dataset("digit")
    assert "\n" not in str(info.value)


def test_unknown_option_is_a_bench_error():
    with pytest.raises(BenchError, match="does not take option"):
        load_dataset("digits", seed=1)


def toy(**changes) -> ImageSet:
    fields = {
        "images": torch.rand(6, 3, 3),
        "labels": torch.tensor([0, 1, 0, 1, 0, 1]),
        "classes": ("0", "1"),
        "good_index": 0,
        "name": "toy",
    }
    fields.update(changes)
    return ImageSet(**fields)


def test_check_image_set_accepts_a_good_set():
    ds = toy()
    assert check_image_set(ds) is ds


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"images": torch.full((6, 3, 3), float("nan"))}, "NaN or inf"),
        ({"images": torch.rand(6, 9)}, r"\(n, h, w\)"),
        ({"images": torch.zeros(6, 3, 3, dtype=torch.uint8)}, "floating point"),
        ({"labels": torch.tensor([0, 1, 0, 1, 0, 2])}, "label indices span"),
        ({"labels": torch.zeros(6, dtype=torch.int64)}, "1 class"),
        ({"classes": ("0", "0")}, "duplicate"),
        ({"good_index": 5}, "good_index"),
    ],
)
def test_check_image_set_rejects_bad_sets(changes, problem):
    with pytest.raises(BenchError, match=problem) as info:
        check_image_set(toy(**changes))
    assert "\n" not in str(info.value)


def test_a_plugin_source_is_validated_too():
    from bench.datasets import register_dataset

    @register_dataset("test-nan-source")
    def nan_source() -> ImageSet:
        return toy(images=torch.full((6, 3, 3), float("inf")))

    with pytest.raises(BenchError, match="NaN or inf"):
        load_dataset("test-nan-source")


def test_describe_datasets_rows(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "absent")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    rows = {row["name"]: row for row in describe_datasets()}
    keys = {"name", "image_size", "classes", "images", "counts", "balance", "source", "inputs"}
    assert all(set(row) == keys for row in rows.values())
    assert (
        rows["inspection"]["inputs"]
        == "pixel: per-pixel train mean/std, std floor 0.0117 (0 of 1404 px raised)"
    )
    digits = load_dataset("digits")
    assert describe_image_set(digits, inputs="raw")["inputs"] == "raw: pixels as loaded"
    assert describe_image_set(digits, inputs="global")["inputs"].startswith(
        "global: one train mean/std (std 0.3"
    )
    insp = rows["inspection"]
    assert insp["image_size"] == "39x36" and insp["classes"] == 19
    assert insp["counts"] == {"train": 1380, "val": 345, "test": 575}
    assert sum(insp["counts"].values()) == insp["images"] == 2300
    assert insp["balance"] == "good 5.0x each defect"
    assert rows["digits"]["images"] == 1797 and rows["digits"]["image_size"] == "8x8"
    assert rows["fashion-mnist"]["source"] == "not installed: apt-get install dataset-fashion-mnist"
