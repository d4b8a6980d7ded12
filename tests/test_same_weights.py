"""Schemes with the same per-class weights (``natural`` and ``good-x5`` on the inspection set) are
found from the weights, trained once, shown once named together and counted once per family
(issue 24 item 11)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_records import record, table_rows

from bench.datasets.split import split_counts
from bench.grid import driver
from bench.grid.config import GridConfig
from bench.grid.data_cache import cached_dataset
from bench.grid.executors import ExecutorOptions
from bench.grid.runner import same_weights_record
from bench.grid.store import RESULTS_FILE, load_records
from bench.report import render_report
from bench.report.cells import Cells, as_records
from bench.report.paired import families
from bench.sampling.budget import Budget
from bench.sampling.same_weights import weight_groups
from bench.sampling.schemes import DEFAULT_SCHEMES, same_weight_groups

# ------------------------------------------------------------------------------- detection


def test_natural_is_good_x5_on_the_inspection_training_split():
    data = cached_dataset("inspection", {})
    train, _, _ = split_counts(data.class_counts())
    groups = same_weight_groups(DEFAULT_SCHEMES, train, data.good_index)
    assert groups == (("uniform",), ("natural", "good-x5"), ("sqrt",), ("effective-number",))


def test_natural_and_good_x5_differ_where_the_good_class_is_not_five_times_a_defect_class():
    counts = torch.tensor([100, 60, 60])  # good 5:3
    groups = same_weight_groups(("natural", "good-x5", "uniform"), counts, good_index=0)
    assert groups == (("natural",), ("good-x5",), ("uniform",))
    # A balanced set: natural is uniform, and the grid's order says which comes first.
    assert same_weight_groups(("natural", "uniform"), torch.tensor([7, 7, 7]), 0) == (("natural", "uniform"),)


def test_weights_equal_up_to_rounding_are_one_group_and_a_moving_plan_is_not_its_start():
    flat = [1 / 3] * 3
    groups = weight_groups(
        {
            "natural": ([300 / 1380, 60 / 1380], [300 / 1380, 60 / 1380]),
            "good-x5": ([5, 1], [5, 1]),  # unnormalized: compared normalized
            "near": ([5 + 1e-6, 1], [5 + 1e-6, 1]),
            "uniform": (flat, flat),
            "progressive": (flat, [0.5, 0.25, 0.25]),
        }
    )
    assert groups == (("natural", "good-x5"), ("near",), ("uniform",), ("progressive",))


# ------------------------------------------------------------------------------ trained once

QUICK = {"n_per_defect": 30}  # good 150, each defect 30 (x5): natural == good-x5


@pytest.fixture
def counted_fits(monkeypatch):
    """The schemes of the cells the driver actually trains (the in-process executor)."""
    trained: list[str] = []
    real = driver.run_cell

    def run_cell(cell, **kw):
        trained.append(cell.scheme)
        return real(cell, **kw)

    monkeypatch.setattr(driver, "run_cell", run_cell)
    return trained


def _grid(**kw) -> GridConfig:
    return GridConfig(
        dataset="inspection",
        methods=("mean-anchor-triplet",),
        schemes=("uniform", "natural", "good-x5"),
        seeds=(0,),
        budget=Budget(steps=4, batch_images=24),
        dataset_options=QUICK,
        **kw,
    )


def test_the_grid_trains_a_group_once_and_records_every_cell(tmp_path, counted_fits):
    grid = _grid()
    outcome = driver.run_grid(grid, tmp_path, ExecutorOptions(kind="local"))
    assert sorted(counted_fits) == ["natural", "uniform"]
    records = {r.config.scheme: r for r in load_records(tmp_path)}
    assert set(records) == {"uniform", "natural", "good-x5"} and len(outcome.records) == 3
    shared, trained = records["good-x5"], records["natural"]
    assert shared.hash == grid.cell("mean-anchor-triplet", "good-x5", 0).hash
    assert shared.same_weights_as == "natural" and trained.same_weights_as is None
    assert shared.metrics == trained.metrics and shared.sampling == trained.sampling
    assert shared.plan["scheme"] == "good-x5" and shared.plan["start"] == trained.plan["start"]

    # Resumed: nothing to train. With only the shared record lost, it is rewritten, not trained.
    path = tmp_path / RESULTS_FILE
    lines = [line for line in path.read_text().splitlines() if json.loads(line)["hash"] != shared.hash]
    path.write_text("\n".join(lines) + "\n")
    counted_fits.clear()
    driver.run_grid(grid, tmp_path, ExecutorOptions(kind="local"), resume=True)
    assert counted_fits == []
    again = {r.config.scheme: r for r in load_records(tmp_path)}
    assert again["good-x5"].same_weights_as == "natural"
    assert again["good-x5"].metrics == trained.metrics


def test_a_shared_record_is_only_made_from_the_same_cell_under_another_scheme():
    grid = _grid()
    trained = record("mean-anchor-triplet", "natural", 0, accuracy=0.9)
    with pytest.raises(ValueError, match="not"):
        same_weights_record(grid.cell("mean-anchor-triplet", "good-x5", 1), trained)


# ----------------------------------------------------------------------------------- report

WEIGHTS = {"natural": (5, 1, 1), "good-x5": (5, 1, 1), "uniform": (1, 1, 1), "sqrt": (2.2, 1, 1)}
ESCAPES = {"uniform": 0.08, "natural": 0.05, "good-x5": 0.05, "sqrt": 0.06}
JITTER = {"uniform": (0, 0.004, 0.001), "natural": (0.002, 0, 0.003), "sqrt": (0.001, 0.003, 0)}


def _planned(method: str, scheme: str, seed: int) -> dict:
    escape = ESCAPES[scheme] + 0.01 * seed + JITTER.get(scheme, JITTER["natural"])[seed]
    rec = record(method, scheme, seed, accuracy=0.9, escape=escape)
    w = WEIGHTS[scheme]
    rec["plan"] = {
        "scheme": scheme,
        "start": {c: x / sum(w) for c, x in zip(("0", "11", "12"), w, strict=True)},
    }
    return rec


def _study(shared: bool = False) -> list[dict]:
    out = []
    for method in ("mean-anchor-triplet", "siamese"):
        for seed in range(3):
            by_scheme = {s: _planned(method, s, seed) for s in ("uniform", "natural", "sqrt")}
            good = by_scheme["natural"]
            if shared:  # written by today's grid: a copy of the trained cell
                cell = as_records([_planned(method, "good-x5", seed)])[0].config
                by_scheme["good-x5"] = same_weights_record(cell, good)
            else:  # made before: trained again, bit-identical
                by_scheme["good-x5"] = _planned(method, "good-x5", seed)
            out += by_scheme.values()
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["trained-twice", "same_weights_as"])
def test_the_report_shows_a_group_once_and_counts_it_once(tmp_path, shared):
    records = _study(shared)
    cells = Cells(as_records(records))
    assert cells.schemes == ["uniform", "natural = good-x5", "sqrt"]
    assert not cells.duplicates
    by_metric = families(cells)
    assert len(by_metric["escape"]) == 4  # 2 methods x (natural = good-x5, sqrt); not 6
    assert {c["family"] for c in by_metric["escape"].values()} == {4}

    text = render_report(records, tmp_path)
    headline = table_rows(text, "### Headline: method x scheme")
    assert [r["scheme"] for r in headline if r["method"] == "siamese"] == [
        "uniform",
        "natural = good-x5",
        "sqrt",
    ]
    assert "**Escape** (family of 4 tests):" in text
    assert "Holm-adjusted over the 4 escape comparisons" in text
    assert "good-x5 (= natural, identical weights) minus uniform" in text
    assert "- **Same weights:** `natural` and `good-x5`" in text
    pairs = table_rows(text, "### Paired comparisons between methods")
    assert sorted(r["scheme"] for r in pairs) == ["natural = good-x5", "sqrt", "uniform"]


def test_equal_weights_that_measured_differently_stay_apart(tmp_path):
    records = _study()
    records = [
        {**r, "metrics": {**r["metrics"], "escape_rate": 0.3}}
        if r["config"]["scheme"] == "good-x5" and r["config"]["seed"] == 2
        else r
        for r in records
    ]
    cells = Cells(as_records(records))
    assert cells.schemes == ["uniform", "natural", "sqrt", "good-x5"]
    assert {c["family"] for c in families(cells)["escape"].values()} == {6}


def test_a_dry_run_names_the_group_it_trains_once():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--all", "--quick", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "# good-x5 gives the weights of natural on this data: trained once, as natural" in out
