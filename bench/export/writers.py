"""Frames written as CSV, JSON lines, Parquet or a markdown table, to a file or a stream.

Every format is plain text but Parquet, and none depends on the terminal: a pipe, a file and a
narrow terminal get the same bytes, nothing cut short.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from bench.core.errors import BenchError

#: The formats ``write_frame`` writes, by the name ``--format`` takes.
FORMATS = ("markdown", "csv", "jsonl", "parquet")


def select_columns(frame: pd.DataFrame, patterns: Sequence[str]) -> pd.DataFrame:
    """The columns of ``frame`` that match any of the shell-style ``patterns`` (``metrics.*``),
    in the frame's order.

    Raises:
        BenchError: a pattern matches no column.
    """
    if not patterns:
        return frame
    for pattern in patterns:
        if not fnmatch.filter(frame.columns, pattern):
            raise BenchError(f"no column matches {pattern!r} (the columns are listed in docs/results-api.md)")
    return frame[[c for c in frame.columns if any(fnmatch.fnmatchcase(c, p) for p in patterns)]]


def frame_bytes(frame: pd.DataFrame, fmt: str, digits: int | None = None) -> bytes:
    """``frame`` in format ``fmt`` (one of ``FORMATS``).

    Args:
        frame: the frame.
        fmt: ``markdown`` (a pipe table, missing values as ``–``), ``csv``, ``jsonl`` (one JSON
            object per row, timestamps in ISO 8601) or ``parquet`` (pyarrow).
        digits: decimals of floats in a markdown table (None: six significant digits); the
            other formats keep every digit.

    Raises:
        BenchError: an unknown format.
    """
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    if fmt == "jsonl":
        return frame.to_json(orient="records", lines=True, date_format="iso").encode() if len(frame) else b""
    if fmt == "markdown":
        cells = frame.astype(object).where(frame.notna(), None)
        floatfmt = "g" if digits is None else f".{digits}f"
        return (cells.to_markdown(index=False, missingval="–", floatfmt=floatfmt) + "\n").encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        _parquet_safe(frame).to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise BenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns that mix types (a dataset option that is a number in one study and a word in
    another) as text, which Parquet's one type per column can hold."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and v != v)}
            if len(kinds) > 1 and kinds != {bool}:
                out[column] = out[column].map(lambda v: None if v is None or v != v else str(v))
    return out


def write_frame(
    frame: pd.DataFrame, fmt: str, output: str | Path | None, stdout: BinaryIO, digits: int | None = None
) -> None:
    """Write ``frame`` to the file ``output``, or to ``stdout`` (a binary stream) when None.

    Parquet goes to a terminal only through a file (``output``) or a pipe: its bytes are not text.

    Raises:
        BenchError: an unknown format, a file that cannot be written, or Parquet for a terminal.
    """
    if fmt == "parquet" and output is None and stdout.isatty():
        raise BenchError("Parquet is binary: give --output FILE or pipe it (| duckdb, > file.parquet)")
    data = frame_bytes(frame, fmt, digits)
    if output is not None:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise BenchError(f"cannot write {output}: {exc.strerror or exc}") from None
        return
    stdout.write(data)
    stdout.flush()
