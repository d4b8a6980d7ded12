"""Records leave the bench: pandas frames of a run's records and of the report's summary
(``frames``), written as CSV, JSON lines, Parquet or markdown (``writers``), and MLflow runs
(``mlflow_export``, ``mlflow_tune``; the optional ``mlflow`` extra)."""

from bench.export.frames import load_records, load_summary

__all__ = ["load_records", "load_summary"]
