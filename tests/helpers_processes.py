"""Test-only: find a driver's pool workers (spawned processes) through /proc."""

from __future__ import annotations

from pathlib import Path


def pool_workers(pid: int) -> list[int]:
    """Pids of the spawned processes whose parent is ``pid`` (empty where /proc is missing)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found
