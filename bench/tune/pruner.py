"""The pruners: stop a trial early (``bench tune --pruner``). ``median`` (the default) stops a
trial whose running validation score is worse than the median of the finished trials at the same
step; ``halving`` and ``hyperband`` are Optuna's multi-fidelity pruners (asynchronous successive
halving, and Hyperband's brackets of it), their resources counted in training steps.

Every trial reports its running score at its cumulative training step (``bench.tune.objective``),
so a step is a unit of cost: a trial stopped at step 300 of 1,200 cost a quarter of a full one,
and ``tuning.md`` counts the steps each method consumed.

Why a running median: Optuna's ``MedianPruner`` compares a trial's *best* intermediate value so far with that
median, which suits learning curves that only rise. These do not: a metric-learning run can
score well early and collapse later (on the inspection set the siamese defaults went from
0.78 at step 150 to 0.63 at the end), and judged by its best value such a trial is never
stopped. In a 10-trial siamese study ``MedianPruner`` stopped none of the four trials it
could judge, though one stood at 0.907 at the end of its first fit against a median of 0.913
(it had been at 0.942). ``RunningMedianPruner`` judges the current value, and would have
stopped it.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState

#: ``--pruner`` choices, with what each is.
PRUNERS = {
    "median": "running-median pruner",
    "halving": "successive-halving pruner (asynchronous, Optuna's SuccessiveHalvingPruner)",
    "hyperband": "Hyperband pruner (Optuna's HyperbandPruner)",
}
#: The multi-fidelity pruners keep the best third of the trials at each rung.
REDUCTION_FACTOR = 3


def create_pruner(
    name: str, warmup_steps: int, max_steps: int, startup_trials: int
) -> optuna.pruners.BasePruner:
    """The pruner ``name`` (a key of ``PRUNERS``), its budget counted in training steps.

    Args:
        name: ``median``, ``halving`` or ``hyperband``.
        warmup_steps: no trial is stopped before this step; the multi-fidelity pruners' first
            rung (their minimum resource) is here, so every pruner judges from the same point on.
        max_steps: a full trial's steps (every fit's), Hyperband's maximum resource.
        startup_trials: complete trials the median pruner waits for.
    """
    start = max(1, warmup_steps)
    if name == "median":
        return RunningMedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=start, reduction_factor=REDUCTION_FACTOR)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=start, max_resource=max(start, max_steps), reduction_factor=REDUCTION_FACTOR
        )
    raise ValueError(f"unknown pruner {name!r}")


def describe_pruner(
    name: str, probe_every: int, warmup_steps: int, max_steps: int, startup_trials: int
) -> str:
    """The pruner in one phrase, for ``tuning.md``."""
    probes = f"on validation probes every {probe_every} steps"
    if name == "median":
        return f"{PRUNERS[name]} {probes}, from step {warmup_steps} of the first fit on, after {startup_trials} complete trials"
    rungs = []
    rung = max(1, warmup_steps)
    while rung < max_steps:
        rungs.append(rung)
        rung *= REDUCTION_FACTOR
    return (
        f"{PRUNERS[name]} {probes}, budget in training steps: rungs at step {', '.join(map(str, rungs))}"
        f" of {max_steps}, the best 1/{REDUCTION_FACTOR} promoted at each"
        + (" (each bracket starts at a later one)" if name == "hyperband" and len(rungs) > 1 else "")
    )


class RunningMedianPruner(optuna.pruners.BasePruner):
    """Prune when the trial's latest reported value is worse than the median of the values
    the complete trials reported at the same step.

    Args:
        n_startup_trials: complete trials needed before any trial is pruned.
        n_warmup_steps: steps before which no trial is pruned.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.n_startup_trials:
            return False
        others = [t.intermediate_values[step] for t in complete if step in t.intermediate_values]
        if not others:
            return False
        median = statistics.median(others)
        value = trial.intermediate_values[step]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        return value < median if maximize else value > median
