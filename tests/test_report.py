"""The report is rebuilt from results.jsonl alone, completely and deterministically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.report import load_records, write_report

FIXTURE = Path(__file__).parent / "fixtures" / "run" / "results.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, bytes]:
    run = tmp_path_factory.mktemp("run")
    shutil.copy(FIXTURE, run / "results.jsonl")
    first = write_report(run).read_bytes()
    return run, first


def test_fixture_is_small_and_complete():
    assert FIXTURE.stat().st_size < 300_000
    records = load_records(FIXTURE.parent)
    assert len(records) == 36  # the rerun of one hash keeps only its later ok line
    assert sum(r.status == "failed" for r in records) == 1
    methods = {r.config.method for r in records}
    assert methods == {"siamese", "mean-anchor-triplet", "mined-triplet", "classifier"}


def test_report_has_every_section(built):
    run, first = built
    text = first.decode()
    for heading in (
        "### Setup",
        "### Headline: method x scheme",
        "### Answer to the reference question",
        "### Paired comparisons against uniform",
        "### Paired comparisons between methods",
        "### Per-method metrics",
        "### Timing",
        "### What the samplers drew",
        "### Failed cells",
    ):
        assert heading in text
    assert "| method" in text and "accuracy %" in text and "escape %" in text
    assert "train images/s" in text and "peak MB" not in text  # the fixture's peak is a lifetime one
    assert "RuntimeError: loss is NaN at step 412" in text  # the failed cell's error
    assert "mean-anchor-triplet" in text and "good-x5" in text
    assert "NaN" not in text.replace("loss is NaN", "")


def test_plots_are_valid_non_blank_pngs_linked_relatively(built):
    run, first = built
    pngs = sorted((run / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"embedding.png", "accuracy-escape.png", "good-k.png"} <= names
    assert sum(n.startswith("confusion-") for n in names) == 4
    for png in pngs:
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert np.asarray(im.convert("L"), dtype=float).std() > 0
        assert f"](plots/{png.name})" in first.decode()


def test_rebuild_is_byte_identical(built):
    run, first = built
    assert write_report(run).read_bytes() == first


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    lines = FIXTURE.read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    (tmp_path / "results.jsonl").write_text("".join(lines[:-1]) + "not json at all\n" + torn)
    with pytest.warns(UserWarning, match="not valid JSON"):
        records = load_records(tmp_path)
    expected = {json.loads(line)["hash"] for line in lines[:-1]}
    assert {r.hash for r in records} == expected
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert write_report(tmp_path).exists()


def test_empty_run_dir_gives_a_report(tmp_path):
    assert "No records yet" in write_report(tmp_path).read_text()
