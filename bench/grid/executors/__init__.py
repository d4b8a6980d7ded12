"""Executors: where tasks (grid cells, tuning trials) run.

- ``local``: in this process, one task after another (``local.py``).
- ``process``: a local pool of ``jobs`` spawned worker processes (``process.py``).
- ``dask``: a Dask distributed cluster, local or at ``--address`` (``dask.py``).

``base.py`` holds the contract every executor follows (``Executor``, ``ExecutorOptions``,
``TaskFailure``), the settings every worker process starts with, the registry ``EXECUTORS``
and ``choose_executor``, the one rule by which every command picks an executor from its
flags. Each executor module imports only the base (and ``signals.py``), never another one.
"""

from bench.grid.executors import dask, local, process  # noqa: F401 - each registers its executor
from bench.grid.executors.base import (
    EXECUTORS,
    WORKER_DEATHS_ALLOWED,
    Executor,
    ExecutorOptions,
    TaskFailure,
    WorkerSettings,
    choose_executor,
    create_executor,
)

__all__ = [
    "EXECUTORS",
    "WORKER_DEATHS_ALLOWED",
    "Executor",
    "ExecutorOptions",
    "TaskFailure",
    "WorkerSettings",
    "choose_executor",
    "create_executor",
]
