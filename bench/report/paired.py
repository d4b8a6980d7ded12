"""Paired comparisons of each scheme against the baseline scheme, as families of tests.

Every comparison the report makes is a paired t test of one method's scheme against
``uniform`` on the seeds both ran. The comparisons of one metric in one study form a *family*
(every method, every scheme but the baseline; schemes that gave the same weights are one
scheme, ``bench.report.same_weights``, and one test per method): the report picks its "best" scheme out of these
after seeing them, so each p value is Holm-adjusted within its family, and verdicts are worded
from the adjusted value. Next to each comparison: how many seeds a paired t test would need to
detect the observed difference, and a 1-point difference, with 80% power at the level its verdict
needs (5% over the family's size, ``power_level``).
"""

from __future__ import annotations

from bench.report.cells import BASELINE_SCHEME, Cells, Value, headline
from bench.report.format import count, interval, num, p_text, seeds_text, table
from bench.report.stats import (
    ALPHA,
    MAX_POWER_SEEDS,
    POWER,
    holm,
    paired_comparison,
    seeds_for_power,
)

#: The headline rates compared in pairs (names of the record's ``HEADLINE_METRICS``); each is a
#: family of its own.
PAIRED_METRICS = ("escape", "overkill", "accuracy")


def paired(
    cells: Cells,
    method: str,
    scheme: str,
    value: Value,
    scale: float = 100.0,
    baseline: str = BASELINE_SCHEME,
) -> dict:
    """``scheme`` minus ``baseline`` for ``method`` on the seeds both have (in points)."""
    a = cells.values(method, scheme, value)
    b = cells.values(method, baseline, value)
    seeds = sorted(set(a) & set(b))

    def scaled(d):
        return [None if d[k] is None else float(d[k]) * scale for k in seeds]

    return paired_comparison(scaled(a), scaled(b))


def family(cells: Cells, value: Value) -> dict[tuple[str, str], dict]:
    """Every (method, scheme) comparison against the baseline on ``value``, with its family.

    Each comparison (``paired_comparison``'s dict) gains ``p_holm`` (Holm-adjusted within the
    family; None without a test), ``family`` (how many tests the family holds), and
    ``seeds_power`` / ``seeds_power_1pp`` (seeds for 80% power at the observed difference and
    at 1 point, at ``power_level``; None where undefined).
    """
    base = cells.shown_as(BASELINE_SCHEME)  # ``uniform = natural`` on balanced data
    pairs = [(m, s) for m, s in cells.cells() if s != base and (m, base) in cells.by_cell]
    out = adjust_family({pair: paired(cells, *pair, value, baseline=base) for pair in pairs})
    for cmp in out.values():
        cmp["seeds_power"] = seeds_for_power(cmp["mean_diff"], cmp["sd_diff"], power_level(cmp))
        cmp["seeds_power_1pp"] = seeds_for_power(1.0, cmp["sd_diff"], power_level(cmp))
    return out


def power_level(cmp: dict) -> float:
    """The level the power notes use: ``ALPHA`` over the family's size, the level Holm's
    adjustment holds the smallest p value to. A new difference that reaches it is significant
    after the adjustment whatever the family's other tests show, as the verdicts require."""
    return ALPHA / max(1, cmp.get("family") or 1)


def adjust_family(comparisons: dict) -> dict:
    """Give each comparison of one family ``p_holm`` (Holm-adjusted over the family; None
    without a test) and ``family`` (how many tests the family holds); returns the dict."""
    adjusted = holm([cmp["p_value"] for cmp in comparisons.values()])
    size = sum(p is not None for p in adjusted)
    for cmp, p in zip(comparisons.values(), adjusted, strict=True):
        cmp["p_holm"] = p
        cmp["family"] = size
    return comparisons


def comparison_columns(cmp: dict) -> dict[str, str]:
    """The columns every table of paired comparisons shows: seeds, the mean difference, its
    interval, p and Holm's p."""
    return {
        "seeds": str(cmp["n"]),
        "Δ pp": num(cmp["mean_diff"], 1),
        "95% CI": interval(cmp, 1),
        "p": p_text(cmp["p_value"]),
        "p Holm": p_text(cmp["p_holm"]),
    }


