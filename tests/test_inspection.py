"""The procedural inspection set: what a benchmark run relies on."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import BenchError
from bench.datasets import load_dataset
from bench.datasets.inspection import CLASSES, DEFECT_CODES, InspectionConfig, generate_inspection

SMALL = {"n_per_defect": 6, "n_good": 12}


@pytest.fixture(scope="module")
def default_set():
    return load_dataset("inspection")


def test_default_shape_classes_and_counts(default_set):
    assert default_set.images.shape == (2300, 39, 36)
    assert default_set.images.dtype == torch.float32
    assert default_set.images[0].numel() == 1404  # the reference's flattened size
    assert default_set.classes == CLASSES
    assert len(CLASSES) == 19 and CLASSES[0] == "0"
    assert set(DEFECT_CODES) == {
        "11", "13", "21", "23", "31", "32", "33", "42", "61",
        "62", "63", "71", "72", "73", "81", "82", "91", "92",
    }  # fmt: skip
    assert default_set.good_index == 0
    counts = default_set.counts_by_code()
    assert counts["0"] == 500
    assert all(counts[c] == 100 for c in DEFECT_CODES)


def test_pixels_are_finite_and_in_unit_range(default_set):
    assert bool(torch.isfinite(default_set.images).all())
    assert float(default_set.images.min()) >= 0.0 and float(default_set.images.max()) <= 1.0


def test_same_seed_same_tensor_different_seed_different():
    a = generate_inspection(InspectionConfig(seed=3, **SMALL))
    b = generate_inspection(InspectionConfig(seed=3, **SMALL))
    c = generate_inspection(InspectionConfig(seed=4, **SMALL))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize(
    ("options", "good", "per_defect"),
    [
        ({"n_per_defect": 10, "good_ratio": 2.0}, 20, 10),
        ({"n_per_defect": 10}, 50, 10),
        ({"n_per_defect": 4, "n_good": 7}, 7, 4),
    ],
)
def test_good_to_defect_ratio_is_configurable(options, good, per_defect):
    counts = load_dataset("inspection", **options).counts_by_code()
    assert counts["0"] == good
    assert {counts[c] for c in DEFECT_CODES} == {per_defect}


def test_defect_code_names_the_pin_that_differs():
    # Gross defects only, so the class mean differs from good clearly at the named pin.
    ds = generate_inspection(InspectionConfig(n_per_defect=40, n_good=40, magnitude_min=0.8))
    good_mean = ds.images[ds.labels == 0].mean(0)
    cfg = InspectionConfig()
    for code in ("11", "42", "92"):
        row, col = int(code[0]), int(code[1])
        diff = (ds.images[ds.labels == ds.classes.index(code)].mean(0) - good_mean).abs()
        y, x = divmod(int(diff.argmax()), cfg.width)
        seat_y = (cfg.height - 1) / 2 + (row - 5) * cfg.row_pitch
        seat_x = (cfg.width - 1) / 2 + (col - 2) * cfg.col_pitch
        assert abs(y - seat_y) <= cfg.row_pitch and abs(x - seat_x) <= cfg.col_pitch / 2


def test_unknown_option_is_a_one_line_bench_error():
    with pytest.raises(BenchError, match="no option colour") as info:
        load_dataset("inspection", colour=3)
    assert "\n" not in str(info.value)


def test_impossible_counts_are_bench_errors():
    with pytest.raises(BenchError, match="n_per_defect"):
        load_dataset("inspection", n_per_defect=0)
