"""The answer section argues from the paired test, and names only what a grid lacks (issue 24 item 10)."""

from __future__ import annotations

from helpers_records import record

from bench.report import render_report

UNIFORM_ESCAPES = (0.02, 0.05, 0.08, 0.03, 0.06)
# Each seed 0.5 points lower, with a little noise: the unpaired intervals overlap widely, the
# paired difference is consistent and significant.
LOWER_ESCAPES = (0.0149, 0.0452, 0.0748, 0.0251, 0.0553)


def _answer_line(text: str, method: str) -> str:
    section = text.split("### Answer to the reference question", 1)[1]
    return next(line for line in section.splitlines() if line.startswith(f"- **{method}**"))


def test_a_paired_difference_that_holds_is_never_called_weak_evidence(tmp_path):
    records = [
        record("siamese", scheme, seed, accuracy=0.95, escape=escape)
        for scheme, escapes in (("uniform", UNIFORM_ESCAPES), ("effective-number", LOWER_ESCAPES))
        for seed, escape in enumerate(escapes)
    ]
    line = _answer_line(render_report(records, tmp_path), "siamese")
    assert "`effective-number`" in line and "overlaps" in line
    assert "weak" not in line
    assert "paired" in line


def test_a_missing_scheme_is_named_alone(tmp_path):
    records = [
        record("mean-anchor-triplet", scheme, seed, accuracy=0.95, escape=0.05 + 0.01 * seed)
        for scheme in ("uniform", "sqrt")
        for seed in range(3)
    ]
    text = render_report(records, tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("**The reference's diagnosis"))
    assert line.endswith("cannot be tested here: `good-x5` did not run.")


def _with_point(rec: dict, overkill_at_1pct: float) -> dict:
    """``rec`` carrying an operating point at the 1% escape budget with that test overkill."""
    point = {
        "escape_budget": 0.01,
        "threshold": 0.5,
        "val_escape_rate": 0.0,
        "val_overkill_rate": overkill_at_1pct,
        "escape_rate": 0.01,
        "overkill_rate": overkill_at_1pct,
        "cost_per_1000": {"test_mix": 1000 * overkill_at_1pct, "production_mix": 1000 * overkill_at_1pct},
    }
    rec["metrics"]["operating_points"] = [point]
    return rec


def _which_method(text: str) -> dict[str, str]:
    section = text.split("**Which method**", 1)[1].split("\n\n", 2)[1]
    return {line.split("**")[1]: line for line in section.splitlines()}


def test_the_answer_names_the_best_method_and_its_paired_runner_up_on_every_metric(tmp_path):
    # classifier: lower escape on every seed; siamese: lower overkill at the 1% budget on every
    # seed; accuracy equal. A third method trails on everything.
    noise = (0.0, 0.004, -0.003, 0.002, -0.001, 0.003)
    records = []
    for seed, e in enumerate(noise):
        records += [
            _with_point(record("classifier", "uniform", seed, accuracy=0.9 + e, escape=0.03 + e), 0.20 + e),
            _with_point(
                record("siamese", "uniform", seed, accuracy=0.9 - e, escape=0.06 + e / 2), 0.10 + e / 3
            ),
            _with_point(record("mined-triplet", "uniform", seed, accuracy=0.8, escape=0.2 - e), 0.6 - e),
        ]
    lines = _which_method(render_report(records, tmp_path))
    escape = lines["lowest escape (rule)"]
    assert "`classifier` under `uniform`, 3.1%" in escape
    assert "runner-up `siamese` (6.0%)" in escape and "-3.0 pp" in escape
    assert escape.endswith(": significant at 0.05 after Holm adjustment.")
    at_budget = lines["lowest overkill at escape ≤ 1%"]
    assert "`siamese` under `uniform`, 10.0%" in at_budget and "runner-up `classifier` (20.1%)" in at_budget
    assert "-10.1 pp" in at_budget and "over 3 tests" in at_budget
    assert lines["highest accuracy (rule)"].endswith("not significant at 0.05 after Holm adjustment.")


def test_a_grid_without_operating_points_keeps_its_older_answer(tmp_path):
    records = [
        record(m, "uniform", seed, accuracy=0.9, escape=0.05 + 0.01 * seed)
        for m in ("classifier", "siamese")
        for seed in range(3)
    ]
    assert "**Which method**" not in render_report(records, tmp_path)
