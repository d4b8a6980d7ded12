"""The dataset registry: ``@register_dataset("name")``, ``list_datasets``, ``load_dataset``.

A source is a function ``(**options) -> ImageSet``. Names of the form ``hf:<name-or-path>`` go to
the Hugging Face loader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from bench.core.errors import BenchError, unknown_name
from bench.core.registry import Registry
from bench.datasets.image_set import ImageSet
from bench.datasets.validate import check_image_set

Loader = Callable[..., ImageSet]
DATASETS: Registry[Loader] = Registry("dataset")
#: Register a dataset loader under ``name``; a duplicate name is an error.
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    """Registered dataset names (``hf:<name-or-path>`` is accepted besides these)."""
    return DATASETS.names()


def load_dataset(name: str, **options) -> ImageSet:
    """Load dataset ``name`` with source-specific ``options``.

    Raises:
        BenchError: unknown name (with a close-match suggestion), or a source-specific problem.
    """
    if name.startswith("hf:"):
        from bench.datasets.huggingface import load_hf

        return load_hf(name[3:], **options)
    if name not in DATASETS:
        raise unknown_name("dataset", name, list_datasets(), extra=", or hf:<name-or-path>")
    loader = DATASETS.get(name)
    try:
        inspect.signature(loader).bind(**options)
    except TypeError:
        accepted = [p for p in inspect.signature(loader).parameters if p not in ("self", "options")]
        raise BenchError(
            f"dataset {name!r} does not take option(s) {', '.join(sorted(options))}; "
            f"it accepts: {', '.join(accepted) or 'none'}"
        ) from None
    # Every source, built-in or registered by a plugin, is held to the same contract.
    return check_image_set(loader(**options))
