"""The ``process`` executor: a local pool of ``jobs`` spawned worker processes.

A worker process that dies while running a task (killed, out of memory, a crash in native
code) does not end the others: the task is run once more, and if its worker dies again its
outcome is a ``TaskFailure`` (``worker died twice: ...``) and the rest go on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from bench.grid.executors.base import (
    EXECUTORS,
    WORKER_DEATHS_ALLOWED,
    Executor,
    TaskFailure,
    WorkerSettings,
    times,
)
from bench.grid.executors.signals import workers_ignore_sigint

T = TypeVar("T")


@EXECUTORS.register("process")
class ProcessExecutor(Executor):
    """At most ``jobs`` tasks in flight on a spawn-context pool that lives for the whole
    ``map`` (so each worker loads a dataset once). Each worker starts (``start_worker``) with
    SIGINT blocked, the worker settings applied and a watch on the driver; an interrupt ends
    the workers at once.

    A worker that dies breaks the whole pool and every task in flight with it, so the tasks
    in flight are suspects: the pool is restarted and each suspect reruns *alone*, which pins
    a second death on the task that caused it rather than on a bystander.
    """

    def map(
        self, fn: Callable[[T], Any], items: Sequence[T], on_start: Callable[[T], None] | None = None
    ) -> Iterator[tuple[T, Any]]:
        from bench.grid.runner import now

        if not items:
            return
        ctx = multiprocessing.get_context("spawn")
        jobs = self.options.jobs
        todo = deque(range(len(items)))
        suspects: deque[int] = deque()
        deaths: dict[int, int] = {}
        started: dict[int, str] = {}
        in_flight: dict[Future, int] = {}
        pool: ProcessPoolExecutor | None = None
        with workers_ignore_sigint():
            pids = ctx.SimpleQueue()  # each worker's pid, from its own start: see _stop_pool

        def submit(index: int) -> None:
            started.setdefault(index, now())
            with workers_ignore_sigint():  # the pool starts its workers in submit
                in_flight[pool.submit(fn, items[index])] = index

        try:
            while todo or suspects or in_flight:
                if pool is None:
                    with workers_ignore_sigint():
                        pool = ProcessPoolExecutor(
                            max_workers=jobs,
                            mp_context=ctx,
                            initializer=start_worker,
                            initargs=(self.options.settings, pids),
                        )
                if suspects:
                    if not in_flight:
                        submit(suspects.popleft())
                else:
                    while todo and len(in_flight) < jobs:
                        submit(todo.popleft())
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    # The pool fails every pending future; collect them all before restarting.
                    done, _ = wait(in_flight)
                broken = False
                for future in done:
                    index = in_flight.pop(future)
                    exc = future.exception()
                    if exc is None:
                        yield items[index], future.result()
                    elif isinstance(exc, BrokenProcessPool):
                        broken = True
                        deaths[index] = deaths.get(index, 0) + 1
                        if deaths[index] >= WORKER_DEATHS_ALLOWED:
                            error = f"worker died {times(deaths[index])}: a worker process ended abruptly while running it ({exc})"
                            yield items[index], TaskFailure("died", error, started[index])
                        else:
                            suspects.append(index)
                    else:  # the pool failing to run the task (a task's own errors are its result)
                        error = f"worker error: {type(exc).__name__}: {exc}"
                        yield items[index], TaskFailure("error", error, started[index])
                if broken:
                    pool.shutdown(wait=True)
                    pool = None
        except BaseException:  # KeyboardInterrupt, or the consumer stopped early
            if pool is not None:
                _stop_pool(pool, pids)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            pids.close()


def start_worker(settings: WorkerSettings, pids: Any) -> None:
    """(A pool worker's initializer) report this process's pid to the driver, end with the
    driver, then apply ``settings``: all of a worker's process-wide state, set once."""
    pids.put(os.getpid())  # first: the driver can end a worker still importing torch
    exit_with_parent()
    settings.apply()


def exit_with_parent() -> None:
    """(In a pool worker) end this process as soon as the driver that started it ends.

    A worker waits on a queue whose pipe it holds both ends of, so a driver killed with
    ``kill -9`` would leave it waiting for ever, holding its memory.
    """
    import threading
    from multiprocessing.connection import wait as wait_for

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait_for([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _stop_pool(pool: ProcessPoolExecutor, pids: Any) -> None:
    """Drop queued tasks and end the workers now: a SIGTERM reaches only the driver, and an
    orderly shutdown would wait for the tasks in flight to finish. The workers are the
    children of this process whose pids they reported (``start_worker``)."""
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    reported = set()
    while not pids.empty():
        reported.add(pids.get())
    for process in multiprocessing.active_children():
        if process.pid in reported:
            process.terminate()
