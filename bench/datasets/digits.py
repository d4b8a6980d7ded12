"""scikit-learn's bundled 8 x 8 handwritten digits: real data, 1,797 images, no download."""

from __future__ import annotations

import torch

from bench.datasets.image_set import ImageSet
from bench.datasets.registry import register_dataset
from bench.datasets.validate import check_image_set


@register_dataset("digits")
def load_digits_set() -> ImageSet:
    """The digits as an ImageSet; pixel values scaled from 0..16 to 0..1, class ``0`` is "good"."""
    # Imported here: scikit-learn (with scipy and pandas) would double the CLI's start-up time.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return check_image_set(
        ImageSet(
            images=images,
            labels=labels,
            classes=tuple(str(c) for c in range(10)),
            good_index=0,
            name="digits",
            source="scikit-learn load_digits (UCI optical digits)",
        )
    )
