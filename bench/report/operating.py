"""Operating points in the report: what the records' good-vs-defect metrics say, as a line runs.

Everything here appears only in a study whose records carry operating points (records made
since ``bench.evaluation.operating``): a report of older records is rebuilt byte for byte. Such a
study also gets, in its headline table, a column per escape budget (test overkill at the
threshold chosen on validation), the count of collapsed seeds beside each cell, ``n/a`` for the
class metrics of a label-free baseline, and a note when it has fewer than ``FEW_SEEDS`` seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.grid.record import Record
from bench.report.cells import Cells, Value, counted
from bench.report.format import mean_ci, rate_ci, table
from bench.report.overview import cost_columns, cost_legend

#: Below this many seeds the headline says its intervals are wide.
FEW_SEEDS = 5
#: The t quantiles behind that warning (two-sided 95%).
_T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78}


def carries_operating_points(cells: Cells) -> bool:
    """Whether any record of the study holds operating points (new columns and sections)."""
    return any(
        rec.metrics.operating_points is not None for seeds in cells.by_cell.values() for rec in seeds.values()
    )


def budgets(cells: Cells) -> list[float]:
    """The escape budgets of the study's records, smallest first."""
    found = {
        p.escape_budget
        for seeds in cells.by_cell.values()
        for rec in seeds.values()
        for p in rec.metrics.operating_points or ()
        if p.escape_budget is not None
    }
    return sorted(found)


def budget_text(budget: float) -> str:
    """``1%``, ``0.5%``."""
    return f"{100 * budget:g}%"


def point(rec: Record, budget: float):
    """The headline rule's operating point of ``rec`` at ``budget`` (None where it has none)."""
    return next((p for p in rec.metrics.operating_points or () if p.escape_budget == budget), None)


def point_value(budget: float, field: str) -> Value:
    """A field of the operating point at ``budget`` (rates counted over the test split's parts)."""

    def value(rec: Record):
        p = point(rec, budget)
        return None if p is None else getattr(p, field)

    return counted(value, "metrics", "operating_points", field)


def point_cost(budget: float, get: Callable) -> Value:
    def value(rec: Record):
        p = point(rec, budget)
        return None if p is None else get(p)  # the cost getters read `.cost_per_1000`

    return value


def overkill_column(budget: float) -> str:
    return f"overkill % at escape ≤ {budget_text(budget)}"


def label_free(cells: Cells, m: str, s: str) -> bool:
    """Whether the cell is a label-free baseline (its records have no class rule)."""
    from bench.report.cells import label_free_records

    return label_free_records(cells.by_cell.get((m, s), {}).values())


def collapsed_text(cells: Cells, m: str, s: str) -> str:
    """``3 of 5 ⚠`` for a cell with collapsed seeds, ``0`` without, ``–`` without health entries."""
    recs = list(cells.by_cell.get((m, s), {}).values())
    known = [rec for rec in recs if rec.health is not None and rec.health.collapsed is not None]
    if not known:
        return "–"
    hit = sum(bool(rec.health.collapsed) for rec in known)
    return f"{hit} of {len(known)} ⚠" if hit else "0"


def headline_columns(cells: Cells, m: str, s: str, row: dict[str, str]) -> dict[str, str]:
    """``row`` (a headline row) with ``n/a`` for a baseline's class rates, the overkill at each
    escape budget and the collapsed seeds."""
    if label_free(cells, m, s):
        for key in ("accuracy %", "escape %", "overkill %"):
            row[key] = "n/a"
    for b in budgets(cells):
        row[overkill_column(b)] = rate_ci(cells.rate(m, s, point_value(b, "overkill_rate")))
    row["collapsed"] = collapsed_text(cells, m, s)
    return row


def _counts(cells: Cells, below: int) -> str:
    """``3`` or ``3 to 4``: the seed counts of the cells with fewer than ``below`` seeds."""
    counts = sorted({len(v) for v in cells.by_cell.values() if len(v) < below})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


