"""One row per built-in dataset source, for ``python -m bench datasets``, or one source a run
accepts described in full (``python -m bench datasets --dataset SRC``)."""

from __future__ import annotations

import torch

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.datasets.split import split_counts, split_dataset
from bench.datasets.standardize import DEFAULT_INPUTS, describe_inputs


def balance_text(counts: torch.Tensor, good_index: int | None) -> str:
    """How unbalanced a class-count vector is, in words.

    ``"good 5.0x each defect"`` when every defect class has the same count, otherwise the good
    class against the mean defect plus the largest:smallest ratio; without a good class, only
    the ratio.
    """
    present = counts[counts > 0].to(torch.float64)
    spread = f"largest:smallest {float(present.max() / present.min()):.1f}:1"
    if good_index is None:
        return spread
    others = torch.cat([counts[:good_index], counts[good_index + 1 :]]).to(torch.float64)
    others = others[others > 0]
    if len(others) == 0:
        return spread
    ratio = float(counts[good_index]) / float(others.mean())
    if bool((others == others[0]).all()):
        return f"good {ratio:.1f}x each defect"
    return f"good {ratio:.1f}x mean defect, {spread}"


def describe_image_set(
    data: ImageSet, val_fraction: float = 0.15, test_fraction: float = 0.25, inputs: str = DEFAULT_INPUTS
) -> dict:
    """The listing row of a loaded dataset (split counts and input statistics are those of the
    default split, seed 0)."""
    counts = data.class_counts()
    train = split_dataset(data, 0, val_fraction, test_fraction).train
    row = _row(data.name, data.image_shape, counts, data.good_index, data.source, val_fraction, test_fraction)
    return {**row, "inputs": describe_inputs(inputs, train.images)}


def describe_source(name: str, options: dict | None = None, inputs: str = DEFAULT_INPUTS) -> dict:
    """What a run on ``name`` (any source ``--dataset`` takes: a built-in, ``hf:<name-or-path>``,
    an image folder ``hf:/some/dir``) with ``options`` would train on: the listing row of
    ``describe_image_set`` plus ``good`` (the good class's code, None without one) and
    ``class_counts`` (code -> ``{"images", "train", "val", "test"}``, default split, seed 0).

    Raises:
        BenchError: the source cannot be loaded or reshaped as asked (one line).
    """
    from bench.datasets.registry import load_source

    data = load_source(name, dict(options or {}))
    row = describe_image_set(data, inputs=inputs)
    counts = data.class_counts()
    train, val, test = split_counts(counts, 0.15, 0.25)
    per_class = {
        code: {"images": int(counts[i]), "train": int(train[i]), "val": int(val[i]), "test": int(test[i])}
        for i, code in enumerate(data.classes)
    }
    good = data.classes[data.good_index] if data.good_index is not None else None
    return {**row, "good": good, "class_counts": per_class}


def _row(name, shape, counts, good_index, source, val_fraction=0.15, test_fraction=0.25) -> dict:
    train, val, test = split_counts(counts, val_fraction, test_fraction)
    return {
        "name": name,
        "image_size": f"{shape[0]}x{shape[1]}",
        "classes": int((counts > 0).sum()),
        "images": int(counts.sum()),
        "counts": {"train": int(train.sum()), "val": int(val.sum()), "test": int(test.sum())},
        "balance": balance_text(counts, good_index),
        "source": source,
    }


def elpv_rows(inputs: str = DEFAULT_INPUTS) -> list[dict]:
    """A row per ELPV label scheme (``elpv labels=levels`` ...), from ``labels.csv`` alone: no image
    is decoded. Its ``source`` says which defect probabilities make the good class. Without the
    package, one row named ``elpv`` says how to install it and has None elsewhere."""
    from bench.datasets import elpv

    try:
        table = elpv.read_elpv_table(elpv.find_elpv())
    except BenchError:
        return [_missing_row("elpv", f"not installed: {elpv.INSTALL_HINT}")]
    side = elpv.DEFAULT_SIZE
    rows = []
    for scheme, meaning in elpv.LABEL_SCHEMES.items():
        labels, classes = elpv.scheme_labels(scheme, table.levels, table.types)
        counts = torch.bincount(torch.from_numpy(labels), minlength=len(classes))
        source = (
            f"{meaning}; size={side} (default; any from {elpv.SIZE_RANGE[0]} to {elpv.SIZE_RANGE[1]}); "
            f"ELPV, {elpv.LICENCE}, package {elpv.DISTRIBUTION}"
        )
        row = _row(f"elpv labels={scheme}", (side, side), counts, 0, source)
        rows.append({**row, "inputs": describe_inputs(inputs)})
    return rows


def _missing_row(name: str, source: str) -> dict:
    return {
        "name": name,
        "image_size": None,
        "classes": None,
        "images": None,
        "counts": None,
        "balance": None,
        "source": source,
        "inputs": None,
    }


def describe_datasets(inputs: str = DEFAULT_INPUTS) -> list[dict]:
    """A row per built-in source: inspection, digits, fashion-mnist when its files exist, and one
    per ELPV label scheme when its package is installed (see ``elpv_rows``).

    Each row has the keys ``name``, ``image_size`` (``"HxW"``), ``classes`` (count), ``images``,
    ``counts`` (``{"train": n, "val": n, "test": n}`` for the default split, seed 0: the counts
    do not depend on the seed), ``balance``, ``source`` and ``inputs`` (what ``inputs`` does
    to the images; for inspection and digits with the std floor and the pixels it floors on the
    seed-0 training split, for Fashion-MNIST and ELPV without, so the listing reads no pixels).
    When Fashion-MNIST or ELPV is not installed its row keeps the name, says so in ``source``
    (with the install command) and has None elsewhere.
    """
    from bench.datasets import fashion_mnist
    from bench.datasets.digits import load_digits_set
    from bench.datasets.inspection import load_inspection

    rows = [describe_image_set(d, inputs=inputs) for d in (load_inspection(), load_digits_set())]
    try:
        # Labels only: the counts need no pixels, and the listing should be instant.
        labels = torch.from_numpy(fashion_mnist.read_fashion_mnist_labels())
        counts = torch.bincount(labels, minlength=len(fashion_mnist.CLASS_NAMES))
        where = next(iter(fashion_mnist.find_fashion_mnist().values())).parent  # type: ignore[union-attr]
        row = _row("fashion-mnist", (28, 28), counts, 0, f"Fashion-MNIST IDX files in {where}")
        rows.append({**row, "inputs": describe_inputs(inputs)})
    except BenchError:
        rows.append(_missing_row("fashion-mnist", "not installed: apt-get install dataset-fashion-mnist"))
    return rows + elpv_rows(inputs)
