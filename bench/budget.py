"""The training budget every method shares: the heart of a fair comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Budget:
    """Equal for every method in a grid.

    Attributes:
        steps: optimizer steps.
        batch_images: nominal images forwarded per step (a triplet counts three, a pair two).
        lr: Adam learning rate.
        embedding_size: output dimension of the shared trunk.
        eval_every: steps between validation checks for checkpoint selection (0 = never;
            the final weights are used).
    """

    steps: int = 600
    batch_images: int = 192
    lr: float = 1e-3
    embedding_size: int = 128
    eval_every: int = 0

    def to_dict(self) -> dict:
        return asdict(self)
