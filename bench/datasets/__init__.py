"""Dataset sources (a registry), the ImageSet they produce, and the image split."""

from bench.datasets.image_set import ImageSet, Splits
from bench.datasets.registry import list_datasets, load_dataset, register_dataset
from bench.datasets.split import split_dataset

# Importing the source modules registers them.
from bench.datasets import digits  # noqa: E402,F401

__all__ = ["ImageSet", "Splits", "list_datasets", "load_dataset", "register_dataset", "split_dataset"]
