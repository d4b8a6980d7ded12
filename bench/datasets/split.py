"""Seeded, stratified train / validation / test splits of *images*, made before any tuple exists,
and the reshaping of a dataset to a chosen good : defect ratio."""

from __future__ import annotations

import dataclasses

import torch

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet, Splits

MIN_PER_CLASS = 3  # one image for each of train, val and test


def split_counts(
    class_counts: torch.Tensor, val_fraction: float = 0.15, test_fraction: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images per class in train, val and test; depends on the counts only, never on the seed.

    Each class of at least ``MIN_PER_CLASS`` images gets >= 1 image in every split: its test
    and val shares are rounded, then clamped so the others keep one each.

    Args:
        class_counts: int tensor (C,), images per class.
        val_fraction: share of each class that goes to validation.
        test_fraction: share of each class that goes to test.

    Returns:
        ``(train, val, test)``, each an int64 tensor (C,).
    """
    n = class_counts.to(torch.int64)
    n_test = torch.round(n * test_fraction).to(torch.int64).clamp(min=1)
    n_test = torch.minimum(n_test, (n - 2).clamp(min=0))
    n_val = torch.round(n * val_fraction).to(torch.int64).clamp(min=1)
    n_val = torch.minimum(n_val, (n - n_test - 1).clamp(min=0))
    return n - n_test - n_val, n_val, n_test


def split_dataset(
    data: ImageSet,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    split_seed: int | None = None,
) -> Splits:
    """Split ``data`` into stratified train / val / test image sets.

    The split is of image positions, so no image can appear in two splits (each keeps its
    ``index`` into ``data``). Every class gets at least one image in each split, and the
    number per class and split is fixed by the class counts (see :func:`split_counts`); the
    seeds only choose which images.

    ``split_seed`` chooses the test images and ``seed`` the validation images among the others,
    so every seed of one split seed is tested on the same images and validates (or tunes) on
    images that are never among them. ``split_seed=None`` is the older protocol, where the seed
    chose all three splits (the same as ``split_seed=seed``: a seed equal to its split seed
    gives exactly the older split).

    Args:
        data: the full dataset.
        seed: chooses the validation images among the non-test ones (and, with ``split_seed``
            None, the test images too).
        val_fraction: share of each class for validation (checkpoint selection, tuning).
        test_fraction: share of each class for the final test.
        split_seed: chooses the test images; None: the seed does.

    Raises:
        BenchError: a class too small for the split (named, with its count), or fractions out
            of range.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise BenchError(
            f"split fractions must be in (0, 1) and sum below 1 (val={val_fraction}, test={test_fraction})"
        )
    counts = data.class_counts()
    small = [(data.classes[i], int(n)) for i, n in enumerate(counts.tolist()) if n < MIN_PER_CLASS]
    if small:
        code, n = small[0]
        more = f" (and {len(small) - 1} more class(es) below {MIN_PER_CLASS})" if len(small) > 1 else ""
        raise BenchError(
            f"class {code!r} has {n} image(s), too few for a train/val/test split (needs >= "
            f"{MIN_PER_CLASS}){more}; add images or drop the class"
        )
    _, n_val, n_test = split_counts(counts, val_fraction, test_fraction)

    # Vectorized stratification: shuffle, stable-sort by class, rank each image inside its class;
    # the first n_test ranks of the split seed's order go to test; among the other images, the
    # first n_val ranks of the seed's order go to val, the rest to train.
    test_order, test_rank = _class_ranks(data, counts, seed if split_seed is None else split_seed)
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[test_order[test_rank < n_test[data.labels[test_order]]]] = True
    order, _ = _class_ranks(data, counts, seed)
    rest = order[~is_test[order]]  # still grouped by class, in the seed's order
    rest_counts = counts - n_test
    rest_labels = data.labels[rest]
    rank = torch.arange(len(rest)) - (torch.cumsum(rest_counts, 0) - rest_counts)[rest_labels]
    is_val = rank < n_val[rest_labels]
    pick = lambda index: torch.sort(index).values  # noqa: E731  (keep dataset order)
    return Splits(
        train=data.subset(pick(rest[~is_val])),
        val=data.subset(pick(rest[is_val])),
        test=data.subset(pick(torch.nonzero(is_test).flatten())),
    )


def _class_ranks(data: ImageSet, counts: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image positions shuffled by ``seed`` and grouped by class (stable), and each one's rank
    inside its class."""
    g = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(len(data), generator=g)
    order = shuffled[torch.sort(data.labels[shuffled], stable=True).indices]
    rank = torch.arange(len(data)) - (torch.cumsum(counts, 0) - counts)[data.labels[order]]
    return order, rank


#: Codes taken as the good class when none is asked for (case-insensitive), in this order;
#: with none of them the first class is taken, with a warning (``good_class_note``).
GOOD_NAMES = ("good", "ok", "pass", "0")


def default_good(classes: tuple[str, ...]) -> str:
    """The good class when none is asked for: the first of ``GOOD_NAMES`` among ``classes``
    (case-insensitive), else the first class."""
    lowered: dict[str, str] = {}
    for code in classes:
        lowered.setdefault(code.lower(), code)
    return next((lowered[name] for name in GOOD_NAMES if name in lowered), classes[0])


def choose_good(data: ImageSet, good: str | None = None) -> ImageSet:
    """``data`` with its good class set to code ``good`` (default: ``default_good``).

    Raises:
        BenchError: ``good`` is not one of the dataset's codes.
    """
    code = str(good) if good is not None else default_good(data.classes)
    if code not in data.classes:
        raise BenchError(f"good class {code!r} is not in {data.name}; classes are {', '.join(data.classes)}")
    return dataclasses.replace(data, good_index=data.classes.index(code))


def good_class_note(data: ImageSet, asked: str | None = None) -> tuple[str, bool]:
    """The line a run prints about the good class ``data`` ended up with, and whether it is a
    warning (no class is named like a good one, so the first was taken, or there is none).

    Args:
        data: the loaded (and reshaped) dataset.
        asked: the ``--good`` code the user gave, or None.
    """
    if data.good_index is None:
        return (
            f"{data.name} has no good class, so escape and overkill are not measured; pick one with --good CODE",
            True,
        )
    code = data.classes[data.good_index]
    if asked is not None:
        return f"good class: {code!r} (--good)", False
    if code.lower() in GOOD_NAMES:
        return f"good class: {code!r}", False
    if code == default_good(data.classes):
        named = ", ".join(GOOD_NAMES[:-1]) + " or " + GOOD_NAMES[-1]
        return (
            f"no class is named {named} (any case); took the first class, {code!r}, as the good class: "
            f"pick another with --good CODE (classes: {', '.join(data.classes)})",
            True,
        )
    return f"good class: {code!r} (the dataset's choice; --good CODE picks another)", False


def reshape_imbalance(
    data: ImageSet, good_per_defect: float, good: str | None = None, seed: int = 0
) -> ImageSet:
    """Subsample ``data`` so the good class has ``good_per_defect`` times the images of each defect.

    Every other class ("defect") is cut to the size of the smallest one, and the good class to
    ``round(good_per_defect * that size)``; when the good class is too small for that, the
    defects are cut further. Only subsampling, never duplication, so no image repeats.

    Args:
        data: the dataset to reshape.
        good_per_defect: images of the good class per image of each defect class (> 0).
        good: code of the good class; default ``default_good(data.classes)``.
        seed: chooses which images are kept.

    Returns:
        The subsampled set, in dataset order, with ``good_index`` set to the chosen class.

    Raises:
        BenchError: a non-positive ratio, an unknown good code, or too few images for the ratio.
    """
    if not good_per_defect > 0:
        raise BenchError(f"good_per_defect must be > 0, got {good_per_defect}")
    good_index = choose_good(data, good).good_index
    code = data.classes[good_index]
    counts = data.class_counts()
    defect = torch.ones(data.num_classes, dtype=torch.bool)
    defect[good_index] = False
    defect &= counts > 0
    if not bool(defect.any()):
        raise BenchError(f"{data.name} has no class besides the good class {code!r} to balance against")
    per_defect = int(counts[defect].min())
    per_defect = min(per_defect, int(counts[good_index] / good_per_defect + 1e-9))
    n_good = int(round(good_per_defect * per_defect))
    if per_defect < 1 or n_good < 1:
        raise BenchError(
            f"{data.name}: good class {code!r} has {int(counts[good_index])} image(s), too few for "
            f"{good_per_defect}x each defect; lower good_per_defect"
        )
    keep_per_class = torch.where(defect, per_defect, 0)
    keep_per_class[good_index] = n_good
    # Same rank trick as the split: a random rank inside each class, keep the lowest ranks.
    g = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(len(data), generator=g)
    order = shuffled[torch.sort(data.labels[shuffled], stable=True).indices]
    sorted_labels = data.labels[order]
    rank = torch.arange(len(data)) - (torch.cumsum(counts, 0) - counts)[sorted_labels]
    kept = torch.sort(order[rank < keep_per_class[sorted_labels]]).values
    return dataclasses.replace(data.subset(kept), good_index=good_index)
