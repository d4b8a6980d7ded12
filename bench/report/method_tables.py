"""The per-method section of the report: every prediction rule, the retrieval view and per-class
recall."""

from __future__ import annotations

from bench.report import plots
from bench.report.cells import Cells, dig
from bench.report.format import mean_ci, num, rate_ci, table
from bench.report.overview import cost_columns

_RULE_RATES = (
    ("accuracy %", "accuracy"),
    ("balanced acc %", "balanced_accuracy"),
    ("macro F1 %", "macro_f1"),
    ("escape %", "escape_rate"),
    ("overkill %", "overkill_rate"),
    ("defect confusion %", "defect_confusion_rate"),
)
_RETRIEVAL_COLUMNS = (
    ("P@1 %", "precision_at_1"),
    ("R-precision %", "r_precision"),
    ("MAP@R %", "map_at_r"),
    ("P@1 per class %", "precision_at_1_per_class"),
    ("R-precision per class %", "r_precision_per_class"),
    ("MAP@R per class %", "map_at_r_per_class"),
)


def _rules_of(cells: Cells, method: str) -> list[str]:
    from bench.evaluation.rules import RULES

    seen = {
        rule
        for (m, _), seeds in cells.by_cell.items()
        if m == method
        for rec in seeds.values()
        for rule in (rec.get("metrics_by_rule") or {})
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
                for col, key in _RULE_RATES:
                    row[col] = rate_ci(cells.rate(m, s, "metrics_by_rule", r, key))
                for col, path in cost_columns(cells, short=True):
                    row[col] = mean_ci(cells.summary(m, s, "metrics_by_rule", r, *path), 1)
                row["val accuracy %"] = rate_ci(cells.rate(m, s, "val_metrics_by_rule", r, "accuracy"))
                rows.append(row)
        retrieval = [
            {
                "scheme": s,
                **{col: rate_ci(cells.rate(m, s, "metrics", key)) for col, key in _RETRIEVAL_COLUMNS},
            }
            for s in schemes
        ]
        codes = sorted(
            {
                c
                for s in schemes
                for rec in cells.by_cell[(m, s)].values()
                for c in dig(rec, "metrics", "per_class_recall", default={})
            },
            key=plots.code_key,
        )
        recall = [
            {
                "scheme": s,
                **{
                    c: num(cells.summary(m, s, "metrics", "per_class_recall", c, scale=100)["mean"], 1)
                    for c in codes
                },
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
