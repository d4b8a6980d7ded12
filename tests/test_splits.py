"""Image splits and good : defect reshaping: the leak-free foundation of every comparison."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bench.core.errors import BenchError
from bench.datasets import ImageSet, reshape_imbalance, split_counts, split_dataset


def make_set(counts: dict[str, int], size: int = 4) -> ImageSet:
    classes = tuple(counts)
    labels = torch.repeat_interleave(torch.arange(len(classes)), torch.tensor(list(counts.values())))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.rand(len(labels), size, size, generator=torch.Generator().manual_seed(1))
    return ImageSet(images=images, labels=labels, classes=classes, good_index=0, name="toy")


def test_no_image_is_in_two_splits_and_all_are_used():
    data = make_set({"0": 100, "11": 20, "13": 20, "21": 7})
    s = split_dataset(data, seed=0)
    parts = [set(s.train.index.tolist()), set(s.val.index.tolist()), set(s.test.index.tolist())]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set.union(*parts) == set(range(len(data)))


def test_split_is_stratified_and_every_class_is_in_every_split():
    data = make_set({"0": 100, "11": 20, "13": 3})
    s = split_dataset(data, seed=0)
    for part in (s.train, s.val, s.test):
        assert bool((part.class_counts() >= 1).all())
    assert s.test.counts_by_code()["0"] == 25 and s.val.counts_by_code()["0"] == 15


def test_split_keeps_images_with_their_labels():
    data = make_set({"0": 30, "1": 30})
    s = split_dataset(data, seed=2)
    assert torch.equal(s.test.images, data.images[s.test.index])
    assert torch.equal(s.test.labels, data.labels[s.test.index])


def test_split_is_deterministic_for_a_seed():
    data = make_set({"0": 50, "1": 50})
    a, b, c = split_dataset(data, seed=5), split_dataset(data, seed=5), split_dataset(data, seed=6)
    assert torch.equal(a.test.index, b.test.index)
    assert not torch.equal(a.test.index, c.test.index)


def test_class_too_small_names_the_class_and_its_count():
    data = make_set({"0": 50, "11": 20, "42": 2})
    with pytest.raises(BenchError, match=r"class '42' has 2 image\(s\)") as info:
        split_dataset(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.25), (0.5, 0.5), (0.15, 1.2)])
def test_bad_fractions_are_bench_errors(val, test):
    with pytest.raises(BenchError, match="fractions"):
        split_dataset(make_set({"0": 10, "1": 10}), val_fraction=val, test_fraction=test)


@given(
    counts=st.lists(st.integers(min_value=3, max_value=500), min_size=2, max_size=25),
    val=st.floats(min_value=0.05, max_value=0.45),
    test=st.floats(min_value=0.05, max_value=0.45),
)
def test_split_counts_cover_each_class_with_one_per_split(counts, val, test):
    n = torch.tensor(counts)
    train, v, t = split_counts(n, val, test)
    assert torch.equal(train + v + t, n)
    assert bool((train >= 1).all() and (v >= 1).all() and (t >= 1).all())


def test_reshape_imbalance_sets_the_ratio():
    data = make_set({"0": 300, "11": 40, "13": 50, "21": 45})
    out = reshape_imbalance(data, good_per_defect=5.0)
    assert out.counts_by_code() == {"0": 200, "11": 40, "13": 40, "21": 40}
    assert out.good_index == 0
    # Subsampling only: every kept image is a distinct original one.
    assert len(set(out.index.tolist())) == len(out)
    assert torch.equal(out.images, data.images[out.index])


def test_reshape_imbalance_cuts_defects_when_good_is_short():
    out = reshape_imbalance(make_set({"0": 100, "1": 40, "2": 40}), good_per_defect=5.0)
    assert out.counts_by_code() == {"0": 100, "1": 20, "2": 20}


def test_reshape_imbalance_with_another_good_class():
    data = make_set({"a": 30, "b": 90, "c": 30})
    out = reshape_imbalance(data, good_per_defect=3.0, good="b", seed=1)
    assert out.classes[out.good_index] == "b"
    assert out.counts_by_code() == {"a": 30, "b": 90, "c": 30}
    # Default good class: "0" absent, so the first class.
    assert reshape_imbalance(data, 1.0).good_index == 0


def test_reshape_imbalance_bad_inputs():
    data = make_set({"0": 10, "1": 10})
    with pytest.raises(BenchError, match="good_per_defect"):
        reshape_imbalance(data, 0)
    with pytest.raises(BenchError, match="'7' is not in"):
        reshape_imbalance(data, 1.0, good="7")
    with pytest.raises(BenchError, match="too few"):
        reshape_imbalance(data, 50.0)
