"""The steps of the training loop every method shares, each a small named piece.

``EmbeddingMethod.fit`` runs them in order each step: draw, loss, ``optimizer_step`` (and the
budget's learning-rate schedule, ``build_schedule``), then
bookkeeping: ``SamplingCounter`` (what was drawn, on the device), ``LossWindow`` (the loss
record and the divergence check every ``RECORD_EVERY`` steps) and, with a validation split
and ``budget.eval_every > 0``, ``CheckpointSelector`` (the best validation accuracy's weights).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bench.datasets.image_set import ImageSet
from methods.batch import Batch, StepLoss

__all__ = [
    "RECORD_EVERY",
    "Checkpoint",
    "CheckpointSelector",
    "LossWindow",
    "SamplingCounter",
    "TrainingDiverged",
    "build_optimizer",
    "build_schedule",
    "nearest_neighbour_accuracy",
    "optimizer_step",
]

#: Steps between loss records, divergence checks and progress calls.
RECORD_EVERY = 10


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite.

    Attributes:
        step: the (1-based) step whose loss was first non-finite.
        loss: that loss value.
    """

    def __init__(self, step: int, loss: float) -> None:
        self.step = int(step)
        self.loss = float(loss)
        super().__init__(f"loss diverged ({self.loss}) at step {self.step}")


def build_optimizer(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer every method (and the profile's baselines) trains with: Adam, or AdamW
    (decoupled weight decay) when the budget's ``weight_decay`` is above 0.

    ``fused=True`` updates every parameter in one kernel pass instead of the default
    per-parameter sequence of about ten element-wise ops. On one CPU thread that pass is
    about a sixth of the default's cost, which was a third of the reference MLP's whole
    training step (fit 1.2 to 1.4x faster, measured). Its rounding differs from the default
    loop's in the last bits, so records made before this choice do not rerun bit for bit.
    """
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, fused=True)


def build_schedule(optimizer: torch.optim.Optimizer, schedule: str, steps: int):
    """The learning-rate scheduler of the budget's ``schedule``, stepped once per step; None for
    ``constant`` (the optimizer's own learning rate throughout).

    ``onecycle`` is torch's ``OneCycleLR`` with the optimizer's learning rate as its peak: a
    warm-up over the first 30% of ``steps`` from a 25th of it, then cosine annealing to
    almost zero. Batch-normalized trunks reach a given accuracy in fewer steps with it.
    """
    if schedule == "constant":
        return None
    if schedule == "onecycle":
        peak = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=steps)
    raise ValueError(f"unknown schedule {schedule!r}")


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update: clear the gradients, backpropagate ``loss``, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class SamplingCounter:
    """Accumulates what the steps drew and scored, on the training device (no host sync per
    step), and gives the ``sampling_`` record at the end.

    Args:
        num_classes: C.
        device: the training device.
    """

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.anchor_counts = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.negative_counts = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.tuples = torch.zeros((), dtype=torch.int64, device=device)
        self.active_share = torch.zeros((), dtype=torch.float64, device=device)
        self.uses_negatives = False
        self.forward_images = 0

    def add(self, batch: Batch, out: StepLoss) -> None:
        """Count one step's batch (after its loss: a mined loss fills in the negatives)."""
        self.anchor_counts += torch.bincount(batch.anchor_classes, minlength=self.num_classes)
        if batch.negative_classes is not None:
            self.uses_negatives = True
            if batch.negative_weights is None:
                self.negative_counts += torch.bincount(batch.negative_classes, minlength=self.num_classes)
            else:
                self.negative_counts.index_add_(0, batch.negative_classes, batch.negative_weights)
        self.tuples += out.tuples
        scored = out.tuples.clamp(min=1) if torch.is_tensor(out.tuples) else max(out.tuples, 1)
        self.active_share += out.active / scored
        self.forward_images += out.forward_images

    def record(self, classes: Sequence[str], steps: int, batch_images: int) -> dict:
        """The JSON-serializable ``sampling_`` record of ``steps`` steps (see ``EmbeddingMethod``)."""
        codes = tuple(classes)
        return {
            "anchor_counts": dict(zip(codes, self.anchor_counts.tolist(), strict=True)),
            "negative_counts": dict(zip(codes, self.negative_counts.tolist(), strict=True))
            if self.uses_negatives
            else {},
            "tuples": int(self.tuples),
            "active_share": float(self.active_share) / steps,
            "steps": steps,
            "images_seen": steps * batch_images,
            "forward_images": int(self.forward_images),
        }


class LossWindow:
    """The step losses since the last record; ``flush`` appends their mean to ``history``.

    The losses stay on the device until ``flush``, the loop's only host sync.

    Attributes:
        history: mean loss of every flushed window (``loss_history_``).
    """

    def __init__(self) -> None:
        self.history: list[float] = []
        self._losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        """Keep one step's loss (detached)."""
        self._losses.append(loss.detach())

    def flush(self, last_step: int) -> None:
        """Record the window's mean loss and start a new window.

        Raises:
            TrainingDiverged: a loss of the window is NaN or infinite (the first such step).
        """
        values = torch.stack(self._losses).double().cpu()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise TrainingDiverged(last_step - len(self._losses) + 1 + first, float(values[first]))
        self.history.append(float(values.mean()))
        self._losses = []


@dataclass(frozen=True)
class Checkpoint:
    """The weights of every trained module at one step, and their validation accuracy.

    Attributes:
        step: the step after which they were taken.
        val_accuracy: validation 1-NN accuracy against the training embeddings.
        states: one detached ``state_dict`` copy per module, in the modules' order.
    """

    step: int
    val_accuracy: float
    states: tuple[dict[str, torch.Tensor], ...]


class CheckpointSelector:
    """Keeps the checkpoint of the best validation accuracy seen (the first of equals).

    Args:
        modules: the trained modules (trunk first), snapshotted and restored together.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)
        self.best: Checkpoint | None = None
        self.history: list[list[float]] = []

    def consider(self, step: int, val_accuracy: float) -> None:
        """Record the accuracy after ``step``; snapshot the modules if it is the best yet."""
        self.history.append([step, val_accuracy])
        if self.best is None or val_accuracy > self.best.val_accuracy:
            states = tuple({k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.modules)
            self.best = Checkpoint(step, val_accuracy, states)

    def restore(self) -> dict:
        """Load the best checkpoint into the modules; return the ``checkpoint_`` record."""
        if self.best is None:
            raise RuntimeError("no checkpoint was considered")
        for module, state in zip(self.modules, self.best.states, strict=True):
            module.load_state_dict(state)
        return {
            "selected_step": self.best.step,
            "val_accuracy": self.best.val_accuracy,
            "history": self.history,
        }


def nearest_neighbour_accuracy(
    embed: Callable[[torch.Tensor], torch.Tensor],
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val: ImageSet,
) -> float:
    """Validation 1-NN accuracy against the training embeddings (checkpoint selection).

    Args:
        embed: the method's ``embed`` (eval mode, CPU embeddings).
        train_images: the training images (the reference set).
        train_labels: their class indices.
        val: the validation split (the queries).
    """
    train_emb = embed(train_images)
    val_emb = embed(val.images)
    nearest = torch.cdist(val_emb, train_emb).argmin(1)
    predicted = train_labels.cpu()[nearest]
    return float((predicted == val.labels).double().mean())
