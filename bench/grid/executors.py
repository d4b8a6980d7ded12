"""Executors: where cells run. Each yields records as cells finish; the driver writes them.

- ``local``: in this process, one cell after another, with a live step bar.
- ``process``: a local process pool of ``jobs`` workers.
- ``dask``: a Dask distributed cluster (``bench.grid.dask_executor``).

A worker process that dies while running a cell (killed, out of memory, a crash in native
code) does not end the grid: the cell is run once more, and if its worker dies again it is
recorded as a failed record (``error`` ``"worker died twice: ..."``) and the grid goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from bench.core.errors import BenchError
from bench.grid.config import CellConfig
from bench.grid.runner import new_record, now, run_cell
from bench.grid.signals import workers_ignore_sigint

EXECUTORS = ("local", "process", "dask")

#: Runs of one cell whose worker died before the cell is recorded as failed.
WORKER_DEATHS_ALLOWED = 2


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
    """Run ``cells`` on the chosen executor, yielding (cell, record) as each finishes.

    Raises:
        BenchError: an unknown executor, fewer than one job, or (dask) an unreachable scheduler.
    """
    if options.kind not in EXECUTORS:
        raise BenchError(f"unknown executor {options.kind!r}; choose one of {', '.join(EXECUTORS)}")
    if options.kind != "local" and options.jobs < 1:
        raise BenchError(f"--jobs must be at least 1 (got {options.jobs})")
    if options.kind == "local":
        for cell in cells:
            on_start(cell)
            yield cell, run_cell(cell, device=options.device, threads=options.threads, on_step=on_step)
    elif options.kind == "process":
        yield from _run_process_pool(cells, options)
    else:
        from bench.grid.dask_executor import run_on_dask

        yield from run_on_dask(cells, options)


def failed_record(cell: CellConfig, device: str, error: str, started_at: str) -> dict[str, Any]:
    """A failed record for a cell that produced none (its worker died), shaped like
    ``run_cell``'s failed records. ``env`` describes the driver: the worker is gone."""
    from bench.core.environment import environment

    return {
        **new_record(cell),
        "error": error,
        "started_at": started_at,
        "env": environment(device),
        "finished_at": now(),
    }


def _run_process_pool(cells: list[CellConfig], options: ExecutorOptions) -> Iterator[tuple[CellConfig, dict]]:
    """At most ``jobs`` cells in flight on a spawn-context pool that lives for the whole grid
    (so each worker loads the dataset once). Workers never see Ctrl-C
    (``workers_ignore_sigint``): the driver's KeyboardInterrupt stops them.

    A worker that dies breaks the whole pool and every cell in flight with it, so the cells
    in flight are suspects: the pool is restarted and each suspect reruns *alone*, which
    pins a second death on the cell that caused it rather than on a bystander.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    todo = deque(cells)
    suspects: deque[CellConfig] = deque()
    deaths: dict[str, int] = {}  # by cell hash
    started: dict[str, str] = {}
    in_flight: dict[Future, CellConfig] = {}
    pool: ProcessPoolExecutor | None = None

    def submit(cell: CellConfig) -> None:
        started.setdefault(cell.hash, now())
        with workers_ignore_sigint():  # the pool starts its workers in submit
            future = pool.submit(run_cell, cell, options.device, options.threads)
        in_flight[future] = cell

    try:
        while todo or suspects or in_flight:
            if pool is None:
                with workers_ignore_sigint():
                    pool = ProcessPoolExecutor(
                        max_workers=options.jobs, mp_context=ctx, initializer=exit_with_parent
                    )
            if suspects:
                if not in_flight:
                    submit(suspects.popleft())
            else:
                while todo and len(in_flight) < options.jobs:
                    submit(todo.popleft())
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                # The pool fails every pending future; collect them all before restarting.
                done, _ = wait(in_flight)
            broken = False
            for future in done:
                cell = in_flight.pop(future)
                exc = future.exception()
                if exc is None:
                    yield cell, future.result()
                elif isinstance(exc, BrokenProcessPool):
                    broken = True
                    deaths[cell.hash] = deaths.get(cell.hash, 0) + 1
                    if deaths[cell.hash] >= WORKER_DEATHS_ALLOWED:
                        error = f"worker died twice: a worker process ended abruptly while running it ({exc})"
                        yield cell, failed_record(cell, options.device, error, started[cell.hash])
                    else:
                        suspects.append(cell)
                else:  # run_cell records its own failures; this is the pool failing to run it
                    error = f"worker error: {type(exc).__name__}: {exc}"
                    yield cell, failed_record(cell, options.device, error, started[cell.hash])
            if broken:
                pool.shutdown(wait=True)
                pool = None
    except BaseException:
        if pool is not None:
            _stop_pool(pool)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def exit_with_parent() -> None:
    """(In a pool worker) end this process as soon as the driver that started it ends.

    A worker waits on a queue whose pipe it holds both ends of, so a driver killed with
    ``kill -9`` would leave it waiting for ever, holding its memory.
    """
    import multiprocessing
    import os
    import threading
    from multiprocessing.connection import wait as wait_for

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait_for([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Drop queued cells and end the workers now: a SIGTERM reaches only the driver, and an
    orderly shutdown would wait for the cells in flight to finish."""
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
