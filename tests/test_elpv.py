"""The ``elpv`` source on the real ``elpv-dataset`` package: counts per label scheme, images, and
the disk cache (the 2,624 images are decoded once for the whole module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("elpv_dataset", reason="elpv-dataset is not installed (pip install -e '.[elpv]')")

from bench.datasets import describe_datasets, elpv, load_dataset  # noqa: E402
from bench.datasets.disk_cache import ENV_VAR  # noqa: E402
from bench.grid import data_cache  # noqa: E402


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A disk cache of this module's own, so its first load really decodes."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("elpv-cache")
        patch.setenv(ENV_VAR, str(path))
        yield path


@pytest.fixture(scope="module")
def levels(cache_dir):
    """The default load (labels=levels, size=64): the one decode of the real images."""
    return load_dataset("elpv")


@pytest.fixture
def decodes(monkeypatch):
    """Counts calls of the decoder (which still decodes)."""
    calls = []
    real = elpv.decode_cells

    def counted(directory, paths, size):
        calls.append(size)
        return real(directory, paths, size)

    monkeypatch.setattr(elpv, "decode_cells", counted)
    return calls


def test_levels_counts_images_and_good_class(levels):
    assert levels.name == "elpv" and len(levels) == 2624
    assert levels.counts_by_code() == {"good": 1508, "defect-33": 295, "defect-67": 106, "defect-100": 715}
    assert levels.classes[levels.good_index] == "good"
    assert levels.images.shape == (2624, 64, 64) and levels.images.dtype == torch.float32
    assert 0.0 <= float(levels.images.min()) and float(levels.images.max()) <= 1.0
    # uint8 at the target size, then / 255: every pixel is a multiple of 1/255.
    scaled = levels.images * 255
    assert torch.equal(scaled, scaled.round())
    assert "CC BY-NC-SA 4.0" in levels.source and "labels=levels: good = p 0;" in levels.source


def test_pixels_are_the_package_image_resized_with_lanczos(levels):
    directory = elpv.find_elpv()
    with Image.open(directory / "images" / "cell0001.png") as img:
        assert img.mode == "L" and img.size == (300, 300)
        expected = np.asarray(img.resize((64, 64), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    assert np.array_equal(levels.images[0].numpy(), expected)


@pytest.mark.parametrize(
    ("labels", "counts"),
    [
        ("binary", {"good": 1508 + 295, "defect": 106 + 715}),
        (
            "levels-type",
            {
                "good": 1508,
                "defect-33-mono": 117,
                "defect-33-poly": 178,
                "defect-67-mono": 56,
                "defect-67-poly": 50,
                "defect-100-mono": 313,
                "defect-100-poly": 402,
            },
        ),
    ],
)
def test_other_label_schemes_read_the_cache(levels, decodes, labels, counts):
    data = load_dataset("elpv", labels=labels)
    assert data.counts_by_code() == counts and data.good_index == 0
    assert decodes == []  # the scheme is not part of the cache key: no image decoded again
    assert torch.equal(data.images, levels.images)


def test_a_second_load_reads_the_cache_and_equals_the_first(levels, decodes):
    again = load_dataset("elpv")
    assert decodes == []
    assert torch.equal(again.images, levels.images) and torch.equal(again.labels, levels.labels)


def test_another_size_is_another_entry(levels, monkeypatch):
    sizes = []

    def fake(directory, paths, size):  # the key is what is tested, not 2,624 more decodes
        sizes.append(size)
        return np.zeros((len(paths), size, size), dtype=np.uint8)

    monkeypatch.setattr(elpv, "decode_cells", fake)
    assert load_dataset("elpv", size=48).images.shape == (2624, 48, 48)
    assert load_dataset("elpv", size="48", labels="binary").image_shape == (48, 48)
    assert sizes == [48]  # the second load of size 48 is a hit


def test_the_runner_cache_records_a_fingerprint(levels):
    data_cache.clear()
    try:
        data = data_cache.cached_dataset("elpv", {"labels": "binary", "good_per_defect": 1.0})
    finally:
        data_cache.clear()
    assert data.fingerprint is not None and len(data.fingerprint) == 16
    assert data.counts_by_code() == {"good": 821, "defect": 821}


def test_the_listing_shows_each_scheme_and_what_is_good_without_decoding(monkeypatch):
    def refuse(*args):
        raise AssertionError("the listing decoded images")

    monkeypatch.setattr(elpv, "decode_cells", refuse)
    rows = {row["name"]: row for row in describe_datasets(inputs="raw")}
    assert rows["elpv labels=levels"]["images"] == 2624 and rows["elpv labels=levels"]["classes"] == 4
    assert rows["elpv labels=levels"]["source"].startswith("good = p 0;")
    assert rows["elpv labels=binary"]["source"].startswith("good = p 0 or 1/3")
    assert rows["elpv labels=binary"]["balance"] == "good 2.2x each defect"
    assert rows["elpv labels=levels-type"]["classes"] == 7
    assert rows["elpv labels=levels"]["image_size"] == "64x64"
