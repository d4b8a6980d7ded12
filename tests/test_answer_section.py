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
