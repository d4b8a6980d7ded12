"""The report never drops or mislabels a cell: every field of a cell's hash separates it or is shown."""

from __future__ import annotations

import dataclasses

import pytest
from helpers_records import record, table_rows

from bench.grid.config import CellConfig
from bench.report import render_report
from bench.sampling.budget import Budget

pytestmark = pytest.mark.usefixtures("no_plots")
SEEDS = (0, 1, 2)


def _headline(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """(study heading, method, scheme) -> headline row, over every study of the report."""
    out = {}
    studies = [line for line in text.splitlines() if line.startswith("## ")]
    for n, title in enumerate(studies):
        for row in table_rows(text, "### Headline: method x scheme", occurrence=n):
            key = (title, row["method"], row["scheme"])
            assert key not in out, f"two headline rows are labelled {key}"
            out[key] = row
    return out


def test_a_scheme_option_sweep_gives_one_labelled_row_per_option(tmp_path):
    # An effective-number beta sweep in one run directory: the cells differ only in scheme_options.
    records = [
        record("classifier", "effective-number", s, accuracy=acc, scheme_options={"beta": beta})
        for beta, acc in ((0.99, 0.5), (0.999, 0.9))
        for s in SEEDS
    ]
    rows = {(m, s): r for (_, m, s), r in _headline(render_report(records, tmp_path)).items()}
    assert set(rows) == {
        ("classifier", "effective-number (beta=0.99)"),
        ("classifier", "effective-number (beta=0.999)"),
    }
    assert rows["classifier", "effective-number (beta=0.99)"]["accuracy %"] == "50.0 (50.0–50.0)"
    assert rows["classifier", "effective-number (beta=0.999)"]["accuracy %"] == "90.0 (90.0–90.0)"
    assert {r["seeds"] for r in rows.values()} == {"3"}


def test_options_shared_by_a_whole_study_are_shown_in_its_setup(tmp_path):
    records = [
        record(
            "classifier",
            "effective-number",
            s,
            accuracy=0.5,
            scheme_options={"beta": 0.99},
            params={"head_lr": 2},
            dataset_options={"n_per_defect": 30},
        )
        for s in SEEDS
    ]
    text = render_report(records, tmp_path)
    assert "- **Dataset options:** n_per_defect=30" in text
    assert "- **Method hyperparameters:** `classifier` head_lr=2" in text
    assert "- **Scheme options:** `effective-number` beta=0.99" in text


# One alternative value for every field of a cell's hash except the seed (the replicate axis).
OTHER_VALUE = {
    "dataset": "digits",
    "method": "siamese",
    "scheme": "sqrt",
    "trunk": "cnn",
    "budget": Budget(steps=200),
    "params": (("margin", 0.5),),
    "dataset_options": (("n_per_defect", 30),),
    "scheme_options": (("beta", 0.9),),
    "headline_rule": "knn1",
    "cost_escape": 5.0,
    "cost_overkill": 2.0,
    "good_share": 0.8,
    "inputs": "global",
    "split_seed": 1,
    "augment": ("hflip",),
    "escape_budgets": (0.005,),
}


def test_every_hash_field_is_covered_here():
    assert set(OTHER_VALUE) == {f.name for f in dataclasses.fields(CellConfig)} - {"seed"}


@pytest.mark.parametrize("field", sorted(OTHER_VALUE))
def test_cells_that_differ_in_any_hash_field_are_two_rows(field, tmp_path):
    """Two groups of three seeds, equal but for ``field``: two labelled rows of three seeds each."""
    base = {"scheme_options": {"beta": 0.99}} if field == "scheme_options" else {}
    scheme = "effective-number" if field == "scheme_options" else "uniform"
    first = [record("classifier", scheme, s, accuracy=0.25, **base) for s in SEEDS]
    value = OTHER_VALUE[field]
    if field in ("params", "dataset_options", "scheme_options"):
        value = dict(value)
    changes = {"method": "classifier", "scheme": scheme, field: value}
    second = []
    for s in SEEDS:
        kw = {k: v for k, v in changes.items() if k not in ("method", "scheme")}
        second.append(record(changes["method"], changes["scheme"], s, accuracy=0.75, **kw))
    assert len({r["hash"] for r in first + second}) == 6
    rows = _headline(render_report(first + second, tmp_path))
    assert len(rows) == 2, f"{field}: rows {sorted(rows)}"
    assert sorted(r["accuracy %"] for r in rows.values()) == ["25.0 (25.0–25.0)", "75.0 (75.0–75.0)"]
    assert {r["seeds"] for r in rows.values()} == {"3"}


def test_a_record_under_a_second_hash_of_the_same_config_is_named_not_silently_dropped(tmp_path):
    records = [record("classifier", "uniform", s, accuracy=0.5) for s in SEEDS]
    copy = {**records[0], "hash": "f" * 16, "metrics": {**records[0]["metrics"], "accuracy": 0.0}}
    text = render_report([*records, copy], tmp_path)
    assert (
        f"- **Not counted:** 1 record(s) with the config of another under a different hash: `{'f' * 16}`"
        in text
    )
    (row,) = table_rows(text, "### Headline: method x scheme")
    assert row["accuracy %"] == "50.0 (50.0–50.0)" and row["seeds"] == "3"


def test_variants_whose_values_print_alike_still_get_distinct_labels(tmp_path):
    records = [
        record("classifier", "uniform", s, accuracy=acc, params={"k": k})
        for k, acc in ((1, 0.25), ("1", 0.75))
        for s in SEEDS
    ]
    rows = {m: r["accuracy %"] for (_, m, _), r in _headline(render_report(records, tmp_path)).items()}
    assert rows == {"classifier (k=1)": "25.0 (25.0–25.0)", 'classifier (k="1")': "75.0 (75.0–75.0)"}


def test_data_file_fingerprints_are_shown_and_a_change_during_the_run_is_named(tmp_path):
    records = [record("classifier", "uniform", s, accuracy=0.5) for s in SEEDS]
    for rec, fingerprint in zip(records, ("aaaa", "aaaa", "bbbb"), strict=True):
        rec["dataset"]["fingerprint"] = fingerprint
    text = render_report(records, tmp_path)
    assert "- **Data files:** 2 fingerprints, the files changed during the run: `aaaa`, `bbbb`" in text
    text = render_report(records[:2], tmp_path)
    assert "- **Data files:** fingerprint `aaaa` (paths, sizes and modification times)" in text


def test_the_terminal_summary_tells_studies_apart_as_the_report_does(tmp_path):
    from bench.report.summary import summary_tables

    records = [
        record("classifier", "uniform", s, accuracy=0.5, cost_escape=c) for c in (5.0, 10.0) for s in SEEDS
    ]
    titles = [title for title, _ in summary_tables(records)]
    assert len(titles) == 2 and len(set(titles)) == 2
    report_titles = [
        line[3:] for line in render_report(records, tmp_path).splitlines() if line.startswith("## ")
    ]
    assert [t.split(": ")[0] for t in titles] == report_titles
