"""Training-image augmentation, the same for every method: declared by the dataset, applied in the
fit's shared data path, never inside a method.

A dataset declares the transforms that keep its labels (``ImageSet.augment``: a solar cell
mirrored left-right or top-bottom is the same cell with the same defect, so ``elpv`` declares
``("hflip", "vflip")``); a grid may replace them (``--augment``, ``augment`` in a config file).
Every method draws its batch and then forwards ``FitContext.images(positions)``, which gathers
the training images and applies ``Augmentation.apply`` with the fit's generator: the same
transforms, drawn the same way, whatever the method.

Only the training images a step forwards are transformed: validation and test images, the
training images the evaluation embeds, and per-class means (the mean-anchor triplet's anchors)
stay as loaded. Without augmentation nothing is drawn from the generator, so a fit without it is
bit for bit the fit it was before augmentation existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from bench.core.errors import BenchError

#: The known transforms, in the order they are applied, and what each does.
AUGMENTATIONS: dict[str, str] = {
    "hflip": "mirror left-right, each image with probability 1/2",
    "vflip": "mirror top-bottom, each image with probability 1/2",
}
#: The image dimension each flip reverses in an ``(n, h, w)`` batch.
FLIP_DIMS = {"hflip": 2, "vflip": 1}
#: What ``--augment none`` (no augmentation) is written as.
NONE = "none"


def check_augment(names: object) -> tuple[str, ...]:
    """The transforms ``names`` asks for, known, without repeats, in ``AUGMENTATIONS`` order.

    The order is canonical, so ``("vflip", "hflip")`` and ``("hflip", "vflip")`` are one
    augmentation (and one cell hash).

    Raises:
        BenchError: ``names`` is not a list of names, or names an unknown transform.
    """
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise BenchError(f"augment must be a list of transform names (got {names!r})")
    names = tuple(names)
    for name in names:
        if name not in AUGMENTATIONS:
            known = ", ".join(AUGMENTATIONS)
            raise BenchError(f"unknown augmentation {name!r}; known: {known} (or {NONE} for no augmentation)")
    return tuple(name for name in AUGMENTATIONS if name in names)


def parse_augment(text: str) -> tuple[str, ...]:
    """``--augment`` as given: comma-separated names (``hflip,vflip``), or ``none``."""
    if text.strip() == NONE:
        return ()
    return check_augment([part.strip() for part in text.split(",") if part.strip()])


def describe_augment(names: tuple[str, ...]) -> str:
    """``hflip, vflip`` or ``none``, for listings and reports."""
    return ", ".join(names) or NONE


@dataclass(frozen=True)
class Augmentation:
    """The transforms applied to each training batch, drawn per image.

    Attributes:
        names: known transform names (``check_augment``); empty for none.
    """

    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", check_augment(self.names))

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``images`` (n, h, w) with each transform applied to a random half (on average).

        One ``torch.rand`` of ``(n, transforms)`` decides every image's transforms at once, and
        each flip is a ``torch.where`` over the whole batch: no loop over images. Without
        transforms, ``images`` is returned as it is and ``generator`` is not touched.

        Args:
            images: a batch of training images, float ``(n, h, w)``.
            generator: the fit's seeded generator (on the images' device).
        """
        if not self.names:
            return images
        chosen = (
            torch.rand((images.shape[0], len(self.names)), generator=generator, device=images.device) < 0.5
        )
        for column, name in enumerate(self.names):
            flip = chosen[:, column].view(-1, 1, 1)
            images = torch.where(flip, images.flip(FLIP_DIMS[name]), images)
        return images
