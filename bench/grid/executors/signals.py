"""Ctrl-C belongs to the driver: worker processes never see it.

A terminal sends SIGINT to every process of the foreground group, workers included. A worker
that gets it while it starts up (importing torch, before any code of ours could ignore it) or
runs a task prints its own KeyboardInterrupt traceback, many lines of them for one keypress.
Workers are therefore started with SIGINT *blocked*: a process keeps the signal mask of the
thread that started it, across ``exec``, for its whole life, and a thread keeps the mask of
the thread that started it. The driver alone handles Ctrl-C and ends the workers itself.

``workers_ignore_sigint`` changes only the calling thread's mask, only for its block: the
processes and threads started inside (a pool's workers and its manager thread, a Dask
cluster's event loop thread, whose nannies later restart dead workers) keep SIGINT blocked.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def workers_ignore_sigint() -> Iterator[None]:
    """Processes and threads started inside this block, and theirs, never receive SIGINT.

    In the main thread the block also holds a Ctrl-C that arrives meanwhile, so that it cannot
    interrupt a worker half started: it is raised as KeyboardInterrupt when the block ends,
    not lost. Where signal masks do not exist, it does nothing.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    # The first thread to need Python's resource tracker starts it, then *unblocks* SIGINT in
    # itself (SIG_UNBLOCK, not the mask it had): start it now, so no thread started inside does.
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if threading.current_thread() is threading.main_thread():
            with _hold_sigint():
                yield
        else:
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def _hold_sigint() -> Iterator[None]:
    """(Main thread) a SIGINT inside the block runs as KeyboardInterrupt when it ends."""
    caught: list[int] = []
    # A SIGINT delivered to another thread still runs the Python handler in the main thread:
    # record it instead of raising mid-start.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
