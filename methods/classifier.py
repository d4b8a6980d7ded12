"""Plain classifier: softmax cross-entropy head on the trunk; the embedding is the trunk output."""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Batch, EmbeddingMethod, FitContext, Prepared, StepLoss
from methods.constraints import Interval
from methods.registry import register_method

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution


@register_method("classifier")
class Classifier(EmbeddingMethod):
    """A ``Linear(embedding_size, C)`` head trained with softmax cross-entropy.

    Each step draws ``batch_images`` images: class by the plan weights, then a uniform
    image within the class. ``embed`` returns the (unnormalized) trunk output, and
    ``predict_head`` the head's logits. ``sampling_["active_share"]`` is the share of
    images with non-zero cross-entropy (close to 1 by nature of the loss).

    Args:
        trunk: shared trunk name.
        label_smoothing: passed to ``torch.nn.functional.cross_entropy``, in [0, 1].
    """

    #: best on both tunings from 5e-4 to 2e-3 (inspection, digits); see *Methods* in the documentation.
    default_lr = 1e-3
    _parameter_constraints = {"label_smoothing": [Interval(Real, 0, 1, closed="both")]}
    #: The head (learned): the ``"head"`` module of ``_prepare``, kept by ``fit``.
    head_: nn.Linear

    def __init__(self, *, trunk: str = "mlp", label_smoothing: float = 0.0) -> None:
        super().__init__(trunk=trunk)
        self.label_smoothing = label_smoothing

    def _prepare(self, ctx: FitContext) -> Prepared:
        # Trained with the trunk; fit keeps it as ``head_``.
        return Prepared(modules={"head": nn.Linear(ctx.budget.embedding_size, ctx.num_classes)})

    def collapse_loss(self) -> float:
        """Cross-entropy of the best constant prediction: the entropy of the (label-smoothed)
        class frequencies the fit drew. A collapsed trunk leaves the head nothing better."""
        counts = torch.tensor(list(self.sampling_["anchor_counts"].values()), dtype=torch.float64)
        eps = float(self.label_smoothing)
        target = (1 - eps) * counts / counts.sum().clamp(min=1) + eps / len(counts)
        target = target[target > 0]
        return float(-(target * target.log()).sum())

    def _draw(self, ctx: FitContext, prepared: Prepared, weights: torch.Tensor) -> Batch:
        index, gen = ctx.class_index, ctx.generator
        classes = index.draw_classes(weights, ctx.batch_images, gen)
        return Batch(positions=index.draw_in_class(classes, gen), anchor_classes=classes)

    def _loss(self, ctx: FitContext, prepared: Prepared, batch: Batch) -> StepLoss:
        x = ctx.images(batch.positions)
        logits = self.head_(self.model_(x))
        per_image = F.cross_entropy(
            logits, batch.anchor_classes, reduction="none", label_smoothing=float(self.label_smoothing)
        )
        return StepLoss(
            loss=per_image.mean(),
            active=(per_image > 0).sum(),
            tuples=int(x.shape[0]),
            forward_images=int(x.shape[0]),
        )

    def predict_head(self, images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Class logits ``(n, C)``, float32 on the CPU (eval mode, no grad)."""
        self._check_fitted()
        device = next(self.head_.parameters()).device
        self.model_.eval()
        self.head_.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                x = images[start : start + batch_size].to(device, torch.float32)
                chunks.append(self.head_(self.model_(x)).float().cpu())
        if not chunks:
            return torch.empty(0, len(self.classes_))
        return torch.cat(chunks)

    @classmethod
    def search_space(cls) -> dict[str, BaseDistribution]:
        """The learning rate and the label smoothing (0 to 0.3; the default 0 inside)."""
        from optuna.distributions import FloatDistribution

        return {**super().search_space(), "label_smoothing": FloatDistribution(0.0, 0.3)}
