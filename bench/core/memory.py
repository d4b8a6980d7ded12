"""The peak memory one cell adds to its process, not the process's lifetime peak.

A worker runs many cells, so ``ru_maxrss`` (the process's peak so far) says nothing about any
one of them. ``PeakMemory`` instead resets Linux's resident-set high-water mark when the cell
starts (``/proc/self/clear_refs``, value 5, Linux >= 4.0) and reads it back at the end: the
kernel tracks every page the process touches, so no short spike is missed and nothing samples
in the background. Before the reset, ``malloc_trim`` hands the heap memory earlier cells freed
back to the system; otherwise a cell could reuse it without its resident size growing. Where
the reset is unavailable (not Linux, a restricted container) the figure is None, never a
lifetime number. On CUDA the device's own peak comes from torch's allocator statistics.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_high_water_mark() -> bool:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """``start()`` when the measured work begins; ``peak_mb()`` / ``cuda_peak_mb()`` at its end.

    Args:
        device: the torch device the work runs on; a ``cuda`` device also gets its allocator's peak.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._start_kib: int | None = None

    def start(self) -> PeakMemory:
        self._start_kib = _status_kib("VmRSS") if _reset_high_water_mark() else None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def peak_mb(self) -> float | None:
        """Most resident memory (MB) the process held above its level at ``start()``, or None."""
        peak = _status_kib("VmHWM")
        if self._start_kib is None or peak is None:
            return None
        return round(max(peak - self._start_kib, 0) / 1024.0, 1)

    def cuda_peak_mb(self) -> float | None:
        """Most memory (MB) torch's CUDA allocator held since ``start()``; None off CUDA."""
        if not self.device.startswith("cuda"):
            return None
        import torch

        return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
