"""The per-process dataset cache: bounded, re-keyed when a source's files change, and out of a
method's reach."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch

from bench.datasets import fashion_mnist, split_dataset
from bench.datasets.fingerprint import source_fingerprint
from bench.grid import data_cache
from bench.grid.config import CellConfig
from bench.grid.rerun import rerun
from bench.grid.runner import prepare_data, run_cell
from bench.grid.store import ResultStore
from bench.sampling.budget import Budget
from methods import registry
from methods.classifier import Classifier

TINY = Budget(steps=5, batch_images=48)


@pytest.fixture(autouse=True)
def empty_cache():
    data_cache.clear()
    yield
    data_cache.clear()


def _write_fashion(directory, seed: int) -> None:
    """Four IDX files of 30 images (3 per class), pixels drawn from ``seed``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", 20), ("t10k", 10)):
        for kind, array in (
            ("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
            ("labels-idx1", (np.arange(n) % 10).astype(np.uint8)),
        ):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (directory / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())


class CorruptsItsTrainingImages(Classifier):
    """A classifier that zeroes the training images it is handed, in place."""

    def fit(self, train, val=None, **kwargs):
        train.images.mul_(0.0)
        val.images.mul_(0.0)
        return super().fit(train, val, **kwargs)


def test_a_method_that_edits_its_training_images_in_place_does_not_change_the_next_cell(monkeypatch):
    monkeypatch.setitem(registry.METHODS.entries, "corrupts-training", CorruptsItsTrainingImages)
    cell = CellConfig(
        dataset="inspection",
        method="classifier",
        scheme="uniform",
        seed=0,
        budget=TINY,
        dataset_options=(("n_per_defect", 6),),
    )
    before = run_cell(cell)
    corrupting = run_cell(CellConfig(**{**cell.__dict__, "method": "corrupts-training"}))
    after = run_cell(cell)
    assert before["status"] == corrupting["status"] == after["status"] == "ok"
    assert corrupting["metrics"] != before["metrics"]  # the edit did reach that cell's own data
    assert after["metrics"] == before["metrics"]
    assert after["embedding_2d"] == before["embedding_2d"]


def test_the_cache_holds_at_most_max_datasets():
    first = data_cache.cached_dataset("inspection", {"n_per_defect": 3})
    assert data_cache.cached_dataset("inspection", {"n_per_defect": 3}) is first  # a hit
    for n in range(4, 4 + data_cache.MAX_DATASETS):
        data_cache.cached_dataset("inspection", {"n_per_defect": n})
    assert data_cache._load.cache_info().currsize == data_cache.MAX_DATASETS
    again = data_cache.cached_dataset("inspection", {"n_per_defect": 3})
    assert again is not first and torch.equal(again.images, first.images)  # evicted, rebuilt alike


def test_rewritten_files_are_loaded_again_and_recorded_with_a_new_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-copy")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    directory = tmp_path / "fm"
    _write_fashion(directory, seed=0)
    cell = CellConfig(
        dataset="fashion-mnist",
        method="classifier",
        scheme="uniform",
        seed=0,
        budget=TINY,
        dataset_options=(("data_dir", str(directory)),),
    )
    old = run_cell(cell)
    ResultStore(tmp_path / "run").append(old)
    old_train = prepare_data("fashion-mnist", {"data_dir": str(directory)}, seed=0).train

    _write_fashion(directory, seed=1)  # same names and sizes, other pixels
    for path in directory.iterdir():  # a later modification time, as a rewrite gives
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    new = run_cell(cell)
    new_train = prepare_data("fashion-mnist", {"data_dir": str(directory)}, seed=0).train

    assert old["status"] == new["status"] == "ok" and old["hash"] == new["hash"]
    assert not torch.equal(old_train.images, new_train.images)
    assert torch.equal(
        new_train.images, split_dataset(fashion_mnist.load_fashion_mnist(directory)).train.images
    )
    assert old["dataset"]["fingerprint"] != new["dataset"]["fingerprint"]
    assert new["dataset"]["fingerprint"] == source_fingerprint("fashion-mnist", data_dir=str(directory))
    _, _, differences = rerun(tmp_path / "run", old["hash"])
    assert differences[0] == (
        f"dataset.fingerprint: recorded {old['dataset']['fingerprint']}, rerun"
        f" {new['dataset']['fingerprint']} (the data files changed since)"
    )


def test_hf_paths_have_a_fingerprint_of_their_files_and_hub_names_none(tmp_path):
    table = tmp_path / "data.parquet"
    table.write_bytes(b"not read here")
    before = source_fingerprint(f"hf:{table}")
    table.write_bytes(b"rewritten, longer than before")
    assert before is not None and source_fingerprint(f"hf:{table}") != before
    folder = tmp_path / "images"
    (folder / "0").mkdir(parents=True)
    (folder / "0" / "a.png").write_bytes(b"x")
    before = source_fingerprint(f"hf:{folder}")
    (folder / "0" / "b.png").write_bytes(b"y")
    assert source_fingerprint(f"hf:{folder}") != before
    assert source_fingerprint("hf:someone/some-dataset") is None
    assert source_fingerprint("inspection") is None
