"""Embedding methods: one module per method, a registry, and the shared trunks.

The plug-in API a method is written against: ``EmbeddingMethod`` (the base class and its
hooks), ``FitContext`` and ``Prepared`` (what the hooks receive), ``Batch`` and ``StepLoss``
(what they return), the constraints of ``methods.constraints`` and ``register_method``.
"""

# Importing the modules registers the built-in methods.
from methods import (  # noqa: F401
    classifier,
    knn_distance,
    mean_anchor_triplet,
    mined_triplet,
    pca_gaussian,
    siamese,
)
from methods.base import EmbeddingMethod, FitContext, Prepared
from methods.batch import Batch, StepLoss
from methods.registry import create_method, get_method_class, list_methods, register_method

__all__ = [
    "Batch",
    "EmbeddingMethod",
    "FitContext",
    "Prepared",
    "StepLoss",
    "create_method",
    "get_method_class",
    "list_methods",
    "register_method",
]
