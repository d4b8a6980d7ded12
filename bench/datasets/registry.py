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
#: Options applied after loading (any dataset: ``--good``, ``--good-per-defect``), never passed
#: to the source's loader.
RESHAPE_OPTIONS = ("good_per_defect", "good")
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


def load_source(name: str, options: dict) -> ImageSet:
    """``name`` loaded with its ``options`` as a run sees it: the loader gets all but the
    ``RESHAPE_OPTIONS``, which are applied afterwards (``reshape_imbalance``, ``choose_good``).

    Raises:
        BenchError: what ``load_dataset`` raises, or a reshape the data cannot take.
    """
    from bench.datasets.split import choose_good, reshape_imbalance

    data = load_dataset(name, **{k: v for k, v in options.items() if k not in RESHAPE_OPTIONS})
    if options.get("good_per_defect") is not None:
        return reshape_imbalance(data, float(options["good_per_defect"]), good=options.get("good"))
    if options.get("good") is not None:
        return choose_good(data, options["good"])
    return data
