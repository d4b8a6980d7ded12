"""The ``dask`` executor: each task on a Dask distributed cluster.

What travels to a worker is the task's function (by reference: every worker needs the same
``bench`` installed) and its small item (a frozen cell, a trial task); a worker rebuilds a
dataset from the item and caches it per process, so no dataset is ever pickled per task. Only
the result comes back.

With ``--address`` the executor connects to a running scheduler; without it, it starts a
``LocalCluster`` of ``jobs`` single-threaded worker processes and closes it afterwards. A task
whose worker dies is run once more by the scheduler (``allowed-failures`` 1 on the cluster
started here; a remote scheduler applies its own setting, default 3), then given up.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from bench.core.errors import BenchError
from bench.grid.executors.base import (
    EXECUTORS,
    WORKER_DEATHS_ALLOWED,
    Executor,
    ExecutorOptions,
    TaskFailure,
    WorkerSettings,
    times,
)
from bench.grid.executors.signals import workers_ignore_sigint

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

T = TypeVar("T")

#: Deaths of a task's worker the scheduler started here tolerates before it gives up on the
#: task: one retry, as every executor allows.
ALLOWED_FAILURES = WORKER_DEATHS_ALLOWED - 1

_applied = threading.local()


@EXECUTORS.register("dask")
class DaskExecutor(Executor):
    """Tasks on the Dask cluster at ``options.address``, or on a local one started here.

    Args:
        options: ``address`` (else a local cluster of ``jobs`` workers), ``device``, ``threads``.
        client: an already connected client to use instead (left open); for tests and notebooks.
    """

    def __init__(self, options: ExecutorOptions, client: Client | None = None) -> None:
        super().__init__(options)
        self._client = client
        self._remote = client is not None or options.address is not None
        self._stack = ExitStack()

    @property
    def client(self) -> Client:
        """The client, connected on first use.

        Raises:
            BenchError: the scheduler cannot be reached.
        """
        if self._client is None:
            self._client = connect(self.options, self._stack)
        return self._client

    def close(self) -> None:
        self._stack.close()

    def map(
        self, fn: Callable[[T], Any], items: Sequence[T], on_start: Callable[[T], None] | None = None
    ) -> Iterator[tuple[T, Any]]:
        """See ``Executor.map``.

        Raises:
            BenchError: the scheduler cannot be reached, or a CUDA run has no GPU workers.
        """
        from distributed import as_completed

        from bench.grid.runner import now

        if not items:
            return
        client = self.client
        device = self.options.device
        if device.startswith("cuda") and self._remote:
            check_gpu_workers(client.scheduler_info(n_workers=-1)["workers"])
        resources = task_resources(device, self._remote)
        started = now()
        futures: dict[Future, int] = {}
        for index, item in enumerate(items):
            future = client.submit(
                run_task, self.options.settings, fn, item, pure=False, retries=1, resources=resources
            )
            futures[future] = index
        try:
            for future in as_completed(list(futures)):
                index = futures.pop(future)
                yield items[index], _outcome(future, started)
        except BaseException:  # KeyboardInterrupt, or the consumer stopped early
            client.cancel(list(futures))
            raise


def run_task(settings: WorkerSettings, fn: Callable[[T], Any], item: T) -> Any:
    """(On a Dask worker) ``fn(item)``, with ``settings`` applied to this worker thread first.

    torch's thread count is per OS thread (OpenMP), and only a task reaches a Dask worker's
    task threads: so the first task on each thread applies the settings, later ones find
    them applied and change nothing.
    """
    if getattr(_applied, "settings", None) != settings:
        settings.apply()
        _applied.settings = settings
    return fn(item)


def start_local_cluster(jobs: int, processes: bool = True) -> LocalCluster:
    """A quiet ``LocalCluster`` of ``jobs`` workers with one thread each, no dashboard.

    One task per worker at a time (``worker-saturation`` 1.0), so a dead worker is blamed only
    on the task it was running, not on one queued behind it. With ``processes=False`` the
    workers are threads of this process: tasks then share its process-wide state (torch's
    global random state, for code that uses it), so only one worker keeps them reproducible.
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


def connect(options: ExecutorOptions, stack: ExitStack) -> Client:
    """A client for ``options.address``, or for a local cluster started (and closed) here.

    Raises:
        BenchError: the scheduler at ``options.address`` cannot be reached.
    """
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


def task_resources(device: str, remote: bool) -> dict[str, float] | None:
    """Dask resources a task asks for: one ``GPU`` for a CUDA device on a remote cluster
    (workers started with ``dask worker ... --resources GPU=1``); none on a local cluster."""
    return {"GPU": 1} if remote and device.startswith("cuda") else None


def check_gpu_workers(workers: dict[str, dict[str, Any]]) -> None:
    """Refuse a CUDA run on a cluster whose workers advertise no ``GPU`` resource (its tasks
    would wait for ever). A cluster with no workers yet is let through: they may still join.

    Args:
        workers: ``client.scheduler_info()["workers"]``.

    Raises:
        BenchError: no worker advertises a GPU.
    """
    if workers and not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
        raise BenchError(
            "--device cuda on a Dask cluster whose workers advertise no GPU; start them with "
            "`dask worker tcp://HOST:8786 --nthreads 1 --resources GPU=1`"
        )


def _outcome(future: Future, started: str) -> Any:
    """The task's result; a ``TaskFailure`` when its workers died, the task raised, or the
    cluster dropped it."""
    from distributed.scheduler import KilledWorker

    if future.status == "finished":
        return future.result()
    if future.status != "error":  # cancelled or lost: not the task's doing
        return TaskFailure(
            "lost", "the Dask cluster dropped the task (scheduler lost or restarted?)", started
        )
    exc = future.exception()
    if isinstance(exc, KilledWorker):
        return TaskFailure("died", f"worker died {times(exc.allowed_failures + 1)}: {exc}", started)
    # The task raised (the task was already retried once): a worker failing to run it at all
    # (e.g. it cannot import bench); a task's own failures are its result.
    tb = "".join(traceback.format_tb(future.traceback(), limit=8))
    return TaskFailure("error", f"worker error: {type(exc).__name__}: {exc}", started, tb)
