"""The pruner: stop a trial whose running validation score is worse than the median of the
finished trials at the same step.

Optuna's ``MedianPruner`` compares a trial's *best* intermediate value so far with that
median, which suits learning curves that only rise. These do not: a metric-learning run can
score well early and collapse later (on the inspection set the siamese defaults went from
0.78 at step 150 to 0.63 at the end), and judged by its best value such a trial is never
stopped. In a 10-trial siamese study ``MedianPruner`` stopped none of the four trials it
could judge, though one stood at 0.907 at the end of its first fit against a median of 0.913
(it had been at 0.942). This pruner judges the current value, and would have stopped it.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState


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
