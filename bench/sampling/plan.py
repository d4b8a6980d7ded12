"""A balance plan: per-class sampling weights a method follows when it draws from training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class BalancePlan:
    """Per-class sampling weights, possibly moving over training.

    ``weights_at(step, total_steps)`` gives the probabilities (sum 1, shape (C,)) a method uses
    at that step for whatever it draws first (anchors, first pair elements, batch classes).
    A static plan has ``end is None``; a moving plan interpolates linearly from ``start`` at
    step 0 to ``end`` at the last step (``progressive``).

    Attributes:
        scheme: the scheme name that produced the plan (``uniform``, ``good-x5``...).
        start: float64 tensor (C,) of probabilities.
        end: probabilities at the last step, or None for a static plan.
        classes: the original label codes, aligned with the weights.
    """

    scheme: str
    start: torch.Tensor
    classes: tuple[str, ...]
    end: torch.Tensor | None = field(default=None)

    def weights_at(self, step: int = 0, total_steps: int = 1) -> torch.Tensor:
        if self.end is None:
            return self.start
        t = step / max(total_steps - 1, 1)
        return (1.0 - t) * self.start + t * self.end

    @staticmethod
    def uniform(classes: tuple[str, ...]) -> BalancePlan:
        """Every class equal; the default when a method is fitted without a runner."""
        c = len(classes)
        return BalancePlan("uniform", torch.full((c,), 1.0 / c, dtype=torch.float64), classes)

    def to_dict(self) -> dict:
        out = {"scheme": self.scheme, "start": dict(zip(self.classes, self.start.tolist(), strict=True))}
        if self.end is not None:
            out["end"] = dict(zip(self.classes, self.end.tolist(), strict=True))
        return out