def headline_notes(cells: Cells) -> list[str]:
    """The lines under the headline table of a study with operating points."""
    out = [
        "*overkill at escape ≤ b*: test overkill at the threshold chosen on the validation split to"
        " keep validation escapes within b, applied unchanged to the test split (see *Operating"
        " points*). *collapsed*: seeds whose training collapsed (⚠; see *Training health*): their"
        " numbers describe a collapsed embedding. `n/a`: a label-free baseline predicts no class.",
        "",
    ]
    seeds = min((len(v) for v in cells.by_cell.values()), default=0)
    few = list(dict.fromkeys(f"`{m}`" for m, s in cells.cells() if len(cells.by_cell[(m, s)]) < FEW_SEEDS))
    if 1 < seeds < FEW_SEEDS and len(few) < len(cells.by_cell):
        out += [
            f"**Few seeds:** {', '.join(few)} with {_counts(cells, FEW_SEEDS)} seeds, so their intervals"
            f" are wide: a 95% Student-t interval over n seeds multiplies the spread by"
            f" t(n - 1) = {_T95.get(seeds, 0):.2f} at n = {seeds}, against {_T95[FEW_SEEDS]:.2f} at"
            f" n = {FEW_SEEDS}, and the spread itself is estimated from so few values.",
            "",
        ]
    elif 1 < seeds < FEW_SEEDS:
        out += [
            f"**Few seeds:** {seeds} per cell, so the intervals are wide: a 95% Student-t interval over"
            f" n seeds multiplies the spread by t(n - 1) = {_T95.get(seeds, 0):.2f} at n = {seeds}, against"
            f" {_T95[FEW_SEEDS]:.2f} at n = {FEW_SEEDS}, and the spread itself is estimated from {seeds}"
            " values.",
            "",
        ]
    return out


def operating_section(cells: Cells, plot_dir: Path, prefix: str, rule: str) -> list[str]:
    """The *Operating points* section: threshold-free separation, the operating point at each
    escape budget with its cost, and the escape-vs-overkill curve."""
    from bench.report.trade_off_plot import plot_trade_off

    rows = []
    costs = cost_columns(cells, short=True)
    for m, s in cells.cells():
        row = {
            "method": m,
            "scheme": s,
            "AUROC": mean_ci(cells.summary(m, s, lambda rec: rec.metrics.defect_auroc), 3),
            "AP": mean_ci(cells.summary(m, s, lambda rec: rec.metrics.defect_ap), 3),
        }
        for b in budgets(cells):
            at = f" @{budget_text(b)}"
            row["val escape %" + at] = rate_ci(cells.rate(m, s, point_value(b, "val_escape_rate")))
            row["test escape %" + at] = rate_ci(cells.rate(m, s, point_value(b, "escape_rate")))
            row["test overkill %" + at] = rate_ci(cells.rate(m, s, point_value(b, "overkill_rate")))
            for col, cost in costs:
                row[col + at] = mean_ci(cells.summary(m, s, point_cost(b, cost)), 1)
        rows.append(row)
    out = [
        "### Operating points (good vs defect)",
        "",
        f"Every rule scores each image good-vs-defect (higher: more likely defective); the rule here is"
        f" the headline rule `{rule}`, and a label-free baseline's own score. *AUROC* and *AP*"
        " (average precision, defect the positive class) need no threshold: mean ± half-width over"
        " seeds. At each escape budget b the threshold is chosen **on the validation split only**: the"
        " largest score threshold whose validation escape rate is within b (so the least validation"
        " overkill), i.e. the score of the (a + 1)-th lowest-scored validation defect, a = floor(b x"
        " validation defects); a part scoring at or above it is judged defective. *val escape* is the"
        " escape it achieves there (with few validation defects a budget is coarse: with 50, any b"
        " below 2% allows none); the same threshold applied to the test split gives *test escape* and"
        " *test overkill*, and the cost per 1,000 parts at them. No threshold is chosen on the test"
        f" split. Rates in %, mean (95% logit-scale interval). {cost_legend(cells)}",
        "",
        table(rows),
    ]
    series = {}
    for m in cells.methods:
        for s in cells.schemes:
            curves = [rec.metrics.overkill_at_escape for rec in cells.by_cell.get((m, s), {}).values()]
            curves = [c for c in curves if c is not None and c.escape]
            if curves:
                points = [
                    (p.escape_rate, p.overkill_rate)
                    for rec in cells.by_cell[(m, s)].values()
                    for p in rec.metrics.operating_points or ()
                    if p.escape_rate is not None and p.overkill_rate is not None
                ]
                series.setdefault(s, {})[m] = (curves, points)
    if series:
        path = plot_dir / f"{prefix}escape-overkill.png"
        plot_trade_off(path, series)
        rel = path.relative_to(plot_dir.parent).as_posix()
        title = "Escape vs overkill on the test split, per method"
        out += [
            "",
            f"**{title}**: the least test overkill at each test escape level over every threshold"
            " (the test split's own trade-off, an *oracle* curve: no line can pick its threshold on"
            " the test split), median over seeds with the min–max band; crosses: each seed's"
            " operating point at the validation-chosen threshold. Log axes: small rates matter.",
            "",
            f"![{title}]({rel})",
            "",
        ]
    return out


def paired_metrics(cells: Cells) -> dict[str, Value]:
    """The extra paired metrics (scheme and method comparisons): overkill at each escape budget."""
    return {f"overkill at escape ≤ {budget_text(b)}": point_value(b, "overkill_rate") for b in budgets(cells)}
