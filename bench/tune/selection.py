"""Which trial of a study is the best: its score, and a tie rule that never depends on scheduling.

Trial numbers follow the order in which workers asked for trials, so with several workers they
depend on timing; picking the first of tied trials (Optuna's ``best_trial``) would let the
scheduler choose the tuned parameters. Validation accuracy is a count over a few hundred images,
so ties are common (on the inspection set three classifier trials scored 0.9696 on both fits).
Among the complete trials with the best score:

1. the default trial, if it is one of them (tuning then changed nothing that the score sees);
2. else the trial whose validation probes were best on average (the running score the pruner
   watched, at every probe of every fit: it got there sooner and stayed there);
3. else the trial whose parameters come first in canonical JSON (an arbitrary but fixed order).

Each criterion is a function of the trial's own parameters and fits, never of its number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from bench.core.canonical import canonical_json

#: Scores this close (relative) are one score: a mean of the same counts summed in another order.
TIE_TOLERANCE = 1e-12


def is_default(trial: FrozenTrial) -> bool:
    """Whether ``trial`` ran the method's defaults (the first trial of every study)."""
    return bool(trial.user_attrs.get("defaults"))


def tied_best(trials: Sequence[FrozenTrial], direction: str) -> list[FrozenTrial]:
    """The complete trials that share the best score, best first by the tie rule."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return []
    sign = 1.0 if direction == "maximize" else -1.0
    top = max(sign * t.value for t in complete)
    tied = [t for t in complete if math.isclose(sign * t.value, top, rel_tol=TIE_TOLERANCE, abs_tol=0.0)]

    def probes(trial: FrozenTrial) -> float:
        values = list(trial.intermediate_values.values())
        return sign * sum(values) / len(values) if values else -math.inf

    def params(trial: FrozenTrial) -> str:
        return canonical_json(trial.user_attrs.get("params") or trial.params)

    return sorted(tied, key=lambda t: (not is_default(t), -probes(t), params(t)))


def best_trial(trials: Sequence[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The best complete trial (ties broken by the module's rule); None when none is complete."""
    tied = tied_best(trials, direction)
    return tied[0] if tied else None
