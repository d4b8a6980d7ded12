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

    def __post_init__(self) -> None:
        from bench.core.errors import BenchError

        for name in ("steps", "batch_images", "embedding_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise BenchError(f"budget {name} must be a whole number (got {value!r})")
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool):
            raise BenchError(f"budget lr must be a number (got {self.lr!r})")
        if (
            self.steps < 1
            or self.batch_images < 6
            or not self.lr > 0
            or self.embedding_size < 1
            or self.eval_every < 0
        ):
            raise BenchError(
                "the budget needs steps >= 1, batch_images >= 6 (two triplets), lr > 0, "
                f"embedding_size >= 1 and eval_every >= 0 (got {self})"
            )

    def to_dict(self) -> dict:
        return asdict(self)
