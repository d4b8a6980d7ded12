"""The in-memory form every dataset source produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Grayscale images with integer class indices and the original label codes.

    Attributes:
        images: float32 tensor (n, h, w), values roughly in [0, 1].
        labels: int64 tensor (n,), class *indices* 0..C-1 (internal).
        classes: the original label code of each index, as strings (``classes[i]`` is what
            reports show for index ``i``; for the inspection set ``"0"`` is the good part).
        good_index: index of the "good" class (the inspection negative), or None.
        name: dataset name (``inspection``, ``digits``, ``hf:...``).
        source: where the data came from, for reports.
        index: int64 tensor (n,), each image's position in the full dataset it was cut
            from; splits keep it so tests can prove no image sits in two splits.
        fingerprint: digest of the files the images were read from (paths, sizes, modification
            times; ``bench.datasets.fingerprint``), or None for data generated in memory.
        augment: the transforms that keep this data's labels, applied to every method's
            training batches (``bench.datasets.augment``: ``("hflip", "vflip")`` for solar
            cells); empty for none, the default.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    good_index: int | None
    name: str
    source: str = ""
    index: torch.Tensor = field(default=None)  # type: ignore[assignment]
    fingerprint: str | None = None
    augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.index is None:
            object.__setattr__(self, "index", torch.arange(len(self.labels)))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.images.shape[1]), int(self.images.shape[2]))

    def class_counts(self) -> torch.Tensor:
        """Images per class index, shape (C,)."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def counts_by_code(self) -> dict[str, int]:
        """Images per original label code."""
        return dict(zip(self.classes, self.class_counts().tolist(), strict=True))

    def subset(self, positions: torch.Tensor) -> ImageSet:
        """The images at ``positions`` (a 1-D index tensor), keeping codes and provenance."""
        return ImageSet(
            images=self.images[positions],
            labels=self.labels[positions],
            classes=self.classes,
            good_index=self.good_index,
            name=self.name,
            source=self.source,
            index=self.index[positions],
            fingerprint=self.fingerprint,
            augment=self.augment,
        )


@dataclass(frozen=True, eq=False)
class Splits:
    """A stratified train / validation / test split of images (made before any tuple exists)."""

    train: ImageSet
    val: ImageSet
    test: ImageSet

    def counts_by_code(self) -> dict[str, dict[str, int]]:
        return {
            "train": self.train.counts_by_code(),
            "val": self.val.counts_by_code(),
            "test": self.test.counts_by_code(),
        }


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class mean of ``values`` (n, ...) -> (C, ...) in one ``index_add_``; an absent class gets zeros.

    Serves the mean-image anchors, the mean-image prediction rule and the class prototypes.
    """
    labels = labels.long()
    sums = torch.zeros((num_classes, *values.shape[1:]), dtype=values.dtype, device=values.device)
    sums.index_add_(0, labels, values)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).to(values.dtype)
    return sums / counts.view(-1, *([1] * (values.dim() - 1)))
