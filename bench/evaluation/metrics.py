"""Classification and inspection metrics of one set of predictions.

The inspection view treats the good class as the negative and every defect as a positive:

* escape rate: share of defective parts judged good (a defect shipped, the costly error);
  per defect class too (``escape_rate_by_class``), since classes differ in severity: an ELPV
  cell an expert was sure is defective, passed as good, is not the same as an unsure one;
* overkill rate: share of good parts judged defective (a good part scrapped or re-inspected);
* defect confusion rate: share of defective parts caught but given another defect's code.

Every value is a plain Python ``int``/``float``/``None`` so a result record is valid JSON;
an undefined value (no defect in the set, a class absent from the truth) is ``None``, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from bench.core.errors import BenchError

# The keys of the compact per-rule summary kept for the validation split.
COMPACT_KEYS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "escape_rate", "overkill_rate")


def _as_numpy(x: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.int64)
    return np.asarray(x, dtype=np.int64)


def _ratio(num: int, den: int) -> float | None:
    return float(num) / float(den) if den > 0 else None


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None where it is None, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def expected_cost_per_1000(
    good_share: float,
    escape_rate: float | None,
    overkill_rate: float | None,
    cost_escape: float,
    cost_overkill: float,
) -> float | None:
    """Expected cost per 1,000 parts at a class mix with ``good_share`` good parts.

    ``1000 * ((1 - good_share) * escape_rate * cost_escape + good_share * overkill_rate *
    cost_overkill)``; a rate that is undefined only matters when its share is non-zero, in
    which case the cost is undefined (None).
    """
    terms = ((1.0 - good_share, escape_rate, cost_escape), (good_share, overkill_rate, cost_overkill))
    total = 0.0
    for share, rate, cost in terms:
        if share == 0.0:
            continue
        if rate is None:
            return None
        total += share * rate * cost
    return 1000.0 * total


def escape_rate_by_class(
    y_true: torch.Tensor | np.ndarray | Sequence[int],
    y_pred: torch.Tensor | np.ndarray | Sequence[int],
    classes: Sequence[str],
    good_index: int | None,
) -> dict[str, float | None] | None:
    """The share of each defect class's parts judged good: the escape rate per defect class.

    The overall escape rate pools the defect classes by their test counts, so a frequent,
    obvious defect can hide the escapes of a rare or subtle one; per class, each severity level
    is seen on its own (ELPV's ``defect-33`` cells, which an expert thought probably fine,
    against ``defect-100`` ones, certainly defective).

    Args:
        y_true: true class indices (n,).
        y_pred: predicted class indices (n,).
        classes: the label code of each class index.
        good_index: the good class's index, or None.

    Returns:
        ``{code: share or None}`` for every class but the good one, in class order (None for a
        class absent from ``y_true``); None without a good class.
    """
    if good_index is None:
        return None
    yt, yp = _as_numpy(y_true), _as_numpy(y_pred)
    passed = yp == int(good_index)
    return {
        str(code): _ratio(int((passed & (yt == i)).sum()), int((yt == i).sum()))
        for i, code in enumerate(classes)
        if i != int(good_index)
    }


def classification_metrics(
    y_true: torch.Tensor | np.ndarray | Sequence[int],
    y_pred: torch.Tensor | np.ndarray | Sequence[int],
    classes: Sequence[str],
    good_index: int | None,
    cost_escape: float = 10.0,
    cost_overkill: float = 1.0,
    good_share: float | None = None,
) -> dict:
    """Accuracy-type metrics, the confusion matrix and the inspection view of predictions.

    Args:
        y_true: true class indices (n,).
        y_pred: predicted class indices (n,).
        classes: the original label code of each class index.
        good_index: index of the good class, or None (then the inspection fields are None).
        cost_escape: cost of one escape (a defect shipped).
        cost_overkill: cost of one overkill (a good part rejected).
        good_share: share of good parts in production, for ``cost_per_1000["production_mix"]``;
            None means the test split's own mix.

    Returns:
        A JSON-ready dict: ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
        ``per_class_recall`` ({code: float | None}), ``confusion`` ({"labels": codes,
        "matrix": rows = true, columns = predicted}), ``escape_rate``, ``overkill_rate``,
        ``escape_rate_by_class`` ({defect code: float | None}, ``escape_rate_by_class``),
        ``defect_confusion_rate``, ``test_good_share`` and ``cost_per_1000`` ({"test_mix",
        "production_mix"}).

    Raises:
        BenchError: if ``good_share`` lies outside [0, 1] or the inputs disagree in length.
    """
    yt, yp = _as_numpy(y_true), _as_numpy(y_pred)
    if yt.shape != yp.shape:
        raise BenchError(f"y_true has {yt.shape[0]} labels but y_pred has {yp.shape[0]}")
    if good_share is not None and not 0.0 <= good_share <= 1.0:
        raise BenchError(f"good_share must lie in [0, 1], got {good_share}")
    n_classes = len(classes)
    codes = [str(c) for c in classes]
    n = int(yt.shape[0])

    matrix = confusion_matrix(yt, yp, labels=np.arange(n_classes)) if n else np.zeros((n_classes,) * 2, int)
    support = matrix.sum(axis=1)
    per_class_recall = {code: _ratio(int(matrix[i, i]), int(support[i])) for i, code in enumerate(codes)}
    with warnings.catch_warnings():
        # sklearn warns when a predicted class is absent from the truth; that is expected here.
        warnings.simplefilter("ignore")
        out: dict = {
            "n": n,
            "accuracy": finite_or_none(accuracy_score(yt, yp)) if n else None,
            "balanced_accuracy": finite_or_none(balanced_accuracy_score(yt, yp)) if n else None,
            "macro_f1": finite_or_none(f1_score(yt, yp, average="macro", zero_division=0)) if n else None,
        }
    out["per_class_recall"] = per_class_recall
    out["confusion"] = {"labels": codes, "matrix": matrix.astype(int).tolist()}

    inspection = {
        "escape_rate": None,
        "escape_rate_by_class": None,
        "overkill_rate": None,
        "defect_confusion_rate": None,
        "test_good_share": None,
        "cost_per_1000": None,
    }
    if good_index is not None and n:
        g = int(good_index)
        is_good_true, is_good_pred = yt == g, yp == g
        n_good = int(is_good_true.sum())
        n_defect = n - n_good
        escape = _ratio(int((~is_good_true & is_good_pred).sum()), n_defect)
        overkill = _ratio(int((is_good_true & ~is_good_pred).sum()), n_good)
        misnamed = int((~is_good_true & ~is_good_pred & (yt != yp)).sum())
        test_share = n_good / n
        test_cost = expected_cost_per_1000(test_share, escape, overkill, cost_escape, cost_overkill)
        prod_cost = (
            test_cost
            if good_share is None
            else expected_cost_per_1000(float(good_share), escape, overkill, cost_escape, cost_overkill)
        )
        inspection = {
            "escape_rate": escape,
            "escape_rate_by_class": escape_rate_by_class(yt, yp, codes, g),
            "overkill_rate": overkill,
            "defect_confusion_rate": _ratio(misnamed, n_defect),
            "test_good_share": test_share,
            "cost_per_1000": {"test_mix": test_cost, "production_mix": prod_cost},
        }
    out.update(inspection)
    return out


def compact_metrics(metrics: dict) -> dict:
    """The few headline numbers of a full metrics dict (used for the validation split)."""
    out = {k: metrics.get(k) for k in COMPACT_KEYS}
    cost = metrics.get("cost_per_1000")
    out["cost_per_1000"] = cost.get("test_mix") if isinstance(cost, dict) else None
    return out
