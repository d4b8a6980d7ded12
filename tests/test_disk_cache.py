"""The disk cache of decoded images: where it lives, what makes a hit, and ``hf:`` folders through it
(quiet, decoded once, equal to a fresh load)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from bench.datasets import disk_cache
from bench.datasets import huggingface as hf
from bench.datasets.disk_cache import ENV_VAR, cache_root, cached_arrays, pack_images, unpack_images


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache" / "images"


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine" / "images"
    monkeypatch.setenv(ENV_VAR, "OFF")
    assert cache_root() is None
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "bench" / "images"


def test_hit_miss_and_keys(cache):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(5, dtype=np.int16), "names": np.array(["a", "bc"])}

    first = cached_arrays("toy", {"size": 1}, "f1", build)
    again = cached_arrays("toy", {"size": 1}, "f1", build)
    assert len(calls) == 1 and np.array_equal(again["x"], first["x"]) and again["x"].dtype == np.int16
    assert again["names"].tolist() == ["a", "bc"]
    cached_arrays("toy", {"size": 2}, "f1", build)  # other options: another entry
    cached_arrays("toy", {"size": 1}, "f2", build)  # other files: replaces the f1 entry of size 1
    assert len(calls) == 3 and len(list(cache.glob("toy-*.npz"))) == 2
    cached_arrays("toy", {"size": 1}, None, build)  # no fingerprint: never cached
    cached_arrays("toy", {"size": 1}, None, build)
    assert len(calls) == 5


def test_an_entry_holding_another_key_is_a_miss(cache):
    cached_arrays("toy", {"size": 1}, "f1", lambda: {"x": np.zeros(2)})
    (entry,) = cache.glob("toy-*.npz")
    np.savez(entry, __key__=np.array("something else"), x=np.ones(2))
    assert cached_arrays("toy", {"size": 1}, "f1", lambda: {"x": np.full(2, 7.0)})["x"].tolist() == [7.0, 7.0]


def test_threads_filling_one_entry_at_once_build_once(cache):
    calls, barrier = [], threading.Barrier(3)

    def build():
        calls.append(1)
        time.sleep(0.3)
        return {"x": np.arange(3)}

    results = []

    def load():
        barrier.wait()
        results.append(cached_arrays("toy", {}, "f", build)["x"].tolist())

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [[0, 1, 2]] * 3


def test_8_bit_images_are_stored_as_uint8_and_others_as_they_are():
    rng = np.random.default_rng(0)
    eight_bit = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8).astype(np.float32) / np.float32(255)
    packed = pack_images(eight_bit)
    assert packed.dtype == np.uint8 and np.array_equal(unpack_images(packed).numpy(), eight_bit)
    luma = eight_bit * np.float32(0.587)
    assert pack_images(luma).dtype == np.float32
    assert pack_images(np.full((1, 2, 2), np.nan, dtype=np.float32)).dtype == np.float32
    assert unpack_images(luma).dtype == torch.float32


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(1)
    for code, n in (("good", 6), ("dent", 4), ("scratch", 4)):
        (root / code).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (9, 9), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / code / f"{i}.png")
    return root


def test_an_image_folder_is_decoded_once_quietly_and_equals_a_fresh_load(
    folder, cache, tmp_path, monkeypatch, capfd
):
    first = hf.load_hf(str(folder), cache_dir=str(tmp_path / "hf"))
    captured = capfd.readouterr()
    assert (
        "Downloading" not in captured.err + captured.out and "Generating" not in captured.err + captured.out
    )
    assert len(list(cache.glob("hf-*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("a cached load opened the source again")

    monkeypatch.setattr(hf, "_open", refuse)
    again = hf.load_hf(str(folder), cache_dir=str(tmp_path / "hf"), good="dent")
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert again.classes == first.classes == ("dent", "good", "scratch")
    assert again.classes[again.good_index] == "dent" and first.classes[first.good_index] == "good"
    monkeypatch.undo()
    monkeypatch.setenv(ENV_VAR, "off")
    fresh = hf.load_hf(str(folder), cache_dir=str(tmp_path / "hf"))
    assert torch.equal(fresh.images, first.images) and fresh.classes == first.classes


def test_quieting_restores_the_datasets_settings(folder, cache, tmp_path):
    import datasets

    before = (datasets.are_progress_bars_disabled(), datasets.logging.get_verbosity())
    hf.load_hf(str(folder), cache_dir=str(tmp_path / "hf"))
    assert (datasets.are_progress_bars_disabled(), datasets.logging.get_verbosity()) == before


def test_a_failed_build_writes_nothing(cache, tmp_path):
    from bench.core.errors import BenchError

    def build():
        raise BenchError("bad source")

    with pytest.raises(BenchError, match="bad source"):
        cached_arrays("toy", {}, "f", build)
    assert not list(cache.glob("*.npz"))
    assert disk_cache.read_entry(cache / "absent.npz", "k") is None
