"""The training budget every method shares: the heart of a fair comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Learning-rate schedules: ``constant`` (the default) or ``onecycle`` (warm up to ``lr`` over the
#: first 30% of the steps, then cosine annealing to nearly zero: torch's ``OneCycleLR``).
SCHEDULES = ("constant", "onecycle")
#: The budget fields added after records existed: ``to_dict`` leaves them out at these defaults,
#: so the cells (and hashes) of every budget that does not use them are as they were.
_LATER_DEFAULTS = {"schedule": "constant", "weight_decay": 0.0}


@dataclass(frozen=True)
class Budget:
    """Equal for every method in a grid.

    Attributes:
        steps: optimizer steps.
        batch_images: nominal images forwarded per step (a triplet counts three, a pair two).
        lr: Adam learning rate for every method; None (the default) lets each method train at its
            own default rate (``EmbeddingMethod.default_lr``, chosen from the committed tunings;
            see *Methods* in the documentation). A grid resolves None into each cell's ``lr``
            parameter, so a cell's record says which rate it trained with.
        embedding_size: output dimension of the shared trunk.
        eval_every: steps between validation checks for checkpoint selection (0 = never;
            the final weights are used).
        schedule: the learning-rate schedule, one of ``SCHEDULES``; ``lr`` is its peak.
        weight_decay: decoupled weight decay (AdamW) when above 0; 0 is plain Adam.
    """

    steps: int = 600
    batch_images: int = 192
    lr: float | None = None
    embedding_size: int = 128
    eval_every: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        from bench.core.errors import BenchError

        for name in ("steps", "batch_images", "embedding_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise BenchError(f"budget {name} must be a whole number (got {value!r})")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if name == "lr" and value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BenchError(f"budget {name} must be a number (got {value!r})")
        if self.schedule not in SCHEDULES:
            raise BenchError(f"budget schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if (
            self.steps < 1
            or self.batch_images < 6
            or not (self.lr is None or self.lr > 0)
            or self.embedding_size < 1
            or self.eval_every < 0
            or not self.weight_decay >= 0
        ):
            raise BenchError(
                "the budget needs steps >= 1, batch_images >= 6 (two triplets), lr > 0, "
                f"embedding_size >= 1, eval_every >= 0 and weight_decay >= 0 (got {self})"
            )

    def to_dict(self) -> dict:
        """The fields as a dict; ``schedule`` and ``weight_decay`` only where they differ from
        their defaults (a budget without them keeps the dict, and the cell hash, it had), and
        ``lr`` only when set (every budget written before per-method rates existed set it)."""
        later = _LATER_DEFAULTS
        return {
            k: v
            for k, v in asdict(self).items()
            if (k not in later or v != later[k]) and not (k == "lr" and v is None)
        }


#: A ``method_params`` key that is the budget's learning rate for that method alone: the
#: learning rate is tuned per method (``bench tune``), everything else in the budget stays shared.
LR_PARAM = "lr"

#: The learning-rate range every method's search space draws from (log-uniform), so that no
#: method gets a wider search than another (``EmbeddingMethod.search_space``, under ``LR_PARAM``).
#: Its floor was 1e-4 until the inspection tunings put three metric methods' best rates at
#: 1.03e-4 to 1.08e-4, against it: at 600 steps they want smaller steps than that floor allowed.
LR_SEARCH_RANGE = (1e-5, 3e-3)


def method_budget(budget: Budget, params: dict) -> tuple[Budget, dict]:
    """The budget a method trains with and its constructor keywords.

    An ``lr`` entry in ``params`` replaces ``budget.lr`` for this method only; the other
    entries are the method's hyperparameters. Without either, ``lr`` stays None and the method
    trains at its own ``default_lr`` (``EmbeddingMethod.fit``).

    Raises:
        BenchError: the ``lr`` entry is not a positive number.
    """
    params = dict(params)
    if LR_PARAM not in params:
        return budget, params
    lr = params.pop(LR_PARAM)
    if lr is None:
        from bench.core.errors import BenchError

        raise BenchError("a method's own lr must be a positive number (got None)")
    return Budget(**{**budget.to_dict(), "lr": lr}), params
