"""What a tuning is: the grid it tunes for, the trials per method, the seeds and the objective."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from bench.core.errors import BenchError
from bench.grid.config import GridConfig
from bench.tune.pruner import PRUNERS

#: Objective name -> (Optuna direction, what it is, for humans).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "validation accuracy of the headline rule"),
    "cost": ("minimize", "validation cost per 1,000 parts"),
    "map_at_r": ("maximize", "validation MAP@R"),
}

#: Tuning seeds start here, away from the seeds a final ``bench run`` uses (0, 1, 2, ...), so the
#: final runs train from initialisations and draws the tuning never saw.
TUNE_SEED_BASE = 1000

#: Schemes a tuning uses unless ``--scheme`` or a config file names others.
TUNE_SCHEMES = ("uniform",)

#: Validation probes per fit that feed the pruner, and the share of the first fit during which
#: no trial is pruned (its early scores say little about its final one).
PROBES_PER_FIT = 4
WARMUP_SHARE = 0.5

#: Trials run before the pruner may prune (the first is the defaults).
PRUNER_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class TuneConfig:
    """One tuning: ``trials`` Optuna trials per method of ``grid`` (the same for each), every
    trial scored as the mean over ``seeds`` x ``grid.schemes`` fits on the validation split.

    Attributes:
        grid: what is trained and how it is scored (its ``seeds`` are not used; its
            ``method_params`` are held fixed; ``budget.lr`` is the first trial's lr, or
            each method's ``default_lr`` when None).
        trials: trials per method.
        seeds: the training seeds of every trial.
        objective: a key of ``OBJECTIVES``.
        sampler_seed: seeds the TPE sampler.
        pruner: a key of ``bench.tune.pruner.PRUNERS``.
    """

    grid: GridConfig
    trials: int = 30
    seeds: tuple[int, ...] = (TUNE_SEED_BASE, TUNE_SEED_BASE + 1)
    objective: str = "accuracy"
    sampler_seed: int = 0
    pruner: str = "median"

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise BenchError(f"--trials must be at least 1 (got {self.trials!r})")
        if not self.seeds:
            raise BenchError("--tune-seeds must be at least 1")
        if self.objective not in OBJECTIVES:
            raise BenchError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.pruner not in PRUNERS:
            raise BenchError(f"unknown pruner {self.pruner!r}; choose one of {', '.join(PRUNERS)}")

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective][0]

    @property
    def fits_per_trial(self) -> int:
        return len(self.seeds) * len(self.grid.schemes)

    @property
    def trial_steps(self) -> int:
        """A full trial's training steps (every fit's): what a pruned trial saves a part of."""
        return self.grid.budget.steps * self.fits_per_trial

    @property
    def probe_every(self) -> int:
        """Steps between validation probes: a multiple of 10, where a fit reports its progress."""
        return max(10, self.grid.budget.steps // PROBES_PER_FIT // 10 * 10)

    @property
    def warmup_steps(self) -> int:
        return int(self.grid.budget.steps * WARMUP_SHARE)

    def score_name(self) -> str:
        """The objective in a few words: ``validation knn5 accuracy``."""
        rule = self.grid.headline_rule
        return {
            "accuracy": f"validation {rule} accuracy",
            "cost": f"validation {rule} cost per 1,000 parts",
            "map_at_r": "validation MAP@R",
        }[self.objective]

    def describe(self) -> str:
        what = OBJECTIVES[self.objective][1]
        rule = f" (`{self.grid.headline_rule}`)" if self.objective != "map_at_r" else ""
        return f"{what}{rule}, {self.direction}d"

    def searches(self, method: str) -> bool:
        """Whether ``method`` has anything to search (its search space less the fixed parameters)."""
        from methods import get_method_class

        fixed = self.grid.method_params.get(method, {})
        return any(name not in fixed for name in get_method_class(method).search_space())

    def trials_for(self, method: str) -> int:
        """The trials ``method`` needs: ``trials``, or one (its defaults) when it has nothing to
        search, since every further trial would repeat the first."""
        return self.trials if self.searches(method) else 1

    def fingerprint(self, method: str) -> dict[str, Any]:
        """What makes one method's study: a study in the tuning directory with another
        fingerprint belongs to another grid (or another pruner). Trials, methods and executors may
        change on resume."""
        grid = asdict(self.grid)
        for key in ("methods", "seeds", "method_params", "params_source"):
            grid.pop(key, None)
        grid["budget"] = {k: v for k, v in self.grid.budget.to_dict().items() if k != "lr"}
        if grid["augment"] is None:  # the dataset's own: as before augment existed
            del grid["augment"]
        out = {
            "grid": grid,
            "method": method,
            "fixed_params": self.grid.method_params.get(method, {}),
            "seeds": list(self.seeds),
            "objective": self.objective,
            "sampler_seed": self.sampler_seed,
        }
        if self.grid.split_seed is None:
            # Studies made before split seeds existed (per-seed test splits) had neither the
            # field nor a search space in their fingerprint: they resume as what they are.
            del grid["split_seed"]
        elif method:
            out["search_space"] = search_space_text(method)
        if self.pruner != "median":  # studies made before --pruner (median) keep their fingerprint
            out["pruner"] = self.pruner
        return out

    def fingerprint_hash(self, method: str) -> str:
        text = json.dumps(self.fingerprint(method), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def search_space_text(method: str) -> dict[str, str]:
    """The method's search space as text (a study resumed under other ranges is another study)."""
    from methods import get_method_class

    return {name: repr(dist) for name, dist in get_method_class(method).search_space().items()}


def tune_seeds(count: int) -> tuple[int, ...]:
    """The ``count`` tuning seeds (``TUNE_SEED_BASE``, ``TUNE_SEED_BASE + 1``, ...)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BenchError(f"--tune-seeds must be at least 1 (got {count!r})")
    return tuple(range(TUNE_SEED_BASE, TUNE_SEED_BASE + count))
