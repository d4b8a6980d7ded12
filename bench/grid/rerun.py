"""Rerun one recorded cell from its record and compare what it measures now with what it measured then."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.grid.record import Record
from bench.grid.store import latest_by_hash, load_records


def find_record(run_dir: Path, hash_prefix: str) -> Record:
    """The record in ``run_dir`` whose hash starts with ``hash_prefix`` (unique prefix required)."""
    records = latest_by_hash(load_records(run_dir))
    if not records:
        raise BenchError(f"{run_dir} holds no readable records")
    matches = [h for h in records if h.startswith(hash_prefix)]
    if not matches:
        raise BenchError(
            f"no record with hash {hash_prefix!r} in {run_dir}; list them with: python -m bench cells {run_dir}"
        )
    if len(matches) > 1:
        raise BenchError(f"hash prefix {hash_prefix!r} matches {len(matches)} records; give more digits")
    return records[matches[0]]


def metric_differences(before: Any, after: Any, path: str = "metrics", tol: float = 0.0) -> list[str]:
    """Human-readable differences between two nested metric structures (empty when equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in before or key not in after:
                out.append(f"{path}.{key}: only in {'the rerun' if key in after else 'the record'}")
            else:
                out += metric_differences(before[key], after[key], f"{path}.{key}", tol)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in metric_differences(b, a, f"{path}[{i}]", tol)
        ]
    if isinstance(before, int | float) and isinstance(after, int | float) and not isinstance(before, bool):
        if math.isclose(before, after, rel_tol=tol, abs_tol=tol):
            return []
    elif before == after:
        return []
    return [f"{path}: recorded {before!r}, rerun {after!r}"]


def rerun(
    run_dir: Path, hash_prefix: str, device: str = "cpu", threads: int = 1
) -> tuple[dict, dict, list[str]]:
    """Rerun the cell ``hash_prefix`` of ``run_dir``; returns (record, new record, differences),
    both records as JSON of the current schema version.

    The new record is not written: the run directory is left as it was. The cell runs in this
    process with the worker settings of ``threads`` torch threads, as an executor's would.
    """
    from bench.grid.executors import WorkerSettings
    from bench.grid.runner import run_cell

    found = find_record(run_dir, hash_prefix)
    cell = found.config
    if cell.hash != found.hash:
        raise BenchError(
            f"record {found.hash} does not match its own config (hash {cell.hash}); was it edited?"
        )
    record = found.to_dict()
    with WorkerSettings(threads=threads).applied():
        fresh = run_cell(cell, device=device)
    again = Record.from_dict(fresh)
    before, after = (r.dataset.fingerprint if r.dataset else None for r in (found, again))
    changed = (
        [f"dataset.fingerprint: recorded {before}, rerun {after} (the data files changed since)"]
        if before and after and before != after
        else []
    )
    if again.status != "ok" or found.status != "ok":
        diffs = (
            []
            if again.status == found.status
            else [f"status: recorded {found.status!r}, rerun {again.status!r} ({again.error})"]
        )
        return record, fresh, changed + diffs
    diffs = changed + metric_differences(record.get("metrics"), fresh.get("metrics"))
    diffs += metric_differences(
        record.get("metrics_by_rule"), fresh.get("metrics_by_rule"), "metrics_by_rule"
    )
    return record, fresh, diffs
