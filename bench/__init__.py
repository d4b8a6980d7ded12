"""bench: a fair benchmarking harness for embedding methods in automated visual inspection.

``bench.load_records(DIR)`` and ``bench.load_summary(DIR)`` read a run's records as pandas
frames (``bench.export.frames``); they are imported on first use.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_records", "load_summary"]


def __getattr__(name: str) -> Any:
    if name in ("load_records", "load_summary"):
        from bench.export import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
