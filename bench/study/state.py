"""What a study is and how far it got: ``DIR/study.json``.

The file holds the study's settings (the flags it was started with, defaults resolved, so that
``--resume --out DIR`` alone continues the same study), the command of every session, and per
stage the sessions that worked on it with their wall time and how each ended. A stage's clock
writes the file every few seconds while it runs, so a session killed with ``kill -9`` still
counts (to its last write, at most ``HEARTBEAT_S`` short) and a resumed study sums its stages
over all sessions.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import __version__
from bench.core.atomic import write_text_atomic
from bench.core.errors import BenchError

STATE_FILE = "study.json"
SUMMARY_FILE = "study.md"
TUNE_DIR = "tune"
FINAL_DIR = "final"
#: The stages in their order, each with the subdirectory it writes.
STAGES = {"tune": TUNE_DIR, "final": FINAL_DIR}
SCHEMA_VERSION = 1
#: Seconds between two writes of a running stage's wall time.
HEARTBEAT_S = 5.0

#: How a stage's session ended: ``done`` (exit 0), ``failures`` (it ended, some trials or cells
#: failed), ``interrupted`` (Ctrl-C, SIGTERM), ``error`` (a bad input or a lost worker),
#: ``killed`` (it was still running when its process died: found so by the next session).
SESSION_ENDS = ("done", "failures", "interrupted", "error", "killed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StudyState:
    """The contents of ``DIR/study.json``; ``save`` writes it atomically.

    Attributes:
        directory: the study's directory.
        settings: the study's flags with their defaults resolved (what a resume reuses).
        sessions: one ``{"command", "started_at"}`` per command that worked on the study.
        stages: per stage name, its sessions: ``{"started_at", "wall_s", "status"}``.
    """

    directory: Path
    settings: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path) -> StudyState | None:
        """The state in ``directory``, or None when it holds no ``study.json``. Sessions left
        ``running`` belong to a process that died (the caller holds the study's lock): they are
        marked ``killed``.

        Raises:
            BenchError: the file is not a study's state.
        """
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(
                directory=Path(directory),
                settings=dict(data["settings"]),
                sessions=list(data.get("sessions", [])),
                stages={k: list(v) for k, v in data.get("stages", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BenchError(f"{path} is not a study's state ({exc})") from None
        for sessions in state.stages.values():
            for session in sessions:
                if session.get("status") == "running":
                    session["status"] = "killed"
        return state

    def save(self) -> None:
        with self._lock:
            data = {
                "schema_version": SCHEMA_VERSION,
                "bench_version": __version__,
                "settings": self.settings,
                "sessions": self.sessions,
                "stages": self.stages,
            }
            text = json.dumps(data, indent=1, sort_keys=True) + "\n"
            write_text_atomic(self.directory / STATE_FILE, text)

    def begin_session(self, command: str) -> None:
        """Record a command working on the study (the first one started it)."""
        self.sessions.append({"command": command, "started_at": _now()})
        self.save()

    def status(self, stage: str) -> str:
        """How the stage's last session ended (``running`` while one runs), or ``not started``."""
        sessions = self.stages.get(stage, [])
        return sessions[-1]["status"] if sessions else "not started"

    def done(self, stage: str) -> bool:
        """Whether the stage has ended with nothing left to do (its last session ended 0)."""
        return self.status(stage) == "done"

    def wall_s(self, stage: str) -> float:
        """The stage's wall time over all its sessions, in seconds."""
        return sum(float(s.get("wall_s", 0.0)) for s in self.stages.get(stage, []))


class StageClock:
    """Times one session of a stage, as a context manager, and keeps ``study.json`` current.

    On entry a session is added to the stage (status ``running``); a thread rewrites its wall
    time every ``every`` seconds; on exit the session gets its final time and status: what
    ``end`` set, else ``done`` without an exception, ``interrupted`` for a KeyboardInterrupt and
    ``error`` for any other.
    """

    def __init__(self, state: StudyState, stage: str, every: float = HEARTBEAT_S) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.state = state
        self.stage = stage
        self.every = every
        self._status: str | None = None
        self._stop = threading.Event()

    def end(self, status: str) -> None:
        """Say how the session ended (one of ``SESSION_ENDS``)."""
        if status not in SESSION_ENDS:
            raise ValueError(f"unknown end {status!r}")
        self._status = status

    def __enter__(self) -> StageClock:
        self._started = time.monotonic()
        self._session = {"started_at": _now(), "wall_s": 0.0, "status": "running"}
        self.state.stages.setdefault(self.stage, []).append(self._session)
        self.state.save()
        self._thread = threading.Thread(target=self._beat, name=f"study-{self.stage}-clock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._session["wall_s"] = round(time.monotonic() - self._started, 1)
            try:
                self.state.save()
            except OSError:  # a full disk stops the clock's writes, not the stage
                pass

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._status is None:
            failed = "interrupted" if exc_type is KeyboardInterrupt else "error"
            self._status = "done" if exc_type is None else failed
        self._session["wall_s"] = round(time.monotonic() - self._started, 1)
        self._session["status"] = self._status
        self.state.save()
