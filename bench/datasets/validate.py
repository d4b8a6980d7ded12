"""The one check every dataset source runs on what it produces, so later stages can trust it."""

from __future__ import annotations

import torch

from bench.core.errors import BenchError
from bench.datasets.augment import check_augment
from bench.datasets.image_set import ImageSet


def check_image_set(ds: ImageSet) -> ImageSet:
    """Check that ``ds`` is usable by every later stage, and return it unchanged.

    Checked: images are a float tensor (n, h, w) with only finite values; labels are an int64
    tensor (n,) of indices into ``classes``; codes are unique; at least two classes actually
    have images; ``good_index`` (when set) names a class; ``index`` has one entry per image;
    ``augment`` names known transforms.

    Args:
        ds: the image set a loader is about to return.

    Returns:
        ``ds`` itself, so a loader can end with ``return check_image_set(ImageSet(...))``.

    Raises:
        BenchError: the first problem found, in one line naming the dataset.
    """
    where = f"dataset {ds.name!r}"
    images, labels = ds.images, ds.labels
    if not isinstance(images, torch.Tensor) or images.dim() != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise BenchError(f"{where}: images must be a (n, h, w) grayscale tensor, got {shape}")
    if not images.is_floating_point():
        raise BenchError(f"{where}: images must be floating point (scaled to [0, 1]), got {images.dtype}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        raise BenchError(f"{where}: labels must be an int64 tensor (n,) of class indices")
    n = int(images.shape[0])
    if n == 0:
        raise BenchError(f"{where} has no images; check the source path or the class-count options")
    if labels.shape[0] != n or ds.index.shape[0] != n:
        raise BenchError(
            f"{where}: {n} images but {labels.shape[0]} labels and {ds.index.shape[0]} index entries"
        )
    if len(set(ds.classes)) != len(ds.classes):
        raise BenchError(f"{where}: duplicate class codes in {list(ds.classes)}; codes must be unique")
    c = len(ds.classes)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= c:
        raise BenchError(f"{where}: label indices span {lo}..{hi} but there are {c} classes")
    present = int((torch.bincount(labels, minlength=c) > 0).sum())
    if present < 2:
        raise BenchError(
            f"{where} has images of {present} class(es) only; a benchmark needs at least 2 "
            "(check the label column or the class filter)"
        )
    try:
        check_augment(ds.augment)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from None
    if ds.good_index is not None and not 0 <= ds.good_index < c:
        raise BenchError(f"{where}: good_index {ds.good_index} is not a class index (0..{c - 1})")
    # The sum is finite whenever every pixel is (bar overflow, which the full check then clears),
    # and it is several times faster than a per-pixel isfinite on this torch build.
    if not bool(torch.isfinite(images.sum())) and not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise BenchError(f"{where}: {bad} image(s) contain NaN or inf pixels; clean or drop them")
    return ds
