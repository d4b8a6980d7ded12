"""The ``local`` executor: every task in this process, one after another."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from bench.grid.executors.base import EXECUTORS, Executor

T = TypeVar("T")


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Tasks in this process, in order, with ``on_start`` before each; callbacks reach them (a
    live step bar), and an exception a task raises reaches the caller as it is.

    This process runs with the worker settings while tasks are pending (between them too) and
    gets its own back when the iteration ends.
    """

    in_process = True

    def map(
        self, fn: Callable[[T], Any], items: Sequence[T], on_start: Callable[[T], None] | None = None
    ) -> Iterator[tuple[T, Any]]:
        with self.options.settings.applied():
            for item in items:
                if on_start is not None:
                    on_start(item)
                yield item, fn(item)
