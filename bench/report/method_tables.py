"""The per-method section of the report: every prediction rule, the retrieval view and per-class
recall."""

from __future__ import annotations

from collections.abc import Callable

from bench.grid.record import Metrics
from bench.report import plots
from bench.report.cells import Cells, Value, counted
from bench.report.format import mean_ci, num, rate_ci, table
from bench.report.overview import cost_columns

#: Each rule's rates: column and ``Metrics`` field.
_RULE_RATES: tuple[tuple[str, str], ...] = (
    ("accuracy %", "accuracy"),
    ("balanced acc %", "balanced_accuracy"),
    ("macro F1 %", "macro_f1"),
    ("escape %", "escape_rate"),
    ("overkill %", "overkill_rate"),
    ("defect confusion %", "defect_confusion_rate"),
)
_RETRIEVAL_COLUMNS: tuple[tuple[str, Callable[[Metrics], float | None]], ...] = (
    ("P@1 %", lambda m: m.precision_at_1),
    ("R-precision %", lambda m: m.r_precision),
    ("MAP@R %", lambda m: m.map_at_r),
    ("P@1 per class %", lambda m: m.precision_at_1_per_class),
    ("R-precision per class %", lambda m: m.r_precision_per_class),
    ("MAP@R per class %", lambda m: m.map_at_r_per_class),
)


def _by_rule(rule: str, get: Callable[[Metrics], float | None]) -> Value:
    """A value of ``rule``'s test metrics (None for a record without that rule)."""

    def value(rec):
        metrics = (rec.metrics_by_rule or {}).get(rule)
        return None if metrics is None else get(metrics)

    return value


def _rule_rate(rule: str, field: str) -> Value:
    """The rate ``field`` of ``rule``'s test metrics, counted (``Cells.rate`` finds its parts)."""
    return counted(_by_rule(rule, lambda m: getattr(m, field)), "metrics_by_rule", rule, field)


def _val_accuracy(rule: str) -> Value:
    """``rule``'s accuracy on the validation split."""

    def value(rec):
        metrics = (rec.val_metrics_by_rule or {}).get(rule)
        return None if metrics is None else metrics.accuracy

    return counted(value, "val_metrics_by_rule", rule, "accuracy")


def _recall(code: str) -> Value:
    return lambda rec: (rec.metrics.per_class_recall or {}).get(code)


def _rules_of(cells: Cells, method: str) -> list[str]:
    from bench.evaluation.rules import RULES

    seen = {
        rule
        for (m, _), seeds in cells.by_cell.items()
        if m == method
        for rec in seeds.values()
        for rule in (rec.metrics_by_rule or {})
    }
    return [r for r in RULES if r in seen] + sorted(seen - set(RULES))


def method_sections(cells: Cells, rule: str) -> list[str]:
    out = ["### Per-method metrics", ""]
    for m in cells.methods:
        schemes = [s for s in cells.schemes if (m, s) in cells.by_cell]
        rows = []
        for s in schemes:
            for r in _rules_of(cells, m):
                row = {"scheme": s, "rule": f"**{r}**" if r == rule else r}
                for col, field in _RULE_RATES:
                    row[col] = rate_ci(cells.rate(m, s, _rule_rate(r, field)))
                for col, cost in cost_columns(cells, short=True):
                    row[col] = mean_ci(cells.summary(m, s, _by_rule(r, cost)), 1)
                row["val accuracy %"] = rate_ci(cells.rate(m, s, _val_accuracy(r)))
                rows.append(row)
        retrieval = [
            {
                "scheme": s,
                **{
                    col: rate_ci(cells.rate(m, s, lambda rec, get=get: get(rec.metrics)))
                    for col, get in _RETRIEVAL_COLUMNS
                },
            }
            for s in schemes
        ]
        codes = sorted(
            {
                c
                for s in schemes
                for rec in cells.by_cell[(m, s)].values()
                for c in rec.metrics.per_class_recall or {}
            },
            key=plots.code_key,
        )
        recall = [
            {
                "scheme": s,
                **{c: num(cells.summary(m, s, _recall(c), scale=100)["mean"], 1) for c in codes},
            }
            for s in schemes
        ]
        out += [
            f"#### {m}",
            "",
            "Test metrics by rule (headline rule in bold); rates in %, mean (95% logit-scale"
            " Student-t interval); cost per 1,000 parts, mean ± half-width of the 95% Student-t"
            " interval; *val accuracy* on the validation split:",
            "",
            table(rows),
            "Retrieval (test queries against the training split, `AccuracyCalculator`):",
            "",
            table(retrieval),
            f"<details><summary>Per-class recall % ({rule}, mean over seeds)</summary>",
            "",
            table(recall),
            "</details>",
            "",
        ]
    return out
