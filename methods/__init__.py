"""Embedding methods: one module per method, a registry, and the shared trunks."""

# Importing the modules registers the built-in methods.
from methods import classifier, mean_anchor_triplet, mined_triplet, siamese  # noqa: E402,F401
from methods.registry import create_method, get_method_class, list_methods, register_method

__all__ = ["create_method", "get_method_class", "list_methods", "register_method"]
