"""Dataset sources (a registry), the ImageSet they produce, and the image split.

Importing this package registers every built-in source: ``inspection`` (the default, procedural),
``digits``, ``fashion-mnist``; ``hf:<name-or-path>`` goes to the Hugging Face loader.
"""

# Importing the source modules (digits, fashion_mnist, inspection) registers them.
from bench.datasets import digits, fashion_mnist, inspection  # noqa: F401
from bench.datasets.describe import describe_datasets
from bench.datasets.image_set import ImageSet, Splits
from bench.datasets.registry import list_datasets, load_dataset, register_dataset
from bench.datasets.split import reshape_imbalance, split_counts, split_dataset
from bench.datasets.validate import check_image_set

__all__ = [
    "ImageSet",
    "Splits",
    "check_image_set",
    "describe_datasets",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "reshape_imbalance",
    "split_counts",
    "split_dataset",
]