def family_heading(metric: str, comparisons: dict) -> str:
    """``**Escape** (family of 16 tests):``."""
    size = next(iter(comparisons.values()))["family"] if comparisons else 0
    return f"**{metric.capitalize()}** (family of {size} test{'s' if size != 1 else ''}):"


def families(cells: Cells) -> dict[str, dict[tuple[str, str], dict]]:
    """``family`` for each metric of ``PAIRED_METRICS``, then for the overkill at each escape budget
    where the records carry operating points (computed once per study: statsmodels' Holm
    adjustment runs a full garbage collection on every call)."""
    from bench.report.operating import paired_metrics

    out = {metric: family(cells, headline(metric)) for metric in PAIRED_METRICS}
    return out | {name: family(cells, value) for name, value in paired_metrics(cells).items()}


def significant(cmp: dict) -> bool:
    """Significant at ``ALPHA`` after the family's Holm adjustment."""
    return cmp.get("p_holm") is not None and cmp["p_holm"] < ALPHA


def p_phrase(cmp: dict, metric: str) -> str:
    """``p = 0.012, Holm-adjusted over the 16 escape comparisons p = 0.190`` (or why there is none)."""
    if cmp["n"] < 2:
        return f"no test with {seeds_text(cmp['n'])}"
    if cmp["p_value"] is None:
        return "no test: every seed gave the same difference"
    return (
        f"p = {p_text(cmp['p_value'])}, Holm-adjusted over the {cmp['family']} {metric} comparisons"
        f" p = {p_text(cmp['p_holm'])}"
    )


def power_text(seeds: int | None) -> str:
    """A ``seeds_for_power`` answer: ``23``, ``1,204``, ``> 10,000`` (more than it counts to), ``–``."""
    return f"> {MAX_POWER_SEEDS:,}" if seeds is not None and seeds > MAX_POWER_SEEDS else count(seeds)


def power_phrase(cmp: dict) -> str:
    """``80% power to detect this difference would take about 23 seeds (a 1-point one: 9)``."""
    observed, one = cmp.get("seeds_power"), cmp.get("seeds_power_1pp")
    if one is None:
        return ""
    if observed is None:
        at = "no number of seeds (it is zero)"
    elif observed > MAX_POWER_SEEDS:
        at = f"more than {MAX_POWER_SEEDS:,} seeds"
    else:
        at = f"about {power_text(observed)} seeds"
    return (
        f" A paired t test would need {at} to detect a difference this size with {POWER:.0%} power"
        f" at {power_level(cmp):.3g} ({power_text(one)} for 1 pp; {ALPHA:g} over the family's"
        f" {max(1, cmp.get('family') or 1)} tests, as Holm's adjustment asks); it has {cmp['n']}."
    )


def paired_section(cells: Cells, by_metric: dict[str, dict] | None = None) -> list[str]:
    out = [
        "### Paired comparisons against uniform",
        "",
        "Scheme minus `uniform` for the same method on the same seeds, in percentage points: the mean"
        " difference with its 95% Student-t interval, and the two-sided paired t test"
        " (`scipy.stats.ttest_rel`). The comparisons of one metric form a family: *p Holm* is"
        " Holm-adjusted within it (`statsmodels` `multipletests`), and a difference counts as"
        f" significant only when *p Holm* < {ALPHA:g}. *Seeds for 80% power*: how many paired seeds a"
        " two-sided paired t test would need to detect the observed difference, and a difference of"
        f" 1 pp, at the level the verdicts need: {ALPHA:g} over the family's size, the level Holm's"
        " adjustment holds the smallest p value to; it takes the observed spread of the differences"
        " as the true one (Student's noncentral t); compare with *seeds*. p is `–` with fewer than"
        " two seeds or zero spread.",
        "",
    ]
    by_metric = by_metric if by_metric is not None else families(cells)
    if not any(by_metric.values()):
        return [*out[:2], "No scheme ran beside `uniform` on the same method: nothing to compare.", ""]
    for metric, comparisons in by_metric.items():
        rows = [
            {
                "method": m,
                "scheme": s,
                **comparison_columns(c),
                "seeds for 80% power (Δ)": power_text(c["seeds_power"]),
                "seeds for 80% power (1 pp)": power_text(c["seeds_power_1pp"]),
            }
            for (m, s), c in comparisons.items()
        ]
        out += [family_heading(metric, comparisons), "", table(rows)]
    return out
