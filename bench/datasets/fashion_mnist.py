"""Fashion-MNIST (Zalando, 70,000 grayscale 28 x 28 images, 10 classes) from its IDX files.

Class codes are ``"0"`` .. ``"9"``; their names, in order, are T-shirt/top, Trouser, Pullover,
Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot (see ``CLASS_NAMES``). The train (60,000)
and test (10,000) files are concatenated, train first: the harness makes its own split.

The files are looked for in the ``data_dir`` option, then ``$BENCH_FASHION_MNIST_DIR``, then
``/usr/share/datasets/fashion-mnist`` (where Debian's ``dataset-fashion-mnist`` puts them).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from bench.core.errors import BenchError
from bench.datasets.fingerprint import register_source_files
from bench.datasets.idx import read_idx
from bench.datasets.image_set import ImageSet
from bench.datasets.registry import register_dataset
from bench.datasets.validate import check_image_set

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
ENV_VAR = "BENCH_FASHION_MNIST_DIR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES: tuple[tuple[str, str], ...] = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
INSTALL_HINT = (
    "apt-get install dataset-fashion-mnist, or pass --data-dir DIR (or set BENCH_FASHION_MNIST_DIR)"
)


def _file_in(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """The four IDX files, by stem, from the first place that has all of them, or None.

    Args:
        data_dir: a directory to use instead of the env var and the system location. When given,
            it is the only place looked at (a typo should not silently fall back elsewhere).
    """
    if data_dir is not None:
        candidates = [Path(data_dir).expanduser()]
    else:
        env = os.environ.get(ENV_VAR)
        candidates = ([Path(env).expanduser()] if env else []) + [SYSTEM_DIR]
    stems = [stem for pair in FILES for stem in pair]
    for directory in candidates:
        found = {stem: _file_in(directory, stem) for stem in stems}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


@register_source_files("fashion-mnist")
def fashion_mnist_files(data_dir: str | Path | None = None) -> list[Path] | None:
    """The four IDX files the loader would read with these options, or None when missing."""
    files = find_fashion_mnist(data_dir)
    return None if files is None else list(files.values())


def _missing_error(data_dir: str | Path | None) -> BenchError:
    where = str(data_dir) if data_dir is not None else f"${ENV_VAR} or {SYSTEM_DIR}"
    return BenchError(
        f"fashion-mnist IDX files (train-images-idx3-ubyte[.gz] and 3 more) not found in {where}; "
        f"get them with: {INSTALL_HINT}"
    )


def read_fashion_mnist_labels(data_dir: str | Path | None = None) -> np.ndarray:
    """Only the 70,000 labels (train then test), cheap: for listings that need counts, not pixels.

    Raises:
        BenchError: the files are not found (the message says how to get them).
    """
    files = find_fashion_mnist(data_dir)
    if files is None:
        raise _missing_error(data_dir)
    return np.concatenate([read_idx(files[lab]) for _, lab in FILES]).astype(np.int64)


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_dir: str | Path | None = None) -> ImageSet:
    """Fashion-MNIST as one ImageSet of 70,000 images, pixels scaled to [0, 1], good = ``"0"``.

    Args:
        data_dir: directory holding the four IDX files (gzipped or not); default: the env var
            ``BENCH_FASHION_MNIST_DIR``, then ``/usr/share/datasets/fashion-mnist``.

    Raises:
        BenchError: the files are not found, or they are malformed or inconsistent.
    """
    files = find_fashion_mnist(data_dir)
    if files is None:
        raise _missing_error(data_dir)
    images, labels = [], []
    for img_stem, lab_stem in FILES:
        x, y = read_idx(files[img_stem]), read_idx(files[lab_stem])
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise BenchError(
                f"fashion-mnist files {files[img_stem].name} {x.shape} and {files[lab_stem].name} "
                f"{y.shape} do not match; reinstall them"
            )
        images.append(x)
        labels.append(y)
    shapes = {x.shape[1:] for x in images}
    if len(shapes) != 1:
        raise BenchError(
            f"fashion-mnist train and test images differ in size {sorted(shapes)}; reinstall them"
        )
    label_array = np.concatenate(labels).astype(np.int64)
    if label_array.min() < 0 or label_array.max() >= len(CLASS_NAMES):
        raise BenchError(f"fashion-mnist labels span {label_array.min()}..{label_array.max()}, not 0..9")
    # One uint8 -> float32 conversion of the whole block; dividing in torch avoids a float64 copy.
    pixels = torch.from_numpy(np.concatenate(images)).to(torch.float32).div_(255.0)
    return check_image_set(
        ImageSet(
            images=pixels,
            labels=torch.from_numpy(label_array),
            classes=tuple(str(c) for c in range(len(CLASS_NAMES))),
            good_index=0,
            name="fashion-mnist",
            source=f"Fashion-MNIST IDX files in {files[FILES[0][0]].parent}",
        )
    )
