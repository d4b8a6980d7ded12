"""The driver: open the tuning directory, hand out exactly the missing trials of every method to
local, process-pool or Dask workers, and report each as it ends.

Each task runs one trial, and a method gets ``trials`` minus its counted trials as tasks, so
every method ends with the same number of trials however many workers run them. Tasks are
interleaved across methods, so an interrupted tuning has advanced every method alike.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import optuna

from bench.core.errors import BenchError
from bench.grid.executors import ExecutorOptions, exit_with_parent
from bench.grid.signals import workers_ignore_sigint
from bench.tune.config import TuneConfig
from bench.tune.study import (
    STUDY_FILE,
    TrialTask,
    open_storage,
    prepare_studies,
    repair_torn_tail,
    run_one_trial,
    trial_counts,
)

LOCK_FILE = "tune.lock"

OnTrial = Callable[[dict[str, Any]], None]


def tune(config: TuneConfig, out: Path, options: ExecutorOptions, resume: bool, on_trial: OnTrial) -> None:
    """Run the missing trials of every method of ``config`` into ``out``.

    Raises:
        BenchError: ``out`` is in use by another tuning, holds another grid's study, or holds a
            study and ``resume`` is off; a worker process died.
        KeyboardInterrupt: the trials in flight are abandoned; finished ones are kept.
    """
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BenchError(f"{out} is in use by another bench tune (lock {out / LOCK_FILE})") from None
    try:
        journal = out / STUDY_FILE
        repair_torn_tail(journal)
        storage = open_storage(journal)
        prepare_studies(storage, config, resume, out)
        tasks = _tasks(storage, config, options, str(journal.resolve()))
        for summary in _run(tasks, options):
            on_trial(summary)
    finally:
        lock.release()


def _tasks(storage: Any, config: TuneConfig, options: ExecutorOptions, journal: str) -> list[TrialTask]:
    """The missing trials, interleaved across methods (first trial of each, then the second...)."""
    per_method = []
    for method in config.grid.methods:
        study = optuna.load_study(study_name=method, storage=storage)
        counted = trial_counts(study)["counted"]
        per_method.append(
            [
                TrialTask(config, method, slot, journal, options.device, options.threads)
                for slot in range(counted, config.trials)
            ]
        )
    longest = max((len(t) for t in per_method), default=0)
    return [tasks[i] for i in range(longest) for tasks in per_method if i < len(tasks)]


def _run(tasks: list[TrialTask], options: ExecutorOptions) -> Iterator[dict[str, Any]]:
    if not tasks:
        return
    if options.kind == "local":
        for task in tasks:
            yield run_one_trial(task)
    elif options.kind == "process":
        yield from _run_pool(tasks, options.jobs)
    else:
        yield from _run_dask(tasks, options)


def _run_pool(tasks: list[TrialTask], jobs: int) -> Iterator[dict[str, Any]]:
    """A spawn-context pool of ``jobs`` workers (each loads the dataset once) runs the tasks."""
    with workers_ignore_sigint():  # Ctrl-C is the driver's alone; the pool starts workers in submit
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
        )
        futures = [pool.submit(run_one_trial, task) for task in tasks]
    try:
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                raise BenchError(
                    "a worker process died; its trial is lost, finished trials are kept: continue with --resume"
                ) from None
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.terminate()
        raise
    pool.shutdown(wait=True)


def _run_dask(tasks: list[TrialTask], options: ExecutorOptions) -> Iterator[dict[str, Any]]:
    """The tasks on a Dask cluster: a local one (its workers open the journal on this machine),
    or the one at ``options.address``, whose workers reach the journal through the scheduler
    (optuna-integration's ``DaskStorage``)."""
    from distributed import as_completed as dask_completed

    from bench.grid.dask_executor import connect

    with ExitStack() as stack:
        client = connect(options, stack)
        if options.address is not None:
            tasks = _through_scheduler(tasks, client)
        futures = [client.submit(run_one_trial, task, pure=False) for task in tasks]
        try:
            for future in dask_completed(futures):
                yield future.result()
        except BaseException:
            client.cancel(futures)
            raise


def _through_scheduler(tasks: list[TrialTask], client: Any) -> list[TrialTask]:
    """The tasks with the journal wrapped in a ``DaskStorage`` held by the scheduler, for
    workers on other machines. The scheduler opens the journal at its absolute path: run it
    on the machine that holds the tuning directory (or give it a shared filesystem)."""
    from dataclasses import replace

    try:
        from optuna_integration import DaskStorage
    except ImportError:
        raise BenchError("--address needs optuna-integration: pip install optuna-integration") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = DaskStorage(storage=open_storage(tasks[0].storage), client=client)
    return [replace(task, storage=storage) for task in tasks]
