"""What an executor is, which one runs, and what every process that runs tasks is set to.

An executor runs one function over many items (grid cells, tuning trials) and yields each item
with its outcome as it finishes. The implementations sit beside this module, one per module,
each importing only this one (and the signal helper); ``EXECUTORS`` picks one by name.

A task never changes process-wide state: the ``WorkerSettings`` (torch's thread count,
deterministic kernels) are applied where a worker starts (a pool's initializer, the first task
of a Dask worker thread, the local executor around its tasks), and methods seed their own
random generators.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, TypeVar

from bench.core.errors import BenchError
from bench.core.registry import Registry

T = TypeVar("T")

#: Runs of one task whose worker died before the task is given up as failed.
WORKER_DEATHS_ALLOWED = 2

_TIMES = {1: "once", 2: "twice"}


def times(count: int) -> str:
    """``once``, ``twice``, ``3 times``: how often a worker died, as failure messages say it."""
    return _TIMES.get(count, f"{count} times")


@dataclass(frozen=True)
class WorkerSettings:
    """The process-wide settings of a process that runs tasks, applied once where it starts.

    Attributes:
        threads: torch's intra-op threads (1 by default: the models are small, and threads
            that spin-wait for a busy core slow training down many times over).
        deterministic: torch's deterministic kernels, where it has them (warn where not).
    """

    threads: int = 1
    deterministic: bool = True

    def apply(self) -> None:
        """Set this process (and this thread's OpenMP team) to the settings, for good."""
        import torch

        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The settings inside the block, what they were after it: for a process that is more
        than a worker (the CLI's own with the local executor, a test's)."""
        import torch

        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.apply()
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


@dataclass(frozen=True)
class ExecutorOptions:
    """How and where to run tasks; no part of a cell's identity.

    Attributes:
        kind: a registered executor (``choose_executor`` picks one from the flags).
        device: ``cpu`` or ``cuda``, for the tasks.
        threads: torch threads of each worker.
        jobs: workers of a process pool or of a Dask cluster started here.
        address: a running Dask scheduler to use instead of starting a cluster.
    """

    kind: str = "local"
    device: str = "cpu"
    threads: int = 1
    jobs: int = 2
    address: str | None = None

    @property
    def settings(self) -> WorkerSettings:
        """What every worker process is set to."""
        return WorkerSettings(threads=self.threads)


@dataclass(frozen=True)
class TaskFailure:
    """The outcome of a task that returned nothing.

    Attributes:
        reason: ``died`` (its worker died ``WORKER_DEATHS_ALLOWED`` times, or as often as the
            cluster allows), ``error`` (a worker could not run it: the task raised outside
            any handling of its own) or ``lost`` (the cluster dropped it: not its doing).
        error: one line, for a record or a message.
        started_at: when the task was first handed to a worker.
        traceback: the worker's traceback, where there is one.
    """

    reason: Literal["died", "error", "lost"]
    error: str
    started_at: str
    traceback: str | None = None


class Executor(abc.ABC):
    """Where tasks run. Use it as a context manager: it ends what it started (a pool, a
    cluster, a client) on exit, an interrupt included.

    A new executor subclasses this, implements ``map`` and registers itself with
    ``@EXECUTORS.register("name")``; ``--executor name`` then chooses it.

    Attributes:
        options: how and where to run.
        in_process: tasks run in this process, so callbacks (a live step bar) reach them, and
            an exception a task raises reaches the caller as it is.
    """

    in_process: ClassVar[bool] = False

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - a documented default: most executors start nothing to end
        """End what this executor started (nothing, by default)."""

    @abc.abstractmethod
    def map(
        self, fn: Callable[[T], Any], items: Sequence[T], on_start: Callable[[T], None] | None = None
    ) -> Iterator[tuple[T, Any]]:
        """Run ``fn(item)`` for every item; yield ``(item, result)`` as each finishes, in any order.

        The result is ``fn``'s return value, or a ``TaskFailure`` for a task that returned
        none: its worker died ``WORKER_DEATHS_ALLOWED`` times (a dead worker's task is run
        again, alone where that tells the culprit from bystanders), a worker failed to run it,
        or the cluster dropped it. Closing the iterator (an interrupt, a consumer that stops)
        abandons the tasks not yet finished and ends the workers running them.

        Args:
            fn: a module-level function (or a ``functools.partial`` of one) that every worker
                can import: it travels by reference.
            items: the tasks' arguments; small and picklable.
            on_start: called with an item as its task starts, where the executor can tell
                (the local executor).
        """


#: The executors by name; each implementation registers itself.
EXECUTORS: Registry[type[Executor]] = Registry("executor")


def create_executor(options: ExecutorOptions) -> Executor:
    """The executor ``options.kind`` names, unstarted.

    Raises:
        BenchError: an unknown executor (the message lists the known ones), or fewer than one job.
    """
    cls = EXECUTORS.get(options.kind)
    if options.jobs < 1:
        raise BenchError(f"--jobs must be at least 1 (got {options.jobs})")
    return cls(options)


def choose_executor(kind: str | None, jobs: int, address: str | None, tasks: int) -> str:
    """Where the work of a command runs: the one rule of ``run``, ``tune`` and every command
    with the execution flags.

    1. ``--executor`` given: that one (with ``--address``, only ``dask`` is allowed);
    2. else ``--address`` given: ``dask``, on that cluster;
    3. else more than one job and more than one task: ``process``, a pool of ``jobs`` workers;
    4. else ``local``: this process, one task after another.

    Args:
        kind: ``--executor``, or None.
        jobs: ``--jobs``.
        address: ``--address``, or None.
        tasks: how many tasks the command has at most (cells of the grid's start, trials).

    Raises:
        BenchError: an unknown executor, or ``--address`` with another executor than ``dask``.
    """
    if kind is not None:
        EXECUTORS.get(kind)
        if address and kind != "dask":
            raise BenchError(f"--address is for --executor dask (got --executor {kind})")
        return kind
    if address:
        return "dask"
    return "process" if jobs > 1 and tasks > 1 else "local"
