"""The numbers in the report: records with known values give table cells, intervals, paired
differences, p-values and verdicts that scipy computes independently.

The expected values come from the documented formulas (``expected_interval``: the 95% Student-t
interval over seeds; ``expected_paired``: ``scipy.stats.ttest_rel`` on scheme minus uniform), so a
deliberate change of formula changes one helper here, not every assertion.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_records import record, table_rows
from scipy import special, stats

from bench.report import render_report

pytestmark = pytest.mark.usefixtures("no_plots")
SEEDS = (0, 1, 2, 3, 4)
ACCURACY = {
    "uniform": [0.91, 0.93, 0.90, 0.95, 0.92],
    "good-x5": [0.89, 0.94, 0.86, 0.93, 0.90],
}
ESCAPE_UNIFORM = [0.10, 0.12, 0.08, 0.11, 0.09]
# good-x5 minus uniform, per seed: a consistent fall (p < 0.001), a consistent rise, noise
# around zero (p = 0.93), and a fall that is not significant (p = 0.20: a multiple-comparison
# adjustment can only raise it, so it stays not significant).
SHIFTS = {
    "lowers": [-0.050, -0.052, -0.049, -0.051, -0.048],
    "raises": [0.050, 0.052, 0.049, 0.051, 0.048],
    "noise": [0.05, -0.04, 0.03, -0.06, 0.01],
    "weak": [-0.03, 0.01, 0.005, -0.02, -0.04],
}
OVERKILL = {"uniform": [0.02, 0.03, 0.01, 0.02, 0.04], "good-x5": [0.04, 0.03, 0.05, 0.02, 0.06]}


def expected_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% Student-t interval, values in %."""
    x = 100 * np.asarray(values, float)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(low), float(high)


def expected_paired(a, b) -> tuple[float, float, float, float]:
    """(mean difference, low, high, p) of a - b in percentage points, paired by seed."""
    mean, low, high = expected_interval(np.subtract(a, b))
    return mean, low, high, float(stats.ttest_rel(a, b).pvalue)


