"""The ``dask`` executor: each cell is one task on a Dask distributed cluster.

What travels to a worker is ``bench.grid.runner.run_cell`` (by reference: every worker needs the
same ``bench`` installed) and the small frozen ``CellConfig``; the worker rebuilds the dataset
from the cell's spec and caches it per process, so no dataset is ever pickled per task. Only
the record comes back, and only the driver writes it.

With ``--address`` the executor connects to a running scheduler; without it, it starts a
``LocalCluster`` of ``jobs`` single-threaded worker processes and closes it afterwards.
A cell whose worker dies is run once more by the scheduler (``allowed-failures`` 1 on the
cluster started here; a remote scheduler applies its own setting, default 3), then recorded
as failed.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from bench.core.errors import BenchError
from bench.grid.config import CellConfig
from bench.grid.executors import ExecutorOptions, failed_record
from bench.grid.runner import now, run_cell
from bench.grid.signals import workers_ignore_sigint

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

#: Deaths of a cell's worker the scheduler started here tolerates before it gives up on the
#: cell: 1 means one retry.
ALLOWED_FAILURES = 1

_COUNTS = {1: "once", 2: "twice"}


def start_local_cluster(jobs: int, processes: bool = True) -> LocalCluster:
    """A quiet ``LocalCluster`` of ``jobs`` workers with one thread each, no dashboard.

    One task per worker at a time (``worker-saturation`` 1.0), so a dead worker is blamed
    only on the cell it was running, not on one queued behind it. With ``processes=False``
    the workers are threads of this process: cells then share torch's global random state,
    so only one worker keeps them reproducible.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        return LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )


def task_resources(device: str, remote: bool) -> dict[str, float] | None:
    """Dask resources a cell asks for: one ``GPU`` for a CUDA device on a remote cluster
    (workers started with ``dask worker ... --resources GPU=1``); none on a local cluster."""
    return {"GPU": 1} if remote and device.startswith("cuda") else None


def check_gpu_workers(workers: dict[str, dict[str, Any]]) -> None:
    """Refuse a CUDA run on a cluster whose workers advertise no ``GPU`` resource (its tasks
    would wait for ever). A cluster with no workers yet is let through: they may still join.

    Args:
        workers: ``client.scheduler_info()["workers"]``.
    """
    if workers and not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
        raise BenchError(
            "--device cuda on a Dask cluster whose workers advertise no GPU; start them with "
            "`dask worker tcp://HOST:8786 --nthreads 1 --resources GPU=1`"
        )


def run_on_dask(
    cells: list[CellConfig], options: ExecutorOptions, client: Client | None = None
) -> Iterator[tuple[CellConfig, dict[str, Any]]]:
    """Run ``cells`` as Dask tasks, yielding (cell, record) as each finishes.

    Args:
        cells: the cells to run.
        options: ``address`` (else a local cluster of ``jobs`` workers), ``device``, ``threads``.
        client: an already connected client to use instead (left open); for tests and notebooks.

    Raises:
        BenchError: the scheduler cannot be reached, a CUDA run has no GPU workers, or the
            cluster drops the tasks (scheduler lost); finished records were yielded already.
    """
    if not cells:
        return
    from distributed import as_completed

    with ExitStack() as stack:
        remote = client is not None or options.address is not None
        if client is None:
            client = connect(options, stack)
        if options.device.startswith("cuda") and remote:
            check_gpu_workers(client.scheduler_info(n_workers=-1)["workers"])
        resources = task_resources(options.device, remote)
        started = now()
        futures: dict[Future, CellConfig] = {}
        for cell in cells:
            # run_cell by reference and the small frozen cell: the worker rebuilds the data.
            future = client.submit(
                run_cell, cell, options.device, options.threads, pure=False, retries=1, resources=resources
            )
            futures[future] = cell
        try:
            for future in as_completed(list(futures)):
                cell = futures.pop(future)
                yield cell, _record(future, cell, options.device, started)
        except BaseException:  # KeyboardInterrupt, or the consumer stopped early
            client.cancel(list(futures))
            raise


def connect(options: ExecutorOptions, stack: ExitStack) -> Client:
    """A client for ``options.address``, or for a local cluster started (and closed) here."""
    from distributed import Client

    if options.address is None:
        with workers_ignore_sigint():  # its workers (and the threads that start them) never see Ctrl-C
            cluster = start_local_cluster(options.jobs)
        stack.callback(cluster.close)
        client = Client(cluster)
    else:
        try:
            client = Client(options.address)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BenchError(f"cannot reach the Dask scheduler at {options.address}: {exc}") from exc
    stack.callback(client.close)
    return client


def _record(future: Future, cell: CellConfig, device: str, started: str) -> dict[str, Any]:
    """The cell's record; a failed record when its workers died or the task itself raised."""
    from distributed.scheduler import KilledWorker

    if future.status == "finished":
        return future.result()
    if future.status != "error":  # cancelled or lost: not the cell's doing
        raise BenchError(f"the Dask cluster dropped the task of {cell.label} (scheduler lost or restarted?)")
    exc = future.exception()
    if isinstance(exc, KilledWorker):
        deaths = exc.allowed_failures + 1
        return failed_record(
            cell, device, f"worker died {_COUNTS.get(deaths, f'{deaths} times')}: {exc}", started
        )
    # run_cell records its own failures, so this is the worker failing to run it at all
    # (e.g. it cannot import bench); the task was already retried once.
    record = failed_record(cell, device, f"worker error: {type(exc).__name__}: {exc}", started)
    record["traceback"] = "".join(traceback.format_tb(future.traceback(), limit=8))
    return record
