"""The *Escapes per defect class* section: how often each defect class was passed as good.

The headline escape rate pools the defect classes by their test counts, so a frequent, obvious
defect can hide the escapes of a rare or subtle one. Where defect classes differ in severity
(ELPV's ``defect-33``, ``defect-67``, ``defect-100``: an expert unsure against an expert
certain), a certain defect passed as good is not an unsure one passed as good, and this section
shows each class on its own. Records made before ``escape_rate_by_class`` existed do not carry
it: for them the section is left out, and their reports are as they were.
"""

from __future__ import annotations

from bench.report import plots
from bench.report.cells import Cells, Value, headline
from bench.report.format import rate_ci, table
from bench.report.operating import label_free
from bench.report.overview import rate_legend


def _escape_of(code: str) -> Value:
    """The headline rule's escape rate of the defect class ``code`` (None where not recorded)."""
    return lambda rec: (rec.metrics.escape_rate_by_class or {}).get(code)


def escape_section(cells: Cells, good: str | None, rule: str) -> list[str]:
    """The section's markdown lines; none when no record of the study carries the rates."""
    codes = sorted(
        {
            code
            for seeds in cells.by_cell.values()
            for rec in seeds.values()
            if rec.metrics is not None
            for code in rec.metrics.escape_rate_by_class or {}
        },
        key=plots.code_key,
    )
    if not codes:
        return []
    rows = [
        {
            "method": m,
            "scheme": s,
            "escape %": rate_ci(cells.rate(m, s, headline("escape"))),
            **{f"{code} %": rate_ci(cells.rate(m, s, _escape_of(code))) for code in codes},
        }
        for m, s in cells.cells()
        if not label_free(cells, m, s)  # a baseline predicts no class: it has no escapes
    ]
    return [
        "### Escapes per defect class",
        "",
        f"Test split, rule `{rule}`: the share of each defect class's parts judged good (`{good}`), an"
        " escape. *escape %* pools the defect classes by their test counts; the columns show each"
        " on its own, since classes differ in what an escape costs (a defect an expert was certain"
        f" of, passed as good, against one an expert was unsure of). {rate_legend()}",
        "",
        table(rows),
    ]
