"""What one ``fit`` hands to a method's hooks: the training data and draw tools (``FitContext``)
and the per-fit state the method prepares from them (``Prepared``).

Both are frozen and passed as arguments, as pytorch-metric-learning passes embeddings and
labels to ``compute_loss``: a method never keeps training data on itself, and after ``fit``
only its hyperparameters and its learned state (names ending in ``_``) remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.datasets.augment import Augmentation
from bench.datasets.image_set import ImageSet
from bench.sampling.budget import Budget
from methods.sampling import ClassIndex

__all__ = ["FitContext", "Prepared"]


@dataclass(frozen=True, eq=False)
class FitContext:
    """The training split and the draw tools of one ``fit``, passed to every hook.

    A hook forwards ``ctx.images(positions)``, never ``train_images[positions]``: the shared
    data path, where the dataset's augmentation is applied to every method alike.

    Attributes:
        train_images: the training split's images as loaded (standardized, not augmented),
            float32 ``(n, h, w)`` on ``device``; for statistics such as class means.
        train_labels: the class index (0..C-1, int64, ``(n,)``) of each training image;
            ``method.classes_[i]`` is the label code of class index ``i``.
        class_index: training positions grouped by class, with vectorized draws
            (``draw_classes(weights, n, generator)``, ``draw_in_class(classes, generator)``,
            ``draw_negatives(classes, generator, by="image" | "class")``...). Every position
            it returns indexes ``train_images``.
        generator: the fit's random generator on ``device``, seeded by ``fit(seed=...)``. Pass
            it to every draw (never use Python's or torch's global RNG), so that one seed gives
            one run.
        budget: the budget every method of the grid shares (steps, nominal images per step,
            learning rate, embedding size, checkpoint interval).
        device: where the training tensors, the trunk and the modules live.
        augmentation: the transforms ``images`` applies (the training split's ``augment``).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    class_index: ClassIndex
    generator: torch.Generator
    budget: Budget
    device: torch.device
    augmentation: Augmentation = field(default_factory=Augmentation)

    @classmethod
    def from_split(cls, train: ImageSet, budget: Budget, seed: int, device: torch.device) -> FitContext:
        """The context of a fit on ``train``: its tensors moved to ``device`` once, the class
        index built, the generator seeded with ``seed``, the augmentation ``train.augment``.

        Raises:
            BenchError: a class without training images, or fewer than two classes.
        """
        labels = train.labels.to(device, torch.int64)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
        return cls(
            train_images=train.images.to(device, torch.float32),
            train_labels=labels,
            class_index=ClassIndex(labels, train.num_classes),
            generator=generator,
            budget=budget,
            device=device,
            augmentation=Augmentation(tuple(train.augment)),
        )

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        """The training images at ``positions``, augmented: what a step forwards.

        The shared data path of every method: the images are gathered and the dataset's
        transforms (``augmentation``) drawn for each with the fit's generator. Without
        augmentation this is ``train_images[positions]`` and draws nothing.

        Args:
            positions: int64 positions into ``train_images`` (a batch's, or a part of them).

        Returns:
            float32 ``(len(positions), h, w)`` on ``device``.
        """
        return self.augmentation.apply(self.train_images[positions], self.generator)

    @property
    def num_classes(self) -> int:
        """C, the number of classes of the training split."""
        return self.class_index.num_classes

    @property
    def batch_images(self) -> int:
        """Nominal images per step, the budget every method shares: a triplet counts three
        images, a pair two, whatever is actually forwarded."""
        return int(self.budget.batch_images)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the training images."""
        return tuple(self.train_images.shape[1:])


@dataclass(frozen=True, eq=False)
class Prepared:
    """What a method's ``_prepare`` computes once per fit, handed back to ``_draw`` and ``_loss``.

    A method with per-fit constants (batch layout, precomputed tensors, a loss object)
    subclasses it as a frozen keyword-only dataclass::

        @dataclass(frozen=True, eq=False, kw_only=True)
        class PairLayout(Prepared):
            pairs: int
            positives: int

    Attributes:
        modules: extra trainable modules by name (a classifier head, proxies), optimized with
            the trunk. ``fit`` keeps each as learned state on the method under its name with a
            trailing underscore (``"head"`` -> ``method.head_``), set before the first step, so
            ``_loss`` and inference read it there, as they read ``model_``.
    """

    modules: Mapping[str, nn.Module] = field(default_factory=dict)
