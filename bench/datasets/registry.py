"""The dataset registry: ``@register_dataset("name")``, ``list_datasets``, ``load_dataset``.

A source is a function ``(**options) -> ImageSet``. Names of the form ``hf:<name-or-path>`` go to
the Hugging Face loader.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from bench.datasets.image_set import ImageSet
from bench.errors import BenchError

Loader = Callable[..., ImageSet]
_DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register a dataset loader under ``name``; a duplicate name is an error."""

    def decorate(fn: Loader) -> Loader:
        if name in _DATASETS and _DATASETS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        _DATASETS[name] = fn
        return fn

    return decorate


def list_datasets() -> list[str]:
    """Registered dataset names (``hf:<name-or-path>`` is accepted besides these)."""
    return sorted(_DATASETS)


def load_dataset(name: str, **options) -> ImageSet:
    """Load dataset ``name`` with source-specific ``options``.

    Raises:
        BenchError: unknown name (with a close-match suggestion), or a source-specific problem.
    """
    if name.startswith("hf:"):
        from bench.datasets.huggingface import load_hf

        return load_hf(name[3:], **options)
    if name not in _DATASETS:
        close = difflib.get_close_matches(name, list(_DATASETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BenchError(
            f"unknown dataset {name!r}{hint}; known: {', '.join(list_datasets())}, or hf:<name-or-path>"
        )
    return _DATASETS[name](**options)
