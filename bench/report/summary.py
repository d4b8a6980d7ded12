"""The terminal summary of a run: per study, the headline rates of every method x scheme and,
for a seed-target run, where each group stands against the target. Plain rows of text, so the
CLI only lays them out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.grid.record import Record
from bench.report.build import studies, study_titles
from bench.report.cells import Cells, as_records
from bench.report.operating import headline_columns
from bench.report.overview import headline_row
from bench.report.seed_target import diff_rows, mean_rows, study_target


def summary_tables(records: Sequence[Record | Mapping[str, Any]]) -> list[tuple[str, list[dict[str, str]]]]:
    """``[(title, rows)]``: per study, a headline table (rates in %, mean and 95% interval; with
    ``--target-ci`` also the target's status per group), and with ``--target-diff-ci`` a table
    of the paired differences' status. ``records`` may be their JSON objects."""
    out = []
    grouped = studies(as_records(records))
    for study, title in zip(grouped, study_titles(grouped), strict=True):
        cells = Cells(study)
        if not cells.cells():
            continue
        target = study_target(study)
        status = {}
        if target is not None and target.ci is not None:
            status = {(r["method"], r["scheme"]): r for r in mean_rows(cells, study, target, short=True)}
        rows = []
        for m, s in cells.cells():
            # The terminal always marks collapsed cells; the operating columns where recorded.
            row = headline_columns(cells, m, s, headline_row(cells, m, s))
            if (m, s) in status:
                row[f"target ±{target.ci:g}"] = (
                    f"{status[(m, s)]['target']} (±{status[(m, s)]['half-width']})"
                )
            rows.append(row)
        out.append((f"{title}: headline (mean and 95% interval over seeds)", rows))
        if target is not None and target.diff_ci is not None:
            diffs = diff_rows(cells, study, target, short=True)
            out.append(
                (
                    f"{title}: paired {target.metric} differences, target ±{target.diff_ci:g}",
                    diffs,
                )
            )
    return out
