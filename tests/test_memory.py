"""A cell's peak memory is what that cell added, not the worker process's lifetime peak."""

from __future__ import annotations

import pytest
import torch
from helpers_records import record, table_rows

from bench.core.memory import PeakMemory, _reset_high_water_mark
from bench.grid.config import CellConfig
from bench.grid.runner import run_cell
from bench.report import render_report
from bench.sampling.budget import Budget
from methods import registry
from methods.classifier import Classifier

MEASURABLE = _reset_high_water_mark()
needs_linux = pytest.mark.skipif(not MEASURABLE, reason="no /proc/self/clear_refs here")
BIG_MB = 200


def _touch(mb: int) -> None:
    buffer = torch.ones(mb * 2**20 // 4)  # every page written, so every page is resident
    del buffer


@needs_linux
def test_peak_memory_is_what_the_measured_block_added_not_the_lifetime_peak():
    big = PeakMemory().start()
    _touch(BIG_MB)
    assert big.peak_mb() >= BIG_MB * 0.95
    small = PeakMemory().start()
    _touch(20)
    assert 20 * 0.95 <= small.peak_mb() < 60


def _small_objects(mb: int) -> list[bytes]:
    """``mb`` MB in 1 kB objects: the C heap, not separate memory maps as large tensors are."""
    return [bytes([i % 256]) * 1000 for i in range(mb * 1000)]


@needs_linux
def test_heap_memory_an_earlier_cell_freed_is_counted_again():
    # An earlier cell fills the heap and frees it, while a later object pins the heap's top: the C
    # allocator keeps the freed pages, and a later cell would reuse them without its resident
    # size growing, unless they are handed back to the system before the measurement starts.
    earlier = _small_objects(100)
    pin = bytes(1000)
    del earlier
    later = PeakMemory().start()
    again = _small_objects(100)
    assert later.peak_mb() >= 95
    del again, pin


@pytest.mark.skipif(MEASURABLE, reason="this machine can measure")
def test_without_the_kernel_reset_the_figure_is_none_not_a_lifetime_peak():
    assert PeakMemory().start().peak_mb() is None


class AllocatesWhileFitting(Classifier):
    """A classifier whose fit also writes a BIG_MB buffer and frees it."""

    def fit(self, *args, **kwargs):
        _touch(BIG_MB)
        return super().fit(*args, **kwargs)


@needs_linux
def test_each_cell_records_its_own_peak(monkeypatch):
    monkeypatch.setitem(registry.METHODS.entries, "allocates", AllocatesWhileFitting)
    cell = CellConfig(
        dataset="inspection",
        method="classifier",
        scheme="uniform",
        seed=0,
        budget=Budget(steps=5, batch_images=48),
        dataset_options=(("n_per_defect", 6),),
    )
    big_cell = CellConfig(**{**cell.__dict__, "method": "allocates"})
    small, big, small_after = (run_cell(c)["timing"]["fit_eval_peak_rss_mb"] for c in (cell, big_cell, cell))
    assert big >= BIG_MB * 0.95
    assert small < BIG_MB / 2 and small_after < BIG_MB / 2  # the big cell's peak does not carry over


def test_the_report_shows_the_cells_peak_and_never_the_lifetime_figure(tmp_path, no_plots):
    timing = {"train_s": 1.0, "train_images_per_s": 1.0, "embed_images_per_s": 1.0, "eval_s": 1.0}
    lifetime = [
        record("classifier", "uniform", s, 0.5, timing={**timing, "peak_rss_mb": 691.0}) for s in (0, 1)
    ]
    (row,) = table_rows(render_report(lifetime, tmp_path), "### Timing")
    assert not any("MB" in column for column in row)
    measured = [
        record("classifier", "uniform", s, 0.5, timing={**timing, "fit_eval_peak_rss_mb": mb})
        for s, mb in ((0, 40.0), (1, 60.0))
    ]
    text = render_report(measured, tmp_path)
    (row,) = table_rows(text, "### Timing")
    assert row["fit + eval peak MB"] == "50 ± 127"  # sd 14.14, t(0.975, 1 df) = 12.71 x 14.14 / 2^0.5 = 127
    assert "fit + eval peak MB: the most resident memory training and evaluation added" in text
