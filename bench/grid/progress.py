"""Progress for a grid run: rich bars on a terminal, plain lines in logs (CI)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _summary(record: dict[str, Any]) -> str:
    if record.get("status") != "ok":
        return f"FAILED: {record.get('error')}"
    m = record.get("metrics", {})
    parts = []
    for name, key in (("accuracy", "accuracy"), ("escape", "escape_rate"), ("overkill", "overkill_rate")):
        value = m.get(key)
        if value is not None:
            parts.append(f"{name} {100 * value:.1f}%")
        elif key == "accuracy":
            parts.append("accuracy n/a")
    parts.append(f"{record.get('timing', {}).get('train_s', 0):.1f} s")
    return ", ".join(parts)


def collapse_warning(label: str, record: dict[str, Any]) -> str | None:
    """One warning line for a cell whose health check says it collapsed, else None."""
    health = record.get("health") or {}
    if record.get("status") != "ok" or not health.get("collapsed"):
        return None
    signs = ", ".join(name.replace("_", " ") for name, shows in (health.get("signs") or {}).items() if shows)
    final, collapse = health.get("final_loss"), health.get("collapse_loss")
    loss = f", final loss {final:.4g}" + (f" (collapse value {collapse:.4g})" if collapse is not None else "")
    return (
        f"warning: {label} collapsed ({signs}): effective rank {health.get('effective_rank', 0):.1f},"
        f" PC1 share {health.get('pc1_share', 0):.2f}{loss if final is not None else ''}"
    )


class GridProgress:
    """One bar for the grid (cells done / total, ETA), one for the current cell's steps.

    When the output is not a terminal it prints one plain line per finished cell instead.
    """

    def __init__(self, total: int, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.total = total
        self.done = 0
        self._t0 = time.perf_counter()
        self._progress: Progress | None = None

    def __enter__(self) -> GridProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._grid = self._progress.add_task("grid", total=self.total)
            self._cell = self._progress.add_task("cell", total=1, visible=False)
        else:
            print(f"running {self.total} cell(s)", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_cell(self, label: str, steps: int) -> None:
        if self._progress is not None:
            self._progress.reset(self._cell, total=steps, description=label, visible=True)

    def step(self, step: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._cell, completed=step, total=total)

    def finish_cell(self, label: str, record: dict[str, Any]) -> None:
        self.done += 1
        line = f"[{self.done}/{self.total}] {label}: {_summary(record)}"
        warning = collapse_warning(label, record)
        if self._progress is not None:
            self._progress.update(self._grid, completed=self.done)
            self._progress.console.print(line, highlight=False)
            if warning:
                self._progress.console.print(warning, style="yellow", highlight=False)
        else:
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / self.done * (self.total - self.done)
            print(f"{line} (elapsed {elapsed:.0f} s, eta {eta:.0f} s)", file=sys.stderr, flush=True)
            if warning:
                print(warning, file=sys.stderr, flush=True)
