"""The driver: open the tuning directory, hand out exactly the missing trials of every method to
the grid's executors (local, process-pool or Dask workers), and report each as it ends.

Each task runs one trial, and a method gets ``trials`` minus its counted trials as tasks, so
every method ends with the same number of trials however many workers run them (a method with
nothing to search, a label-free baseline, gets one: its defaults). Tasks are
interleaved across methods, so an interrupted tuning has advanced every method alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import optuna

from bench.core.errors import BenchError
from bench.grid.executors import ExecutorOptions, TaskFailure, create_executor
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
            study and ``resume`` is off; a trial's worker died twice or could not run it.
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
                TrialTask(config, method, slot, journal, options.device)
                for slot in range(counted, config.trials_for(method))
            ]
        )
    longest = max((len(t) for t in per_method), default=0)
    return [tasks[i] for i in range(longest) for tasks in per_method if i < len(tasks)]


def _run(tasks: list[TrialTask], options: ExecutorOptions) -> Iterator[dict[str, Any]]:
    """The trials as tasks on the executor ``options`` names (``bench.grid.executors``): the
    grid's own local, process-pool and Dask executors, with their worker settings, Ctrl-C
    handling and worker-death retry.

    On a local Dask cluster (and in worker processes) the workers open the journal on this
    machine; on the cluster at ``options.address`` they reach it through the scheduler
    (optuna-integration's ``DaskStorage``).

    Raises:
        BenchError: a trial's worker died twice, a worker could not run a trial, or the
            cluster dropped one.
    """
    if not tasks:
        return
    with create_executor(options) as executor:
        if options.kind == "dask" and options.address is not None:
            tasks = _through_scheduler(tasks, executor.client)
        with closing(executor.map(run_one_trial, tasks)) as outcomes:
            for task, outcome in outcomes:
                if isinstance(outcome, TaskFailure):
                    raise BenchError(
                        f"a {task.method} trial: {outcome.error}; finished trials are kept: continue with --resume"
                    )
                yield outcome


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
