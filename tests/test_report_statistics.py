"""The report's statistics on records with known values: Holm-adjusted verdicts, power notes,
rate intervals, one-seed wording, the seed-target section, and its columns."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from scipy import stats

from bench.report import render_report
from bench.report.plots import confusion_norm, text_colour
from bench.report.stats import seeds_for_power

UNIFORM = [5.0, 6.0, 7.0, 5.0, 6.0]
# good-x5 lowers escapes on every seed: raw p = 0.03, but it is one of four comparisons.
ESCAPE = {
    "uniform": UNIFORM,
    "good-x5": [u + d for u, d in zip(UNIFORM, [-2.0, -0.5, -3.5, -1.0, -2.0], strict=True)],
    "sqrt": [u + d for u, d in zip(UNIFORM, [1.0, -2.0, 0.5, 1.5, -1.0], strict=True)],
    "natural": [u + d for u, d in zip(UNIFORM, [-0.5, 2.0, -1.0, 0.0, 1.5], strict=True)],
    "effective-number": [u + d for u, d in zip(UNIFORM, [3.0, -1.0, 2.0, -2.0, 0.5], strict=True)],
}


def record(method, scheme, seed, accuracy, escape, overkill=1.0, good_share=None, **extra):
    config = {
        "dataset": "synthetic",
        "dataset_options": {},
        "trunk": "mlp",
        "budget": {"steps": 10},
        "headline_rule": "knn5",
        "cost_escape": 10.0,
        "cost_overkill": 1.0,
        "good_share": good_share,
        "method": method,
        "scheme": scheme,
        "seed": seed,
        "params": {},
        "scheme_options": {},
    }
    cost = 1000 * (0.8 * escape / 100 * 10 + 0.2 * overkill / 100)
    return {
        "hash": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
        "config": config,
        "status": "ok",
        "dataset": {"good": "0"},
        "metrics": {
            "accuracy": accuracy / 100,
            "escape_rate": escape / 100,
            "overkill_rate": overkill / 100,
            "cost_per_1000": {"test_mix": cost, "production_mix": cost if good_share is None else 2 * cost},
        },
        **extra,
    }


@pytest.fixture(scope="module")
def five_schemes(tmp_path_factory) -> str:
    records = [
        record("mean-anchor-triplet", scheme, seed, 90.0 + seed, escape)
        for scheme, values in ESCAPE.items()
        for seed, escape in enumerate(values)
    ]
    return render_report(records, tmp_path_factory.mktemp("plots"))


def _row(text: str, heading: str, scheme: str, method: str = "mean-anchor-triplet") -> list[str]:
    """The cells of the (method, scheme) row in the first table under ``heading``."""
    block = text[text.index(heading) :]
    line = next(ln for ln in block.splitlines() if ln.startswith(f"| {method} ") and f" {scheme} " in ln)
    return [c.strip() for c in line.strip("|").split("|")]


def test_p_values_are_holm_adjusted_within_the_family_and_verdicts_follow_them(five_schemes):
    from statsmodels.stats.multitest import multipletests

    schemes = ["natural", "sqrt", "good-x5", "effective-number"]  # the report's scheme order
    raw = [stats.ttest_rel(ESCAPE[s], ESCAPE["uniform"]).pvalue for s in schemes]
    adjusted = multipletests(raw, method="holm")[1]
    assert raw[2] < 0.05 < adjusted[2]  # the fixture's point: significant only unadjusted
    assert "**Escape** (family of 4 tests)" in five_schemes
    for scheme, p, p_holm in zip(schemes, raw, adjusted, strict=True):
        row = _row(five_schemes, "**Escape**", scheme)
        assert row[5] == f"{p:.3f}" and row[6] == f"{p_holm:.3f}"
    assert "**The reference's diagnosis for `mean-anchor-triplet`** is not confirmed" in five_schemes
    assert f"Holm-adjusted over the 4 escape comparisons p = {adjusted[2]:.3f}" in five_schemes
    assert "good-x5 lowers escapes significantly" not in five_schemes


def test_power_notes_are_figures_for_the_observed_spread_at_the_level_the_verdicts_use(five_schemes):
    from statsmodels.stats.power import TTestPower

    diff = np.subtract(ESCAPE["good-x5"], ESCAPE["uniform"])
    sd = diff.std(ddof=1)
    # The verdicts are Holm-adjusted over the family of 4 escape tests: a new difference counts
    # as significant whatever the others show once its p reaches 0.05 / 4.
    level = 0.05 / 4
    need, one = seeds_for_power(diff.mean(), sd, alpha=level), seeds_for_power(1.0, sd, alpha=level)
    power = TTestPower()
    assert power.power(diff.mean() / sd, need, level) >= 0.8 > power.power(diff.mean() / sd, need - 1, level)
    assert need > seeds_for_power(diff.mean(), sd, alpha=0.05)  # not the unadjusted level
    row = _row(five_schemes, "**Escape**", "good-x5")
    assert row[2] == "5" and row[7] != row[8]  # the observed difference (-1.8) is not 1 pp
    assert row[7] == str(need) and row[8] == str(one)
    assert f"would need about {need} seeds to detect a difference this size with 80% power at 0.0125" in (
        five_schemes
    )
    assert "0.05 over the family's size" in five_schemes


def test_a_power_search_for_differences_that_agree_to_rounding_ends(tmp_path):
    # Issue 24, item 9: `bench run --all --quick --seeds 2` recorded its cells, then its report
    # counted seeds for power past 500,000 for a paired difference of 1.65 with a spread of 1e-14.
    records = [
        record("classifier", scheme, seed, 100 * (acc - shift), 5.0)
        for seed, acc in enumerate((0.5165, 0.8665))
        for scheme, shift in (("uniform", 0.0165), ("good-x5", 0.0))
    ]
    text = render_report(records, tmp_path)
    row = _row(text, "**Accuracy**", "good-x5", "classifier")
    assert row[3] == "1.6" and row[5] == "–"  # no test: every seed gave the same difference
    assert row[7] == "2" and row[8] == "2"  # two pairs detect an effect of 1e14 sd


def test_rates_that_are_the_same_on_every_seed_get_the_interval_of_their_counts(tmp_path):
    counts = {"good": "0", "counts": {"test": {"0": 125, "11": 225, "12": 225}}}
    records = [record("classifier", "uniform", s, 96.0, 2.0, overkill=0.0, dataset=counts) for s in range(10)]
    text = render_report(records, tmp_path)
    row = _row(text, "### Headline", "uniform", "classifier")
    # 0 of 10 x 125 good parts: 0.0 to 0.3% (Clopper-Pearson), not 0.0 to 0.0; 2% of 10 x 450
    # defective parts, and 96% of 10 x 575 parts.
    assert row[5] == "0.0 (0.0–0.3)" and row[4] == "2.0 (1.6–2.5)" and row[3] == "96.0 (95.5–96.5)"
    assert "Clopper-Pearson interval of the events pooled over the seeds' parts" in text
    # Without the counts behind the rates, there is nothing to widen them by.
    bare = render_report([{**r, "dataset": {"good": "0"}} for r in records], tmp_path)
    assert _row(bare, "### Headline", "uniform", "classifier")[5] == "0.0 (0.0–0.0)"


def test_rate_columns_show_the_logit_interval_and_stay_in_range(five_schemes):
    values = ESCAPE["sqrt"]
    m, n = np.mean(values) / 100, len(values)
    se = np.std(values, ddof=1) / 100 / np.sqrt(n) / (m * (1 - m))
    half = stats.t.ppf(0.975, n - 1) * se
    lo, hi = (100 / (1 + np.exp(-(np.log(m / (1 - m)) + k * half))) for k in (-1, 1))
    row = _row(five_schemes, "### Headline", "sqrt")
    assert row[4] == f"{100 * m:.1f} ({lo:.1f}–{hi:.1f})"
    for low, high in re.findall(r"\((-?\d+\.\d)–(-?\d+\.\d)\)", five_schemes):
        assert 0.0 <= float(low) <= float(high) <= 100.0


def test_one_cost_column_unless_a_production_share_is_set(five_schemes, tmp_path):
    assert "cost / 1000 parts" in five_schemes and "(production)" not in five_schemes
    records = [record("classifier", "uniform", s, 90.0, 5.0 + s, good_share=0.99) for s in range(2)]
    text = render_report(records, tmp_path)
    assert "cost / 1000 (test mix)" in text and "cost / 1000 (production)" in text
    assert "g = 0.99" in text
    # Only uniform ran: no empty families.
    assert "nothing to compare" in text and "family of 0" not in text


def test_one_seed_is_worded_as_one_seed(tmp_path):
    records = [record("mean-anchor-triplet", s, 0, 90.0, e[0]) for s, e in ESCAPE.items()]
    text = render_report(records, tmp_path)
    assert "1 seeds" not in text and "CI n/a" not in text and "overlaps" not in text
    assert "with one seed there is no interval, so no scheme can be called better" in text
    assert "cannot be tested with one seed" in text


def test_seed_target_section_says_which_groups_stopped_early_and_which_hit_the_cap(tmp_path):
    target = {"ci": 1.5, "max_seeds": 6, "metric": "accuracy", "against": "uniform"}
    steady = [
        record("classifier", "uniform", s, 94.0 + 0.1 * (s % 2), 5.0, seed_target=target) for s in range(3)
    ]
    noisy = [
        record("siamese", "uniform", s, [50, 90, 70, 95, 40, 85][s], 9.0, seed_target=target)
        for s in range(6)
    ]
    text = render_report(steady + noisy, tmp_path)
    section = text[text.index("### Seeds: target and stopping") : text.index("### Answer")]
    assert "1 of 2 stopped within it, 1 hit the cap" in section
    assert (
        _row(section, "Target", "uniform", "classifier")[5]
        == "within ±1.5 after 3 seeds: stopped before the cap of 6"
    )
    assert _row(section, "Target", "uniform", "siamese")[5] == "still above ±1.5: hit the cap of 6 seeds"
    plain = render_report(steady, tmp_path)
    assert "stopped before the cap" in plain
    # Records of the rule before min_seeds say what it did to the means; newer ones the minimum.
    assert "could stop a group at its start seeds" in section and "pulling the means" not in section
    newer = [{**r, "seed_target": {**target, "min_seeds": 5}} for r in steady + noisy]
    section = render_report(newer, tmp_path)
    assert "No group stopped before 5 seeds (`min_seeds`)" in section
    assert "does not steer the means" not in section
    assert "### Seeds: target" not in render_report([{**r, "seed_target": None} for r in steady], tmp_path)


def test_confusion_colours_span_the_counts_and_numbers_stay_readable():
    matrices = {"uniform": (["0", "1"], np.array([[120, 5], [1, 24]]))}
    norm = confusion_norm(matrices)
    assert norm.vmin == pytest.approx(1 / 125) and norm.vmax == 1.0  # one count in the largest row
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    assert text_colour(viridis(1.0)) == "black"  # yellow: dark ink
    assert text_colour(viridis(0.0)) == "white"  # dark purple: light ink


def test_numbers_never_print_as_minus_zero(five_schemes):
    from bench.report.format import num

    assert [num(-0.04, 1), num(-0.0, 1), num(-0.06, 1), num(-0.0004, 3)] == ["0.0", "0.0", "-0.1", "0.000"]
    assert not re.search(r"(?<![\d.])-0\.0(?!\d*[1-9])", five_schemes)


def test_the_bar_plot_promises_intervals_only_when_there_are_some(tmp_path, monkeypatch):
    from bench.report import plots

    titles = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: titles.append(fig._suptitle.get_text()))
    one = {"mean": 90.0, "n": 1, "ci_low": None, "ci_high": None}
    three = {"mean": 90.0, "n": 3, "ci_low": 85.0, "ci_high": 93.0}
    plots.plot_bars(tmp_path / "a.png", ["m"], ["uniform"], {"accuracy (%)": {("m", "uniform"): one}})
    plots.plot_bars(tmp_path / "b.png", ["m"], ["uniform"], {"accuracy (%)": {("m", "uniform"): three}})
    assert titles[0] == "One seed per bar: no intervals"
    assert "95%" in titles[1] and "logit" in titles[1]
