"""A run's records as pandas frames: one row per cell, and the report's summary per method x scheme.

``load_records`` reads ``results.jsonl`` through the record reader (``bench.grid.store``), so
records of every schema version come out in the current shape, one per cell hash as the report
counts them (a rerun's last ``ok`` record wins). Each column is the dotted path of a field of the
record's JSON (``Record.to_dict``): ``config.budget.steps``, ``metrics.escape_rate``,
``metrics_by_rule.knn1.accuracy``, ``health.signs.low_rank``, ``timing.train_s``,
``env.torch``; lists (curves, projections, confusion matrices, class lists) are left out. A
metric a newer bench records is a new column without a change here.

``load_summary`` is the report's headline table as numbers: it calls the very function the
report's table is built from (``bench.report.overview.headline_numbers``), so the two cannot
disagree.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.canonical import canonical_json
from bench.core.environment import fingerprint
from bench.core.errors import BenchError
from bench.grid.record import Record
from bench.grid.store import RESULTS_FILE
from bench.report.build import studies, study_titles
from bench.report.cells import (
    Cells,
    labels_by_hash,
    method_key,
    method_labels,
    scheme_key,
)
from bench.report.cells import load_records as report_records
from bench.report.overview import HEADLINE_RATES, headline_numbers

__all__ = [
    "LEADING_COLUMNS",
    "load_records",
    "load_summary",
    "machine_id",
    "record_row",
    "run_dirs",
    "study_records",
]

#: The columns every records frame starts with; the rest are the record's fields, dotted.
LEADING_COLUMNS = (
    "run_dir",
    "study",
    "method",
    "scheme",
    "seed",
    "hash",
    "status",
    "error",
    "started_at",
    "finished_at",
    "machine",
    "inferred",
)
#: Record fields that are no columns of their own: the 2-D projection's points, a failure's
#: traceback, the version (every record is read as the current one), and those of the leading columns.
NOT_FLATTENED = frozenset(
    {"schema_version", "embedding_2d", "traceback", "error", "started_at", "finished_at"}
)
#: The order of the record's groups of columns after the leading ones (unknown fields last).
GROUP_ORDER = (
    "config",
    "params",
    "params_source",
    "headline_rule",
    "metrics",
    "metrics_by_rule",
    "val_metrics_by_rule",
    "health",
    "checkpoint",
    "timing",
    "sampling",
    "dataset",
    "plan",
    "seed_target",
    "seed_round",
    "env",
)


def run_dirs(path: str | os.PathLike) -> list[Path]:
    """The run directories at ``path``: ``path`` itself when it holds ``results.jsonl`` (or is
    that file), else every folder below it that holds one, sorted.

    Raises:
        BenchError: ``path`` does not exist or holds no ``results.jsonl``.
    """
    path = Path(path)
    if path.is_file() and path.name == RESULTS_FILE:
        return [path.parent]
    if not path.is_dir():
        raise BenchError(f"{path} is not a run directory (no such directory)")
    if (path / RESULTS_FILE).is_file():
        return [path]
    found = sorted(p.parent for p in path.rglob(RESULTS_FILE) if p.is_file())
    if not found:
        raise BenchError(f"{path} holds no {RESULTS_FILE} (nor does any folder below it)")
    return found


def study_records(run_dir: Path) -> Iterator[tuple[str, list[Record]]]:
    """``(title, records)`` per study of ``run_dir``, as the report groups and titles them (one
    record per cell hash; failed cells included)."""
    grouped = studies(report_records(run_dir))
    yield from zip(study_titles(grouped), grouped, strict=True)


def machine_id(env: Mapping[str, Any] | None) -> str | None:
    """A short id of the machine fingerprint of a record's ``env``
    (``bench.core.environment.fingerprint``); None for a record without one."""
    if not env:
        return None
    return hashlib.sha256(canonical_json(fingerprint(dict(env))).encode()).hexdigest()[:12]


def _flat(value: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            _flat(item, name + ".", out)
        elif not isinstance(item, list | tuple):
            out[name] = item


def record_row(record: Record, run_dir: str, study: str, method: str, scheme: str) -> dict[str, Any]:
    """One row of the records frame: the leading columns, then every scalar field of the record's
    JSON under its dotted path."""
    row: dict[str, Any] = {
        "run_dir": run_dir,
        "study": study,
        "method": method,
        "scheme": scheme,
        "seed": record.config.seed,
        "hash": record.hash,
        "status": record.status,
        "error": record.error,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "machine": machine_id(record.env),
        "inferred": ",".join(sorted(record.inferred)) or None,
    }
    data = {k: v for k, v in record.to_dict().items() if k not in NOT_FLATTENED}
    _flat(data, "", row)
    return row


def _ordered(columns: Sequence[str]) -> list[str]:
    """The leading columns, then the record's groups in ``GROUP_ORDER``; within a group, the
    fields of one table together (``config.params.*`` after ``config.*``), each in first-seen order."""
    parents: dict[str, int] = {}
    for i, column in enumerate(columns):
        parents.setdefault(column.rpartition(".")[0], i)

    def key(item: tuple[int, str]) -> tuple[int, int, int]:
        i, column = item
        if column in LEADING_COLUMNS:
            return (0, LEADING_COLUMNS.index(column), 0)
        group = column.split(".", 1)[0]
        rank = GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)
        return (1 + rank, parents[column.rpartition(".")[0]], i)

    return [column for _, column in sorted(enumerate(columns), key=key)]


def _frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=list(LEADING_COLUMNS))
    frame = frame[_ordered(list(frame.columns))]
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return frame


def load_records(path: str | os.PathLike) -> pd.DataFrame:
    """The records of a run as a DataFrame: one row per cell, flat columns.

    Args:
        path: a run directory (it holds ``results.jsonl``), that file, or a folder of run
            directories (every ``results.jsonl`` below it is read; ``run_dir`` tells them apart).

    Returns:
        One row per cell hash of each run directory (the report's records: a rerun's last ``ok``
        record wins; failed cells are rows with ``status`` ``failed``). Columns: ``run_dir``,
        ``study`` (the report's heading), ``method`` and ``scheme`` (the report's labels, which
        carry the settings that vary within a study), ``seed``, ``hash``, ``status``, ``error``,
        ``started_at`` and ``finished_at`` (UTC timestamps), ``machine`` (an id of the machine
        fingerprint), ``inferred`` (fields the record's version lacked and the reader filled
        in), then each scalar field of the record under its dotted path: ``config.*``,
        ``params.*`` (the method's parameters as it ran), ``metrics.*`` (the headline rule's
        test metrics, rates in [0, 1]), ``metrics_by_rule.RULE.*``,
        ``val_metrics_by_rule.RULE.*``, ``health.*``, ``checkpoint.*``, ``timing.*``,
        ``sampling.*``, ``dataset.*``, ``plan.*``, ``env.*``.

    Raises:
        BenchError: ``path`` does not exist or holds no ``results.jsonl``.
    """
    rows = []
    for run_dir in run_dirs(path):
        for title, records in study_records(run_dir):
            methods = method_labels(records)
            schemes = labels_by_hash(records, "scheme", "scheme_options")
            order = sorted(
                records,
                key=lambda r: (
                    method_key(methods[r.hash]),
                    scheme_key(schemes[r.hash]),
                    r.config.seed,
                    r.hash,
                ),
            )
            rows += [record_row(r, str(run_dir), title, methods[r.hash], schemes[r.hash]) for r in order]
    return _frame(rows)


def _column(title: str) -> str:
    """The summary frame's name of a headline column: ``accuracy %`` -> ``accuracy_pct``,
    ``cost / 1000 (production)`` -> ``cost_per_1000_production``."""
    if title.endswith(" %"):
        return title[:-2] + "_pct"
    tail = title.removeprefix("cost / 1000").strip(" ()")
    suffix = {"": "", "parts": "", "test mix": "_test", "production": "_production"}.get(tail, "_" + tail)
    return "cost_per_1000" + suffix


def summary_rows(run_dir: str, title: str, records: Sequence[Record]) -> list[dict[str, Any]]:
    """The summary frame's rows of one study."""
    cells = Cells(records)
    rows = []
    for m, s in cells.cells():
        row: dict[str, Any] = {
            "run_dir": run_dir,
            "study": title,
            "method": m,
            "scheme": s,
            "seeds": len(cells.by_cell[(m, s)]),
        }
        for column, summary in headline_numbers(cells, m, s).items():
            name = _column(column)
            row[name] = summary["mean"]
            row[f"{name}_low"] = summary["ci_low"]
            row[f"{name}_high"] = summary["ci_high"]
        rows.append(row)
    return rows