def mean_pm(values, digits: int = 1) -> str:
    mean, low, high = expected_interval(values)
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def rate_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) in % of the Student-t interval on the logit scale of the mean (delta
    method), computed here with scipy.special independently of bench.core.intervals."""
    x = np.asarray(values, float)
    m, se = x.mean(), stats.sem(x)
    half = stats.t.ppf(0.975, len(x) - 1) * se / (m * (1 - m))
    low, high = (100 * special.expit(special.logit(m) + s * half) for s in (-1, 1))
    return float(100 * m), float(low), float(high)


def rate_cell(values, digits: int = 1) -> str:
    mean, low, high = rate_interval(values)
    return f"{mean:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def escapes(shift: str) -> dict[str, list[float]]:
    return {
        "uniform": ESCAPE_UNIFORM,
        "good-x5": [u + d for u, d in zip(ESCAPE_UNIFORM, SHIFTS[shift], strict=True)],
    }


def build(shift: str, tmp_path) -> str:
    esc = escapes(shift)
    records = [
        record(
            "mean-anchor-triplet",
            scheme,
            seed,
            accuracy=ACCURACY[scheme][i],
            escape=esc[scheme][i],
            overkill=OVERKILL[scheme][i],
        )
        for scheme in ("uniform", "good-x5")
        for i, seed in enumerate(SEEDS)
    ]
    return render_report(records, tmp_path)


def test_headline_cells_are_means_with_t_interval_half_widths(tmp_path):
    text = build("lowers", tmp_path)
    rows = {r["scheme"]: r for r in table_rows(text, "### Headline: method x scheme")}
    assert set(rows) == {"uniform", "good-x5"}
    esc = escapes("lowers")
    for scheme, row in rows.items():
        assert row["method"] == "mean-anchor-triplet" and row["seeds"] == "5"
        assert row["accuracy %"] == rate_cell(ACCURACY[scheme])
        assert row["escape %"] == rate_cell(esc[scheme])
        assert row["overkill %"] == rate_cell(OVERKILL[scheme])
        cost = [
            1000 * (0.5 * e * 10 + 0.5 * o) / 100 for e, o in zip(esc[scheme], OVERKILL[scheme], strict=True)
        ]
        assert row["cost / 1000 parts"] == mean_pm(cost, digits=1)
    # The interval stays inside 0-100% and is asymmetric near the top (the plain t-interval
    # would be 92.2 ± 2.4, i.e. 89.8 to 94.6).
    assert rows["uniform"]["accuracy %"] == "92.2 (89.5–94.3)"


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_paired_table_is_scheme_minus_uniform_with_ttest_rel(shift, tmp_path):
    text = build(shift, tmp_path)
    esc = escapes(shift)
    for heading, a, b in (
        ("**Escape** (family of 1 test):", esc["good-x5"], esc["uniform"]),
        ("**Accuracy** (family of 1 test):", ACCURACY["good-x5"], ACCURACY["uniform"]),
    ):
        (row,) = table_rows(text, heading)
        d, low, high, p = expected_paired(a, b)
        assert (row["method"], row["scheme"], row["seeds"]) == ("mean-anchor-triplet", "good-x5", "5")
        assert row["Δ pp"] == f"{d:.1f}"
        assert row["95% CI"] == f"{low:.1f} to {high:.1f}"
        # A family of one test: Holm leaves p as it is.
        assert row["p"] == row["p Holm"] == p_text(p)
    assert row["Δ pp"] == "-1.8"


VERDICTS = {
    "lowers": "is supported: good-x5 lowers escapes significantly at 0.05 after Holm adjustment",
    "raises": "is contradicted: good-x5 raises escapes significantly at 0.05 after Holm adjustment",
    "noise": "is not confirmed: the difference is not significant at 0.05 after Holm adjustment,",
    "weak": "is not confirmed: the difference is not significant at 0.05 after Holm adjustment,",
}


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_the_verdict_on_the_reference_diagnosis_follows_the_paired_test(shift, tmp_path):
    text = build(shift, tmp_path)
    esc = escapes(shift)
    d, low, high, p = expected_paired(esc["good-x5"], esc["uniform"])
    assert p < 0.001 if shift in ("lowers", "raises") else 0.15 < p  # far from 0.05
    (line,) = [x for x in text.splitlines() if x.startswith("**The reference's diagnosis")]
    assert line.startswith(f"**The reference's diagnosis for `mean-anchor-triplet`** {VERDICTS[shift]}")
    assert (
        f"Paired over 5 seeds, good-x5 minus uniform: escape {d:.1f} pp (CI {low:.1f} to {high:.1f},"
        f" p = {p_text(p)}, Holm-adjusted over the 1 escape comparisons p = {p_text(p)})" in line
    )
    d, low, high, p = expected_paired(OVERKILL["good-x5"], OVERKILL["uniform"])
    assert f"overkill {d:.1f} pp (CI {low:.1f} to {high:.1f}, p = {p_text(p)}," in line


def test_the_best_scheme_answer_names_the_winner_its_interval_and_the_paired_test(tmp_path):
    text = build("lowers", tmp_path)
    esc = escapes("lowers")
    (line,) = [x for x in text.splitlines() if x.startswith("- **mean-anchor-triplet**")]
    mean, low, high = rate_interval(esc["good-x5"])
    assert (
        f"the lowest mean escape rate is under `good-x5`: {mean:.1f}% (95% CI {low:.1f} to {high:.1f}, n = 5)."
        in line
    )
    mean, low, high = rate_interval(esc["uniform"])
    assert (
        f"Its interval lies clear of the runner-up `uniform` ({mean:.1f}%, CI {low:.1f} to {high:.1f})."
        in line
    )
    d, low, high, p = expected_paired(esc["good-x5"], esc["uniform"])
    assert (
        f"the paired difference is {d:.1f} pp (CI {low:.1f} to {high:.1f}, 5 seeds; p = {p_text(p)},"
        f" Holm-adjusted over the 1 escape comparisons p = {p_text(p)}): significant at 0.05 after Holm adjustment."
        in line
    )


def test_overlapping_intervals_defer_to_the_paired_comparison(tmp_path):
    text = build("noise", tmp_path)
    esc = escapes("noise")
    (line,) = [x for x in text.splitlines() if x.startswith("- **mean-anchor-triplet**")]
    best, runner = sorted(esc, key=lambda s: np.mean(esc[s]))
    mean, low, high = rate_interval(esc[runner])
    assert f"under `{best}`" in line
    assert (
        f"Its interval overlaps that of `{runner}` ({mean:.1f}%, CI {low:.1f} to {high:.1f}); unpaired"
        " intervals cannot settle which is lower, the paired comparison on the same seeds can." in line
    )


def test_methods_compare_in_pairs_per_scheme_holm_adjusted_over_every_pair(tmp_path):
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    methods = ("siamese", "mean-anchor-triplet", "classifier")  # report order: siamese first
    accuracy = {
        (m, s): list(np.round(0.80 + 0.05 * i + 0.01 * j + rng.normal(0, 0.01, len(SEEDS)), 4))
        for i, m in enumerate(methods)
        for j, s in enumerate(("uniform", "good-x5"))
    }
    records = [record(m, s, seed, accuracy[(m, s)][k]) for (m, s) in accuracy for k, seed in enumerate(SEEDS)]
    text = render_report(records, tmp_path)
    assert "### Paired comparisons between methods" in text
    rows = table_rows(text, "**Accuracy** (family of 6 tests):")
    expected = {}
    for s in ("uniform", "good-x5"):
        for a, b in (
            ("siamese", "mean-anchor-triplet"),
            ("siamese", "classifier"),
            ("mean-anchor-triplet", "classifier"),
        ):
            expected[(s, a, b)] = expected_paired(accuracy[(a, s)], accuracy[(b, s)])
    assert [(r["scheme"], r["first"], r["second"]) for r in rows] == list(expected)
    holm = multipletests([e[3] for e in expected.values()], method="holm")[1]
    for row, (d, low, high, p), p_holm in zip(rows, expected.values(), holm, strict=True):
        assert row["seeds"] == "5"
        assert row["Δ pp"] == f"{d:.1f}"
        assert row["95% CI"] == f"{low:.1f} to {high:.1f}"
        assert row["p"] == p_text(p) and row["p Holm"] == p_text(p_holm)
    # siamese trails the classifier by about 10 points on every seed
    assert float(rows[1]["Δ pp"]) < -8


def test_a_scheme_whose_seeds_all_tie_is_not_called_clear_of_the_runner_up(tmp_path):
    # Every seed escapes 0% under good-x5; uniform has one escape in five seeds. The zero-width
    # interval of identical values says nothing about the spread, so no winner is claimed.
    esc = {"uniform": [0.0, 0.0, 0.002, 0.0, 0.0], "good-x5": [0.0] * 5}
    records = [
        record("mean-anchor-triplet", s, seed, 0.95, escape=esc[s][i])
        for s in ("uniform", "good-x5")
        for i, seed in enumerate(SEEDS)
    ]
    text = render_report(records, tmp_path)
    (line,) = [x for x in text.splitlines() if x.startswith("- **mean-anchor-triplet**")]
    assert "under `good-x5`" in line and "lies clear" not in line
    assert "Every seed gave the same rate, so its interval has no width" in line


def test_escapes_per_defect_class_are_shown_where_records_carry_them(tmp_path):
    """A table of each defect class's escape rate over seeds, after the headline; a study whose
    records carry no ``escape_rate_by_class`` (every record made before it) has no such section."""
    old = [record("classifier", "uniform", seed, 0.8) for seed in (0, 1)]
    assert "### Escapes per defect class" not in render_report(old, tmp_path)
    new = []
    for seed, (e11, e12) in enumerate(((0.5, 0.1), (0.3, 0.1))):
        rec = record("classifier", "uniform", seed, 0.8, escape=0.2)
        for metrics in (rec["metrics"], rec["metrics_by_rule"]["knn5"]):
            metrics["escape_rate_by_class"] = {"11": e11, "12": e12}
        new.append(rec)
    text = render_report(new, tmp_path)
    assert text.index("### Escapes per defect class") > text.index("### Headline: method x scheme")
    (row,) = table_rows(text, "### Escapes per defect class")
    assert row["method"] == "classifier" and row["escape %"].startswith("20.0")
    assert row["11 %"].startswith("40.0 (") and row["12 %"].startswith("10.0")
