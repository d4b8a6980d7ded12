"""Dataset sources (a registry), the ImageSet they produce, and the image split.

Importing this package registers every built-in source: ``inspection`` (the default, procedural),
``digits``, ``fashion-mnist``, ``elpv`` (with the ``elpv-dataset`` package); ``hf:<name-or-path>``
goes to the Hugging Face loader.
"""

# Importing the source modules (digits, elpv, fashion_mnist, inspection) registers them.
from bench.datasets import digits, elpv, fashion_mnist, inspection  # noqa: F401
from bench.datasets.describe import describe_datasets
from bench.datasets.image_set import ImageSet, Splits
from bench.datasets.registry import list_datasets, load_dataset, register_dataset
from bench.datasets.split import (
    GOOD_NAMES,
    choose_good,
    default_good,
    good_class_note,
    reshape_imbalance,
    split_counts,
    split_dataset,
)
from bench.datasets.validate import check_image_set

__all__ = [
    "GOOD_NAMES",
    "ImageSet",
    "Splits",
    "check_image_set",
    "choose_good",
    "default_good",
    "describe_datasets",
    "good_class_note",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "reshape_imbalance",
    "split_counts",
    "split_dataset",
]