def load_summary(path: str | os.PathLike) -> pd.DataFrame:
    """The report's headline table as numbers: one row per study x method x scheme.

    Args:
        path: as for ``load_records``.

    Returns:
        Columns ``run_dir``, ``study``, ``method``, ``scheme``, ``seeds`` (ok seeds), then per
        headline rate (``accuracy_pct``, ``escape_pct``, ``overkill_pct``: in %, the mean over
        seeds and its 95% logit-scale interval as ``*_low``, ``*_high``) and per cost column
        (``cost_per_1000``, or ``cost_per_1000_test`` and ``cost_per_1000_production`` with a
        production good share: mean and Student-t interval) the same three. The numbers are the
        report's (``bench.report.overview.headline_numbers``) before rounding; no interval with
        one seed (NaN).

    Raises:
        BenchError: ``path`` does not exist or holds no ``results.jsonl``.
    """
    rows = []
    for run_dir in run_dirs(path):
        for title, records in study_records(run_dir):
            rows += summary_rows(str(run_dir), title, records)
    columns = ["run_dir", "study", "method", "scheme", "seeds"]
    for _, column in HEADLINE_RATES:
        columns += [f"{_column(column)}{end}" for end in ("", "_low", "_high")]
    frame = pd.DataFrame(rows)
    return frame if not frame.empty else pd.DataFrame(columns=columns)
