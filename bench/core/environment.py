"""What a record says about the machine and software that produced it."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

import torch

import bench


@functools.cache
def git_commit() -> str | None:
    """The harness's git commit when it runs from a checkout, else None."""
    root = Path(bench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str) -> dict:
    """Versions, device and threads, for the ``env`` field of a record."""
    import pytorch_metric_learning

    return {
        "bench": bench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "platform": f"{sys.platform}-{platform.machine()}",
        "device": device,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }
