"""Paired comparisons between methods: which method is better under the same scheme and seeds.

Every method of a study trains on the same split, inputs and budget for a given seed, so two
methods' results under one scheme pair up by seed. For each scheme and each pair of methods
the report gives the mean difference (first minus second, in points), its 95% Student-t
interval and the two-sided paired t test. The comparisons of one metric form a family (every
pair of methods under every scheme), Holm-adjusted like the scheme comparisons
(``bench/report/paired.py``): a ranking is read off all of them at once.
"""

from __future__ import annotations

from itertools import combinations

from bench.report.cells import Cells, Value, headline
from bench.report.format import table
from bench.report.paired import PAIRED_METRICS, adjust_family, comparison_columns, family_heading
from bench.report.stats import ALPHA, paired_comparison


def method_pair(cells: Cells, first: str, second: str, scheme: str, value: Value) -> dict:
    """``first`` minus ``second`` under ``scheme`` on the seeds both ran (in points)."""
    a = cells.values(first, scheme, value)
    b = cells.values(second, scheme, value)
    seeds = sorted(set(a) & set(b))

    def points(d):
        return [None if d[k] is None else float(d[k]) * 100.0 for k in seeds]

    return paired_comparison(points(a), points(b))


def method_family(cells: Cells, value: Value) -> dict[tuple[str, str, str], dict]:
    """Every ``(scheme, first, second)`` comparison on ``value``, each with ``p_holm`` (adjusted
    within the family) and ``family`` (how many tests it holds)."""
    keys = [
        (s, a, b)
        for s in cells.schemes
        for a, b in combinations(cells.methods, 2)
        if (a, s) in cells.by_cell and (b, s) in cells.by_cell
    ]
    return adjust_family({key: method_pair(cells, key[1], key[2], key[0], value) for key in keys})


def method_pairs_section(cells: Cells) -> list[str]:
    """The section: one table per metric of ``PAIRED_METRICS``; nothing for a one-method study."""
    if len(cells.methods) < 2:
        return []
    out = [
        "### Paired comparisons between methods",
        "",
        "First method minus second under the same scheme, on the seeds both ran (same split, inputs"
        " and budget per seed), in percentage points: the mean difference with its 95% Student-t"
        " interval and the two-sided paired t test. The comparisons of one metric form a family"
        f" (every pair of methods under every scheme); *p Holm* is Holm-adjusted within it, and a"
        f" difference counts as significant only when *p Holm* < {ALPHA:g}.",
        "",
    ]
    from bench.report.operating import paired_metrics

    values = {metric: headline(metric) for metric in PAIRED_METRICS} | paired_metrics(cells)
    for metric, value in values.items():
        # A label-free baseline has no class metric: no row of those families (nothing to pair).
        comparisons = {k: c for k, c in method_family(cells, value).items() if c.get("n")}
        if not comparisons:
            continue
        rows = [
            {"scheme": s, "first": a, "second": b, **comparison_columns(c)}
            for (s, a, b), c in comparisons.items()
        ]
        out += [family_heading(metric, comparisons), "", table(rows)]
    return out
