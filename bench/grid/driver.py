"""The driver: resolve a grid, skip finished cells, run the rest, store each record at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.atomic import write_text_atomic
from bench.grid.config import CellConfig, GridConfig
from bench.grid.executors import ExecutorOptions, run_cells
from bench.grid.progress import GridProgress
from bench.grid.store import ResultStore


@dataclass
class GridOutcome:
    """What a grid run did: records written now, cells skipped as already finished."""

    run_dir: Path
    total: int
    skipped: int
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def run_grid(
    grid: GridConfig,
    run_dir: Path,
    options: ExecutorOptions | None = None,
    resume: bool = False,
    progress: GridProgress | None = None,
) -> GridOutcome:
    """Run every cell of ``grid`` into ``run_dir``; with ``resume`` skip cells already ``ok``.

    Each record is appended (and fsynced) the moment its cell finishes; a KeyboardInterrupt
    abandons only the cell in flight.
    """
    options = options or ExecutorOptions()
    store = ResultStore(run_dir)
    write_text_atomic(Path(run_dir) / "config.toml", grid.to_toml())
    cells = grid.cells()
    done = store.finished_hashes() if resume else set()
    todo = [c for c in cells if c.hash not in done]
    outcome = GridOutcome(Path(run_dir), total=len(cells), skipped=len(cells) - len(todo))
    progress = progress or GridProgress(len(todo))

    def on_start(cell: CellConfig) -> None:
        progress.start_cell(cell.label, cell.budget.steps)

    with progress:
        for cell, record in run_cells(todo, options, on_start, progress.step):
            if cell.method in grid.params_source:
                record["params_source"] = grid.params_source[cell.method]
            store.append(record)
            outcome.records.append(record)
            progress.finish_cell(cell.label, record)
    return outcome
