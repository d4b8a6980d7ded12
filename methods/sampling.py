"""Vectorized draws from a training split: classes by plan weights, images within or outside a class.

Everything here works on index tensors with an explicit ``torch.Generator``; there is no
per-item Python and no Dataset/DataLoader. Positions returned are positions into the
training split the index was built from (``train.images[positions]``).
"""

from __future__ import annotations

import torch

from bench.core.errors import BenchError


class ClassIndex:
    """Training positions grouped by class: one sorted table, per-class offsets and counts.

    The positions of class ``c`` are ``order[offsets[c] : offsets[c] + counts[c]]``, so an
    image of class ``c`` is drawn as ``order[offsets[c] + floor(u * counts[c])]`` with
    ``u ~ U[0, 1)``, for a whole tensor of classes at once.

    Args:
        labels: int64 class indices (n,) of the training images (on the device used for draws).
        num_classes: C; every class must have at least one image.

    Raises:
        BenchError: a class without training images.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int) -> None:
        labels = labels.long()
        self.num_classes = int(num_classes)
        self.order = torch.argsort(labels, stable=True)
        self.counts = torch.bincount(labels, minlength=self.num_classes)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.total = int(labels.numel())
        empty = (self.counts == 0).nonzero().flatten().tolist()
        if empty:
            raise BenchError(
                f"class index(es) {empty} have no training images; every class needs at least one"
            )
        if self.num_classes < 2:
            raise BenchError("training needs at least two classes")

    def draw_classes(self, weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` class indices drawn with replacement, ``P(c) = weights[c] / sum(weights)``."""
        return torch.multinomial(weights, n, replacement=True, generator=generator)

    def draw_in_class(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One position per entry of ``classes``, uniform over the images of that class."""
        counts = self.counts[classes]
        u = torch.rand(classes.shape, generator=generator, device=classes.device, dtype=torch.float64)
        within = torch.minimum((u * counts).long(), counts - 1)
        return self.order[self.offsets[classes] + within]

    def draw_outside_class(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One position per entry of ``classes``, uniform over all images of *other* classes.

        Exact and rejection-free: draw a rank ``r`` among the ``total - counts[c]`` images
        outside class ``c`` in the class-sorted table, then skip over class ``c``'s block.
        A class is therefore picked in proportion to its image count.
        """
        counts = self.counts[classes]
        offsets = self.offsets[classes]
        outside = self.total - counts
        u = torch.rand(classes.shape, generator=generator, device=classes.device, dtype=torch.float64)
        rank = torch.minimum((u * outside).long(), outside - 1)
        rank = rank + (rank >= offsets).long() * counts
        return self.order[rank]

    def draw_other_classes(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One class per entry of ``classes``, uniform over the ``C - 1`` other classes.

        ``(c + k) mod C`` with ``k`` uniform in ``1..C-1`` never returns ``c`` and hits each
        other class with probability ``1 / (C - 1)``.
        """
        shift = torch.randint(1, self.num_classes, classes.shape, generator=generator, device=classes.device)
        return (classes + shift) % self.num_classes

    def draw_negatives(
        self, classes: torch.Tensor, generator: torch.Generator, by: str = "image"
    ) -> torch.Tensor:
        """Positions of images not of ``classes``: ``by="image"`` uniform over the other images,
        ``by="class"`` uniform over the other classes, then uniform within the class."""
        if by == "image":
            return self.draw_outside_class(classes, generator)
        if by == "class":
            return self.draw_in_class(self.draw_other_classes(classes, generator), generator)
        raise BenchError(f"unknown negative draw {by!r}; use 'image' or 'class'")


def plan_weight_table(plan, total_steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Per-step class weights as one tensor on ``device``: shape (1, C) for a static plan
    (every step uses row 0), (total_steps, C) for a moving one."""
    if getattr(plan, "end", None) is None:
        rows = [plan.weights_at(0, total_steps)]
    else:
        rows = [plan.weights_at(s, total_steps) for s in range(total_steps)]
    table = torch.stack([torch.as_tensor(r, dtype=torch.float64) for r in rows])
    if (table < 0).any() or not (table.sum(1) > 0).all():
        raise BenchError("balance plan weights must be non-negative with a positive sum at every step")
    return table.to(device)
