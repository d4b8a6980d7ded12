"""``python -m bench table`` (records and the report's summary as CSV, JSON lines, Parquet or
markdown) and ``python -m bench export`` (MLflow runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from bench.core.errors import BenchError

#: ``--format`` choices; the same as ``bench.export.writers.FORMATS`` (kept here so ``--help``
#: does not import pandas).
FORMATS = ("markdown", "csv", "jsonl", "parquet")
#: Decimals of the summary's markdown table: the report's one decimal.
SUMMARY_DIGITS = 1


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``table`` subcommand's arguments."""
    parser.add_argument(
        "run_dir", metavar="DIR", help="a run directory, or a folder of them (read recursively)"
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="the report's headline table (method x scheme: mean and 95%% interval over seeds) "
        "instead of one row per cell",
    )
    parser.add_argument(
        "--format",
        default="markdown",
        metavar="FORMAT",
        help="markdown (default; the summary with the report's one decimal), csv, jsonl or parquet "
        "(every digit)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--columns",
        metavar="PATTERNS",
        help="only these columns: comma-separated names or patterns (method,scheme,seed,metrics.*)",
    )


def table_command(args: argparse.Namespace) -> int:
    from bench.export.frames import load_records, load_summary
    from bench.export.writers import select_columns, write_frame

    if args.format not in FORMATS:
        raise BenchError(f"unknown format {args.format!r}; choose one of {', '.join(FORMATS)}")
    frame = (load_summary if args.summary else load_records)(Path(args.run_dir))
    if frame.empty:
        raise BenchError(f"{args.run_dir} holds no readable records")
    patterns = [p.strip() for p in (args.columns or "").split(",") if p.strip()]
    frame = select_columns(frame, patterns)
    digits = SUMMARY_DIGITS if args.summary and args.format == "markdown" else None
    try:
        write_frame(frame, args.format, args.output, sys.stdout.buffer, digits)
    except BrokenPipeError:  # `| head` closed the pipe: what it wanted was written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``export`` subcommand's arguments."""
    from bench.export.mlflow_store import DEFAULT_URI

    parser.add_argument(
        "run_dir",
        metavar="DIR",
        help="a run directory, a tuning directory (bench tune), or a folder of run directories",
    )
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const=DEFAULT_URI,
        metavar="URI",
        help=f"export to the MLflow tracking store URI (default {DEFAULT_URI}: a SQLite file here, "
        "what `mlflow ui` opens); needs pip install -e '.[mlflow]'",
    )
    parser.add_argument(
        "--experiment",
        metavar="PREFIX",
        help="experiment name prefix (default: the directory's name; experiments are PREFIX: STUDY)",
    )


def export_command(args: argparse.Namespace, console: Console) -> int:
    if args.mlflow is None:
        raise BenchError("choose where to export: --mlflow [URI]")
    from bench.export.mlflow_export import export_run_dir
    from bench.export.mlflow_store import mlflow_client
    from bench.export.mlflow_tune import export_tuning

    root = Path(args.run_dir)
    tuning_dirs, run_dirs = _directories(root)  # checked before MLflow is imported
    client = mlflow_client(args.mlflow)
    counts = []
    for tune_dir in tuning_dirs:
        counts += export_tuning(client, args.mlflow, tune_dir, args.experiment or _prefix(root, tune_dir))
    for run_dir in run_dirs:
        counts += export_run_dir(client, args.mlflow, run_dir, args.experiment or _prefix(root, run_dir))
    for count in counts:
        console.print(count.line(), highlight=False, soft_wrap=True)
    ui = f"mlflow ui --backend-store-uri {args.mlflow}"
    console.print(f"exported to {args.mlflow}; browse the runs with: {ui}", highlight=False, soft_wrap=True)
    return 0


def _directories(root: Path) -> tuple[list[Path], list[Path]]:
    """The tuning directories and the run directories at ``root`` (itself, or the folders below
    it: a ``bench study`` directory holds one of each).

    Raises:
        BenchError: ``root`` does not exist or holds neither.
    """
    from bench.export.frames import run_dirs
    from bench.export.mlflow_tune import tunings
    from bench.report.cells import load_records

    found = tunings(root)
    try:
        runs = run_dirs(root)
    except BenchError:
        if found:
            return found, []
        raise
    with_records = [run_dir for run_dir in runs if load_records(run_dir)]
    if not found and not with_records:
        raise BenchError(f"{root} holds no readable records")
    return found, with_records


def _prefix(root: Path, run_dir: Path) -> str:
    """A run directory's experiment prefix: its name, or its path below the folder given."""
    base = root.resolve()
    inner = run_dir.resolve()
    return base.name if inner == base else f"{base.name}/{inner.relative_to(base).as_posix()}"
