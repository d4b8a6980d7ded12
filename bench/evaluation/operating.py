"""Operating points on a good-vs-defect score, as an inspection line sets them.

A score is higher for a part more likely defective (``bench.evaluation.scores``); a part is
*judged defective* when its score is at least the threshold t, else good. Then

* escape(t) = share of defective parts with score < t (shipped),
* overkill(t) = share of good parts with score >= t (scrapped or re-inspected).

**The threshold is chosen on the validation split only**: the largest t whose validation escape
rate is within the budget b, which is the t with the least validation overkill among those. With
n validation defects, a = floor(b x n) of them may escape, so t is the score of the (a + 1)-th
lowest-scored validation defect (ties: every defect scored at t is caught). The test split's
labels never enter it: the threshold is applied unchanged to the test split, which gives the test
escape and overkill at the budget. With few validation defects the budget is coarse (with 50, any
budget below 2% allows no escape at all), so the achieved validation escape is recorded too.
Without a validation defect there is no threshold (None).

Threshold-free: good-vs-defect AUROC and average precision (defect the positive class,
scikit-learn), and the test split's trade-off curve: the least test overkill at each test escape
level of ``CURVE_ESCAPES`` over every threshold, the ROC read as a line sees it. It is a curve of
the test split, never an operating point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from bench.core.errors import BenchError
from bench.evaluation.metrics import expected_cost_per_1000, finite_or_none

#: The escape budget when none is given (``--escape-budget``): 1% of defective parts.
DEFAULT_ESCAPE_BUDGETS: tuple[float, ...] = (0.01,)
#: Test escape levels of the trade-off curve (``overkill_at_escape``).
CURVE_ESCAPES: tuple[float, ...] = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def check_budgets(budgets: Sequence[float]) -> tuple[float, ...]:
    """The escape budgets as a sorted tuple of fractions in (0, 1).

    Raises:
        BenchError: a budget outside (0, 1), or none at all.
    """
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int | float) or not 0.0 < float(b) < 1.0:
            raise BenchError(f"an escape budget is a share of defective parts in (0, 1) (got {b!r})")
        out.append(float(b))
    if not out:
        raise BenchError("give at least one escape budget")
    return tuple(sorted(set(out)))


def _numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def allowed_escapes(budget: float, defects: int) -> int:
    """How many of ``defects`` parts may escape within ``budget``: floor(budget x defects)."""
    return int(math.floor(budget * defects + 1e-9))


def choose_threshold(scores, is_defect, budget: float) -> float | None:
    """The largest threshold whose escape rate on these parts is within ``budget``.

    The score of the (a + 1)-th lowest-scored defect, a = ``allowed_escapes``; None without a
    defect. Call it on the validation split only.
    """
    defect = np.sort(_numpy(scores)[np.asarray(is_defect, dtype=bool)])
    if defect.size == 0:
        return None
    return float(defect[min(allowed_escapes(budget, defect.size), defect.size - 1)])


def rates_at(scores, is_defect, threshold: float | None) -> tuple[float | None, float | None]:
    """(escape, overkill) when a part is judged defective at score >= ``threshold``."""
    if threshold is None:
        return None, None
    s, d = _numpy(scores), np.asarray(is_defect, dtype=bool)
    judged = s >= threshold
    escape = float((~judged[d]).mean()) if d.any() else None
    overkill = float(judged[~d].mean()) if (~d).any() else None
    return escape, overkill


def separation(scores, is_defect) -> tuple[float | None, float | None]:
    """Good-vs-defect AUROC and average precision (defect positive); None without both kinds.

    The same numbers as scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (ties
    included; ``tests/test_operating.py`` checks them against both), computed from one sort:
    on a few hundred parts, scikit-learn's input checks cost several times the metrics, and
    every rule of every cell pays them.
    """
    s, d = _numpy(scores), np.asarray(is_defect, dtype=bool)
    if not d.any() or d.all() or not np.isfinite(s).all():
        return None, None
    positives, negatives = int(d.sum()), int((~d).sum())
    ranks = rankdata(s)  # ties share their mean rank: a tied pair counts one half
    auroc = (ranks[d].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, hits = s[order], np.cumsum(d[order])
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]  # one point per threshold
    tp = hits[last_of_tie]
    precision, recall = tp / (last_of_tie + 1), tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return finite_or_none(float(auroc)), finite_or_none(ap)


def trade_off_curve(scores, is_defect, levels: Sequence[float] = CURVE_ESCAPES) -> dict | None:
    """The least overkill at each escape level over every threshold of these parts (the test
    split's curve: not an operating point); None without both good and defective parts."""
    d = np.asarray(is_defect, dtype=bool)
    if not d.any() or d.all():
        return None
    overkill = [rates_at(scores, d, choose_threshold(scores, d, e))[1] for e in levels]
    return {"escape": list(levels), "overkill": overkill}


def operating_metrics(
    val_scores,
    val_defect,
    test_scores,
    test_defect,
    budgets: Sequence[float] = DEFAULT_ESCAPE_BUDGETS,
    cost_escape: float = 10.0,
    cost_overkill: float = 1.0,
    good_share: float | None = None,
) -> dict:
    """One rule's good-vs-defect metrics: test AUROC and AP, the test trade-off curve, and per
    escape budget the threshold chosen on validation with its validation and test rates.

    Returns:
        ``defect_auroc``, ``defect_ap``, ``overkill_at_escape`` ({"escape", "overkill"} or None)
        and ``operating_points``: per budget ``escape_budget``, ``threshold``, ``val_escape_rate``
        (achieved), ``val_overkill_rate``, ``escape_rate`` and ``overkill_rate`` (test) and
        ``cost_per_1000`` ({"test_mix", "production_mix"}) at those test rates.
    """
    auroc, ap = separation(test_scores, test_defect)
    test_defect = np.asarray(test_defect, dtype=bool)
    test_good = float((~test_defect).mean()) if test_defect.size else None
    points = []
    for budget in check_budgets(budgets):
        threshold = finite_or_none(choose_threshold(val_scores, val_defect, budget))
        val_escape, val_overkill = rates_at(val_scores, val_defect, threshold)
        escape, overkill = rates_at(test_scores, test_defect, threshold)
        costs = None
        if test_good is not None and threshold is not None:
            test_cost = expected_cost_per_1000(test_good, escape, overkill, cost_escape, cost_overkill)
            share = test_good if good_share is None else float(good_share)
            costs = {
                "test_mix": test_cost,
                "production_mix": expected_cost_per_1000(share, escape, overkill, cost_escape, cost_overkill),
            }
        points.append(
            {
                "escape_budget": budget,
                "threshold": threshold,
                "val_escape_rate": val_escape,
                "val_overkill_rate": val_overkill,
                "escape_rate": escape,
                "overkill_rate": overkill,
                "cost_per_1000": costs,
            }
        )
    return {
        "defect_auroc": auroc,
        "defect_ap": ap,
        "overkill_at_escape": trade_off_curve(test_scores, test_defect),
        "operating_points": points,
    }
