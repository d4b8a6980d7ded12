"""Schemes that give the same per-class weights: which ones, found from the weights alone.

Two schemes with the same weights on a dataset draw the same batches, so they train the same
model: on the inspection set, whose good class has five times the images of each defect class,
``natural`` (weights proportional to the class counts) gives exactly the weights of ``good-x5``.
The grid trains such a group once (``bench.grid.driver``) and the report shows and counts it
once (``bench.report.same_weights``); both ask this module. Pure Python, without torch, so the
report reads the rule exactly as the grid applies it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Weights are compared normalized, each within this relative (and absolute) tolerance: far
#: below any difference a sampler could show, far above float rounding (``300 / 1380`` vs ``5 / 23``).
WEIGHT_TOLERANCE = 1e-9

#: A plan's weights: the probabilities at the first step and at the last (the same for a static plan).
Weights = tuple[Sequence[float], Sequence[float]]


def _normalized(weights: Sequence[float]) -> list[float]:
    total = math.fsum(weights)
    return [w / total for w in weights] if total > 0 else list(weights)


def same_weights(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two per-class weight vectors (aligned by class) are equal once normalized."""
    if len(a) != len(b):
        return False
    return all(
        math.isclose(x, y, rel_tol=WEIGHT_TOLERANCE, abs_tol=WEIGHT_TOLERANCE * 1e-3)
        for x, y in zip(_normalized(a), _normalized(b), strict=True)
    )


def same_plan(a: Weights, b: Weights) -> bool:
    """Whether two plans' weights are the same at the first step and at the last."""
    return same_weights(a[0], b[0]) and same_weights(a[1], b[1])


def weight_groups(weights: Mapping[str, Weights]) -> tuple[tuple[str, ...], ...]:
    """The names of ``weights`` grouped by equal weights (``same_plan``), every name in exactly
    one group; groups and their members in the mapping's order, so a group's first name is the
    first of them the caller listed (the grid's scheme order: the one it trains)."""
    groups: list[list[str]] = []
    for name, plan in weights.items():
        group = next((g for g in groups if same_plan(weights[g[0]], plan)), None)
        if group is None:
            groups.append([name])
        else:
            group.append(name)
    return tuple(tuple(g) for g in groups)
