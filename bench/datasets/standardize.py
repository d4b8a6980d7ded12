"""Input standardization, shared by every method: statistics of the training split, applied to all three.

Every inspection image is the same bright pin grid; the class signal is a small local
deviation on top of it. Fed raw, a trunk starts with nearly identical embeddings for every
image, and the margin losses fall into a collapsed solution. Standardizing each pixel with the
training split's mean and standard deviation turns that deviation into the largest part of
the input, as every serious pipeline does, and does it the same way for every method.

``standardize_splits`` is the only place inputs are transformed. Its statistics come from the
training split alone, and the same affine map is applied to train, val and test, so everything
derived from them (mean-image anchors, the ``mean_image`` rule, plots) sees the same inputs and
no validation or test image influences training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet, Splits

#: ``pixel`` (default): per-pixel mean and std; ``global``: one mean and std; ``raw``: unchanged.
INPUTS = ("pixel", "global", "raw")
DEFAULT_INPUTS = "pixel"
#: What a record without an ``inputs`` key was made with (every record before inputs existed).
LEGACY_INPUTS = "raw"
#: The std floor, as a share of the training split's global pixel std: a pixel that barely
#: varies in training (a constant border, a dead sensor pixel) is divided by at least this, so
#: a test image that differs there cannot produce a huge value. On the inspection set the
#: floor (0.012) is below every pixel's std (0.016 and up), so no pixel is floored there.
STD_FLOOR_SHARE = 0.05
#: Absolute floor, for a training split whose pixels are all constant.
STD_FLOOR_MIN = 1e-6


def check_inputs(inputs: str) -> None:
    """BenchError unless ``inputs`` is one of ``INPUTS``."""
    if inputs not in INPUTS:
        raise BenchError(f"unknown inputs {inputs!r}; choose one of {', '.join(INPUTS)}")


@dataclass(frozen=True)
class InputStats:
    """The affine map ``(x - mean) / std`` fitted on a training split.

    Attributes:
        inputs: ``pixel`` or ``global``.
        mean: float64, (h, w) for ``pixel``, () for ``global``.
        std: float64, same shape, already floored.
        std_floor: the floor applied.
        floored: how many entries of ``std`` were raised to the floor.
    """

    inputs: str
    mean: torch.Tensor
    std: torch.Tensor
    std_floor: float
    floored: int

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Standardized float32 copy of ``images`` (n, h, w); the input is left untouched."""
        return ((images.to(torch.float64) - self.mean) / self.std).to(torch.float32)

    def describe(self) -> dict:
        """JSON summary for a record."""
        return {"mode": self.inputs, "std_floor": round(self.std_floor, 6), "floored": self.floored}


def fit_input_stats(train_images: torch.Tensor, inputs: str) -> InputStats:
    """Mean and floored std of the training images (float64, so the result is deterministic).

    Args:
        train_images: (n, h, w) images of the *training split only*.
        inputs: ``pixel`` or ``global``.
    """
    check_inputs(inputs)
    if inputs == "raw":
        raise BenchError("raw inputs have no statistics")
    x = train_images.to(torch.float64)
    floor = max(STD_FLOOR_SHARE * float(x.std(correction=0)) if x.numel() else 0.0, STD_FLOOR_MIN)
    if inputs == "pixel":
        mean, std = x.mean(0), x.std(0, correction=0)
    else:
        mean, std = x.mean(), x.std(correction=0)
    floored = int((std < floor).sum())
    return InputStats(inputs, mean, std.clamp(min=floor), floor, floored)


def standardize_splits(splits: Splits, inputs: str) -> tuple[Splits, InputStats | None]:
    """``splits`` with every image standardized by statistics of ``splits.train`` alone.

    ``raw`` returns ``splits`` itself (the very same tensors: today's numerics, bit for bit)
    and no statistics.
    """
    check_inputs(inputs)
    if inputs == "raw":
        return splits, None
    stats = fit_input_stats(splits.train.images, inputs)

    def mapped(part: ImageSet) -> ImageSet:
        return replace(part, images=stats.apply(part.images))

    return Splits(mapped(splits.train), mapped(splits.val), mapped(splits.test)), stats


def describe_inputs(inputs: str, train_images: torch.Tensor | None = None) -> str:
    """What ``inputs`` does, in a few words; with the statistics of ``train_images`` (a training
    split) when given: the std floor and how many pixels it raises (``pixel``), or the std."""
    check_inputs(inputs)
    what = {"pixel": "per-pixel train mean/std", "global": "one train mean/std", "raw": "pixels as loaded"}
    text = f"{inputs}: {what[inputs]}"
    if train_images is None or inputs == "raw":
        return text
    stats = fit_input_stats(train_images, inputs)
    if inputs == "global":
        return f"{text} (std {float(stats.std):.3g})"
    return f"{text}, std floor {stats.std_floor:.3g} ({stats.floored} of {stats.std.numel()} px raised)"
