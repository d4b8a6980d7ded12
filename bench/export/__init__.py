"""Records leave the bench: pandas frames of a run's records and of the report's summary
(``frames``), written as CSV, JSON lines, Parquet or markdown (``writers``), and MLflow runs
(``mlflow_export`` for run directories, ``mlflow_tune`` for tunings, ``mlflow_store`` shared;
the optional ``mlflow`` extra).

``load_records`` and ``load_summary`` are imported on first use, so the command line does not
load pandas and the report to parse its flags.
"""

from typing import Any

__all__ = ["load_records", "load_summary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bench.export import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'bench.export' has no attribute {name!r}")
