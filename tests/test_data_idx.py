"""The IDX reader and the Fashion-MNIST source, on tiny files the tests write (no system package)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import BenchError
from bench.datasets import fashion_mnist, load_dataset
from bench.datasets.idx import parse_idx, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(autouse=True)
def no_system_copy(monkeypatch, tmp_path):
    # The tests must pass with or without Debian's dataset-fashion-mnist installed.
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-copy")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = write_idx(tmp_path / "x-idx3-ubyte", images, gz)
    out = read_idx(path)
    assert out.shape == (3, 4, 5) and out.dtype == np.uint8
    assert np.array_equal(out, images)


def test_read_idx_big_endian_types():
    values = np.array([1, -2, 70000], dtype=">i4")
    out = parse_idx(idx_bytes(values))
    assert out.tolist() == [1, -2, 70000] and out.dtype.byteorder in ("=", "<", "|")
    floats = np.array([[0.5, -1.25]], dtype=">f4")
    assert parse_idx(idx_bytes(floats)).tolist() == [[0.5, -1.25]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x01\x02\x08\x01", "bad magic"),
        (b"\x00\x00\x42\x01\x00\x00\x00\x01\x00", "unknown IDX type"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "needs 5"),
    ],
)
def test_malformed_idx_is_a_one_line_bench_error(tmp_path, content, problem):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(BenchError, match=problem) as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_missing_idx_file(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        read_idx(tmp_path / "nothing-idx1-ubyte")


def write_fashion(directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz
        )
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), gz)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_data_dir(tmp_path, gz):
    write_fashion(tmp_path / "fm", gz=gz)
    ds = load_dataset("fashion-mnist", data_dir=str(tmp_path / "fm"))
    assert ds.images.shape == (30, 28, 28) and ds.images.dtype == torch.float32
    assert ds.classes == tuple(str(i) for i in range(10)) and ds.good_index == 0
    assert float(ds.images.max()) <= 1.0 and float(ds.images.min()) >= 0.0
    # Train first, then test: the 21st image is the first test image (label 0).
    assert ds.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert ds.labels[20].item() == 0
    assert len(fashion_mnist.CLASS_NAMES) == 10


def test_fashion_mnist_from_env_var(tmp_path, monkeypatch):
    write_fashion(tmp_path / "env")
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "env"))
    assert len(load_dataset("fashion-mnist")) == 30


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(BenchError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "\n" not in message
    with pytest.raises(BenchError, match="not found in"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path / "typo"))


def test_fashion_mnist_mismatched_files(tmp_path):
    write_fashion(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8), gz=True)
    with pytest.raises(BenchError, match="do not match"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path / "fm"))
