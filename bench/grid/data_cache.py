"""The per-process dataset cache behind ``bench.grid.runner.prepare_data``.

A worker (process pool, Dask) runs many cells on one dataset, so a loaded dataset is kept, but
bounded: the ``MAX_DATASETS`` most recently used, keyed by name, options and the fingerprint
of the files a file-backed source reads (``bench.datasets.fingerprint``), so a worker that
outlives a change of those files loads them again. The cached set itself never reaches a
method: each cell gets its split as new tensors (``split_dataset`` gathers), so a method that
edits its training images in place changes nothing for the next cell.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from bench.core.canonical import canonical_json
from bench.datasets import ImageSet
from bench.datasets.fingerprint import source_fingerprint
from bench.datasets.registry import RESHAPE_OPTIONS, load_source

#: Loaded datasets one process keeps (a grid uses one; a long-lived Dask worker may see several).
MAX_DATASETS = 2


def cached_dataset(dataset: str, options: dict[str, Any]) -> ImageSet:
    """``dataset`` loaded with ``options`` and reshaped, from this process's cache when its files
    (if any) are unchanged. Callers must not modify it: split it, which copies."""
    loader_options = {k: v for k, v in options.items() if k not in RESHAPE_OPTIONS}
    fingerprint = source_fingerprint(dataset, **loader_options)
    return _load(dataset, canonical_json(options), fingerprint)


@functools.lru_cache(maxsize=MAX_DATASETS)
def _load(dataset: str, options_json: str, fingerprint: str | None) -> ImageSet:
    data = load_source(dataset, json.loads(options_json))
    return dataclasses.replace(data, fingerprint=fingerprint)


def clear() -> None:
    """Forget every cached dataset (tests; a worker that should reload)."""
    _load.cache_clear()
