"""Executors: where cells run. Each yields records as cells finish; the driver writes them.

- ``local``: in this process, one cell after another, with a live step bar.
- ``process``: a local process pool of ``jobs`` workers.
- ``dask``: a Dask distributed cluster (``bench.dask_executor``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from bench.config import CellConfig
from bench.errors import BenchError
from bench.runner import run_cell

EXECUTORS = ("local", "process", "dask")


@dataclass(frozen=True)
class ExecutorOptions:
    """How and where to run cells; not part of a cell's identity."""

    kind: str = "local"
    device: str = "cpu"
    threads: int = 1
    jobs: int = 2
    address: str | None = None


OnStart = Callable[[CellConfig], None]
OnStep = Callable[[int, int], None]


def run_cells(
    cells: list[CellConfig], options: ExecutorOptions, on_start: OnStart, on_step: OnStep
) -> Iterator[tuple[CellConfig, dict[str, Any]]]:
    """Run ``cells`` on the chosen executor, yielding (cell, record) as each finishes."""
    if options.kind == "local":
        for cell in cells:
            on_start(cell)
            yield cell, run_cell(cell, device=options.device, threads=options.threads, on_step=on_step)
    elif options.kind == "process":
        yield from _run_process_pool(cells, options)
    elif options.kind == "dask":
        from bench.dask_executor import run_on_dask

        yield from run_on_dask(cells, options)
    else:
        raise BenchError(f"unknown executor {options.kind!r}; choose one of {', '.join(EXECUTORS)}")


def _run_process_pool(cells: list[CellConfig], options: ExecutorOptions) -> Iterator[tuple[CellConfig, dict]]:
    import multiprocessing

    threads = options.threads
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(run_cell, cell, options.device, threads): cell for cell in cells}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
