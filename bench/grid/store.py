"""The result store: one JSON line per finished cell in ``RUN_DIR/results.jsonl``.

Each line is appended, flushed and fsynced the moment its cell finishes, so an interruption
loses at most the cell in flight. Reading tolerates a torn last line (a crash mid-write) and
foreign lines: they are skipped with a warning and the rest is kept. Every line is read by the
record reader, ``bench.grid.record.Record.from_dict``, which converts older schema versions.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from bench.core.errors import BenchError
from bench.grid.record import SCHEMA_VERSION, Record, RecordError

__all__ = ["RESULTS_FILE", "SCHEMA_VERSION", "ResultStore", "latest_by_hash", "load_records", "read_records"]

RESULTS_FILE = "results.jsonl"

R = TypeVar("R", Record, dict)


def load_records(run_dir: Path) -> list[Record]:
    """Every readable record in ``run_dir/results.jsonl``, in file order, as the current ``Record``
    (each read by ``Record.from_dict``, which converts older versions).

    Lines that are not records (a torn write, foreign content, a record of a newer bench) are
    skipped with a warning naming the line and why.
    """
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(
                    f"{path}:{number}: skipped a line that is not valid JSON (torn write?)", stacklevel=2
                )
                continue
            try:
                records.append(Record.from_dict(data))
            except RecordError as exc:
                warnings.warn(
                    f"{path}:{number}: skipped a line that is not a bench record: {exc}", stacklevel=2
                )
    return records


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``load_records`` as JSON objects of the current schema version, for code
    that lists or compares them as JSON."""
    return [record.to_dict() for record in load_records(run_dir)]


def latest_by_hash(records: Iterable[R]) -> dict[str, R]:
    """One record per cell hash: the last ``ok`` one if any, else the last one (records or their
    JSON objects)."""
    out: dict[str, R] = {}
    for record in records:
        key, status = _key(record)
        current = out.get(key)
        if current is None or status == "ok" or _key(current)[1] != "ok":
            out[key] = record
    return out


def _key(record: Record | dict[str, Any]) -> tuple[str, str]:
    if isinstance(record, Record):
        return record.hash, record.status
    return record["hash"], record["status"]


class ResultStore:
    """Appends records to ``run_dir/results.jsonl``; only the driver process writes it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-check"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise BenchError(
                f"output directory {str(self.run_dir)!r} cannot be written: {exc.strerror or exc}"
            ) from None
        self._repair_torn_tail()

    def finished_hashes(self) -> set[str]:
        """Hashes of cells with an ``ok`` record (what ``--resume`` skips)."""
        return {r.hash for r in load_records(self.run_dir) if r.status == "ok"}

    def append(self, record: Record | dict[str, Any]) -> None:
        """Append one record (a ``Record`` or its JSON object) durably (write, flush, fsync).

        Raises:
            BenchError: the write failed (disk full, permissions); earlier records are intact.
        """
        if isinstance(record, Record):
            record = record.to_dict()
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise BenchError(
                f"could not write a record to {str(self.path)!r}: {exc.strerror or exc}; earlier records are intact"
            ) from None

    def _repair_torn_tail(self) -> None:
        # A crash mid-append can leave a last line without its newline; end it so the next
        # record starts on a line of its own (the torn line is then skipped when read).
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")


#: Which parts of a split each rate of a record is counted over (the metric's last path key).
RATE_PARTS = {
    "accuracy": "all",
    "escape_rate": "defective",
    "defect_confusion_rate": "defective",
    "overkill_rate": "good",
}


def parts_behind(record: Record | dict[str, Any], path: tuple[str, ...] | list[str]) -> int | None:
    """How many parts the rate at ``path`` of ``record`` was counted over on its seed.

    ``accuracy`` counts every part of the split, ``escape_rate`` and ``defect_confusion_rate``
    the defective ones, ``overkill_rate`` the good ones; the split is the validation split for
    ``val_metrics_by_rule``, else the test split; the numbers come from ``dataset.counts``.
    None for another value, or a record without those counts (or without a good class where
    one is needed). The report's intervals of a rate whose seeds show no spread, and the seed
    rule's, come from these counts (``bench.core.intervals.rate_interval``).
    """
    kind = RATE_PARTS.get(path[-1]) if path else None
    if isinstance(record, Record):
        info = record.dataset
        dataset = None if info is None else {"counts": info.counts, "good": info.good}
    else:
        dataset = record.get("dataset")
    if kind is None or not isinstance(dataset, dict) or not isinstance(dataset.get("counts"), Mapping):
        return None
    counts = dataset["counts"].get("val" if path[0] == "val_metrics_by_rule" else "test")
    if not isinstance(counts, Mapping) or not counts:
        return None
    total = sum(int(v) for v in counts.values())
    if kind == "all":
        return total or None
    good = dataset.get("good")
    if good is None or str(good) not in counts:
        return None
    parts = int(counts[str(good)]) if kind == "good" else total - int(counts[str(good)])
    return parts or None
