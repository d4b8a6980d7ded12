"""Seeded, stratified train / validation / test splits of *images*, made before any tuple exists."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from bench.datasets.image_set import ImageSet, Splits
from bench.errors import BenchError


def split_dataset(
    data: ImageSet, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.25
) -> Splits:
    """Split ``data`` into stratified train / val / test image sets.

    The split is of image positions, so no image can appear in two splits (each keeps its
    ``index`` into ``data``). Every class must have at least one image in each split.

    Raises:
        BenchError: a class too small for the split, or fractions out of range.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise BenchError(
            f"split fractions must be in (0, 1) and sum below 1 (val={val_fraction}, test={test_fraction})"
        )
    counts = data.class_counts()
    need = _min_per_class(val_fraction, test_fraction)
    small = [(data.classes[i], int(n)) for i, n in enumerate(counts.tolist()) if n < need]
    if small:
        code, n = small[0]
        raise BenchError(
            f"class {code!r} has {n} image(s), too few for a train/val/test split (needs >= {need}); "
            "add images or drop the class"
        )
    labels = data.labels.numpy()
    positions = np.arange(len(labels))
    rest, test = train_test_split(positions, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    to_t = lambda a: torch.as_tensor(np.sort(a), dtype=torch.int64)  # noqa: E731
    return Splits(train=data.subset(to_t(train)), val=data.subset(to_t(val)), test=data.subset(to_t(test)))


def _min_per_class(val_fraction: float, test_fraction: float) -> int:
    # Smallest class size for which each split of a stratified split gets at least one image.
    smallest = min(val_fraction, test_fraction, 1 - val_fraction - test_fraction)
    return max(3, int(np.ceil(1.0 / smallest)))
