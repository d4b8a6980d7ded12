"""Ctrl-C belongs to the driver: worker processes never see it.

A terminal sends SIGINT to every process of the foreground group, workers included. A worker
that gets it while it starts up (importing torch) or runs a cell prints its own
KeyboardInterrupt traceback, many lines of them for one keypress. Workers are therefore
started with SIGINT blocked: a process keeps the signal mask of the thread that started it,
across ``exec``, for its whole life. The driver alone handles Ctrl-C and stops the workers
(``terminate``) itself.
"""

from __future__ import annotations

import multiprocessing.util
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_spawnv_passfds = multiprocessing.util.spawnv_passfds
_depth = 0
_depth_lock = threading.Lock()


def _spawn_without_sigint(*args, **kwargs):
    # Every spawn-context process (a pool's worker, a Dask nanny's worker, the resource
    # tracker) is started here, from whichever thread starts it: block SIGINT in that thread
    # around the start, so the new process inherits it blocked; a SIGINT meanwhile goes to
    # another thread of the driver, or waits until the block ends.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return _spawnv_passfds(*args, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def workers_ignore_sigint() -> Iterator[None]:
    """Processes started (``spawn``) inside this block never receive SIGINT.

    In the main thread the block also holds a Ctrl-C that arrives meanwhile, so that it
    cannot interrupt a worker half started: it is raised as KeyboardInterrupt when the block
    ends, not lost. Where signal masks do not exist, it does nothing.
    """
    global _depth
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    with _depth_lock:
        _depth += 1
        multiprocessing.util.spawnv_passfds = _spawn_without_sigint
    try:
        if threading.current_thread() is threading.main_thread():
            with _hold_sigint():
                yield
        else:
            yield
    finally:
        with _depth_lock:
            _depth -= 1
            if not _depth:
                multiprocessing.util.spawnv_passfds = _spawnv_passfds


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
