"""One process per run directory: an OS-level advisory lock held for the whole run.

The lock is ``filelock``'s ``flock`` on ``RUN_DIR/.bench.lock``. The kernel drops it when its
holder ends, however it ends (``kill -9`` included), so a lock left by a killed run is simply
taken over by the next one. Who holds it (pid, host, start time) is written beside it in
``RUN_DIR/.bench.lock.json`` so a second run can name the holder in its error; that file is
removed on release and, when a killed run left it behind, overwritten by the next holder.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.core.atomic import write_text_atomic
from bench.core.errors import BenchError

LOCK_FILE = ".bench.lock"
HOLDER_FILE = ".bench.lock.json"

# Locks this process holds, by resolved directory: [FileLock, how many times taken].
_HELD: dict[Path, list] = {}


def read_holder(run_dir: Path) -> dict[str, Any] | None:
    """What ``RUN_DIR/.bench.lock.json`` says about the lock's holder, or None."""
    try:
        holder = json.loads((Path(run_dir) / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host, started 2025-01-01T10:00:00+00:00`` (or what is known of it)."""
    if not holder:
        return "holder unknown"
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started_at', '?')}"
    )


class RunLock:
    """Exclusive use of a run directory by this process, as a context manager.

    Taking the lock of a directory this process already holds nests (the outermost release
    frees it), so the CLI and ``run_grid`` can both take it.

    Attributes:
        stale: the holder file a run that ended without releasing the lock left behind
            (what it said), or None.

    Raises:
        BenchError: another process holds the lock (the message names it), or the directory
            cannot be created.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.stale: dict[str, Any] | None = None
        self._taken: list[Path] = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            key = self.run_dir.resolve()
        except OSError as exc:
            raise BenchError(
                f"output directory {str(self.run_dir)!r} cannot be created: {exc.strerror or exc}"
            ) from None
        if key in _HELD:  # this process holds it already: nest
            _HELD[key][1] += 1
            self._taken.append(key)
            return
        lock = FileLock(str(self.run_dir / LOCK_FILE))
        try:
            lock.acquire(blocking=False)
        except Timeout:
            raise BenchError(
                f"{self.run_dir} is in use by another bench run ({describe_holder(read_holder(self.run_dir))}); "
                "wait for it to end, or choose another --out"
            ) from None
        except OSError as exc:
            raise BenchError(f"cannot lock {str(self.run_dir)!r}: {exc.strerror or exc}") from None
        self.stale = read_holder(self.run_dir)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            write_text_atomic(self.run_dir / HOLDER_FILE, json.dumps(holder, sort_keys=True) + "\n")
        except OSError as exc:
            lock.release()
            raise BenchError(f"cannot write to {str(self.run_dir)!r}: {exc.strerror or exc}") from None
        _HELD[key] = [lock, 1]
        self._taken.append(key)

    def release(self) -> None:
        """Give back one acquisition; the last one of this process frees the directory."""
        if not self._taken:
            return
        key = self._taken.pop()
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1]:
            return
        del _HELD[key]
        holder = read_holder(self.run_dir)
        if holder and holder.get("pid") == os.getpid():
            (self.run_dir / HOLDER_FILE).unlink(missing_ok=True)
        entry[0].release()
