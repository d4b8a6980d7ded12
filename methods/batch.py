"""What one training step draws (``Batch``) and what its loss reports (``StepLoss``): the two
types a method's ``_draw`` and ``_loss`` hooks exchange with the shared training loop."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """What one step drew from the training split (all tensors on the training device).

    Attributes:
        positions: training-split positions of every image drawn this step (audit trail:
            ``train.index[positions]`` are the dataset indices the step used).
        anchor_classes: the classes counted in ``sampling_["anchor_counts"]`` (anchors,
            first pair elements, or batch images).
        negative_classes: classes counted in ``sampling_["negative_counts"]``, or None.
        negative_weights: how many times each entry of ``negative_classes`` counts (int64),
            or None for once each.
        parts: method-specific tensors (index tuples, labels...).
    """

    positions: torch.Tensor
    anchor_classes: torch.Tensor
    negative_classes: torch.Tensor | None = None
    negative_weights: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class StepLoss:
    """The loss of one step and what it was made of.

    Attributes:
        loss: scalar tensor to backpropagate.
        active: scalar tensor, tuples with non-zero loss.
        tuples: tuples scored (int, or a scalar tensor when mined).
        forward_images: images actually forwarded through the trunk this step.
    """

    loss: torch.Tensor
    active: torch.Tensor
    tuples: int | torch.Tensor
    forward_images: int
