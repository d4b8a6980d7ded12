"""The ``hf:`` loader on tiny datasets the tests build (no network)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.errors import BenchError
from bench.datasets import load_dataset
from bench.datasets.huggingface import load_hf


def gray_images(n: int, h: int = 6, w: int = 5, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L") for _ in range(n)]


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def saved_dict(tmp_path):
    """A DatasetDict with string labels, written by save_to_disk."""
    labels = ["11", "0", "2", "0", "11", "2"]
    train = datasets.Dataset.from_dict(
        {"image": gray_images(6), "label": labels},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}),
    )
    test = datasets.Dataset.from_dict(
        {"image": gray_images(3, seed=1), "label": ["0", "2", "11"]}, features=train.features
    )
    path = tmp_path / "saved"
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    return path


def test_save_to_disk_dict_with_string_labels(saved_dict):
    ds = load_dataset(f"hf:{saved_dict}")
    assert ds.images.shape == (9, 6, 5) and ds.images.dtype == torch.float32
    assert ds.classes == ("0", "2", "11")  # numeric order, not "0" < "11" < "2"
    assert ds.good_index == 0 and ds.name == f"hf:{saved_dict}"
    assert ds.counts_by_code() == {"0": 3, "2": 3, "11": 3}
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    # Pixels arrive scaled, in row order: the first image of the train split comes first.
    first = np.asarray(gray_images(1)[0], dtype=np.float32) / 255
    assert np.allclose(ds.images[0].numpy(), first)


def test_one_split_and_a_named_good_class(saved_dict):
    ds = load_hf(str(saved_dict), split="test", good="11")
    assert len(ds) == 3 and ds.classes[ds.good_index] == "11"
    with pytest.raises(BenchError, match="no split 'val'"):
        load_hf(str(saved_dict), split="val")
    with pytest.raises(BenchError, match="good class '9'"):
        load_hf(str(saved_dict), good="9")


def test_image_folder_of_pngs(tmp_path):
    root = tmp_path / "folder"
    for code, n in (("0", 4), ("13", 3), ("42", 2)):
        (root / code).mkdir(parents=True)
        for i, img in enumerate(gray_images(n, h=7, w=7, seed=n)):
            img.convert("RGB").save(root / code / f"{i}.png")
    ds = load_hf(str(root), cache_dir=str(tmp_path / "cache"))
    assert ds.images.shape == (9, 7, 7)
    assert ds.classes == ("0", "13", "42") and ds.good_index == 0
    assert ds.counts_by_code() == {"0": 4, "13": 3, "42": 2}


def test_parquet_file_with_int_labels_and_flat_vectors(tmp_path):
    rng = np.random.default_rng(0)
    table = datasets.Dataset.from_dict(
        {"pixels": rng.random((8, 12)).astype(np.float32).tolist(), "y": [3, 1, 3, 1, 5, 5, 1, 3]}
    )
    path = tmp_path / "flat.parquet"
    table.to_parquet(str(path))
    ds = load_hf(
        str(path), image_column="pixels", label_column="y", image_shape="3x4", cache_dir=str(tmp_path / "c")
    )
    assert ds.images.shape == (8, 3, 4)
    assert ds.classes == ("1", "3", "5") and ds.good_index == 0  # no "0": the first class
    with pytest.raises(BenchError, match="pass image_shape") as info:
        load_hf(str(path), image_column="pixels", label_column="y", cache_dir=str(tmp_path / "c"))
    one_line(info)


def test_class_label_names_become_codes(tmp_path):
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["ok", "bent", "short"])}
    )
    table = datasets.Dataset.from_dict(
        {"image": gray_images(6), "label": [0, 1, 2, 0, 1, 2]}, features=features
    )
    table.save_to_disk(str(tmp_path / "cl"))
    ds = load_hf(str(tmp_path / "cl"))
    assert ds.classes == ("ok", "bent", "short") and ds.good_index == 0


def test_rgb_arrays_become_grayscale(tmp_path):
    rgb = np.zeros((4, 3, 3, 3), dtype=np.uint8)
    rgb[..., 1] = 255  # pure green -> luma 0.587
    table = datasets.Dataset.from_dict({"image": rgb.tolist(), "label": [0, 1, 0, 1]})
    table.save_to_disk(str(tmp_path / "rgb"))
    ds = load_hf(str(tmp_path / "rgb"))
    assert ds.images.shape == (4, 3, 3)
    assert torch.allclose(ds.images, torch.full((4, 3, 3), 0.587), atol=1e-4)


def test_missing_path(tmp_path):
    with pytest.raises(BenchError, match="no such file or directory") as info:
        load_dataset(f"hf:{tmp_path / 'nope'}")
    one_line(info)


def test_wrong_column_lists_the_columns(saved_dict):
    with pytest.raises(BenchError, match="no image column 'img'; columns are image, label") as info:
        load_hf(str(saved_dict), image_column="img")
    one_line(info)
    with pytest.raises(BenchError, match="no label column 'class'; columns are image, label"):
        load_hf(str(saved_dict), label_column="class")


def test_mixed_image_sizes(tmp_path):
    images = gray_images(2, h=6, w=5) + gray_images(2, h=5, w=5)
    datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}).save_to_disk(str(tmp_path / "mixed"))
    with pytest.raises(BenchError, match="mixed sizes") as info:
        load_hf(str(tmp_path / "mixed"))
    one_line(info)


def test_mixed_channels(tmp_path):
    images = gray_images(2) + [img.convert("RGB") for img in gray_images(2)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}, features=features).save_to_disk(
        str(tmp_path / "chan")
    )
    with pytest.raises(BenchError, match="channel"):
        load_hf(str(tmp_path / "chan"))


def test_nan_pixels(tmp_path):
    arrays = np.ones((4, 3, 3), dtype=np.float32)
    arrays[2, 1, 1] = np.nan
    datasets.Dataset.from_dict({"image": arrays.tolist(), "label": [0, 1, 0, 1]}).save_to_disk(
        str(tmp_path / "nan")
    )
    with pytest.raises(BenchError, match="NaN or inf") as info:
        load_hf(str(tmp_path / "nan"))
    one_line(info)


def test_single_class(tmp_path):
    datasets.Dataset.from_dict({"image": gray_images(3), "label": ["0", "0", "0"]}).save_to_disk(
        str(tmp_path / "one")
    )
    with pytest.raises(BenchError, match="1 class") as info:
        load_hf(str(tmp_path / "one"))
    one_line(info)
