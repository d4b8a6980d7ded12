"""Loops compiled by numba on first use and cached on disk.

The mined triplet's counting and gradient run a handful of loops over the batch's distance
matrix. Each compiled loop replaces several numpy or torch operations, whose dispatch cost
more than their arithmetic (more so inside a fit, where the model's weights have evicted the
caches between steps). The loops use float32 arithmetic operation for operation, without
fast-math flags, so they round exactly as the numpy and torch expressions they replace; sums
over a row stay numpy's or torch's own reductions.

Numba is imported, and a loop compiled (a second or two), only when first called; the machine
code is cached on disk (``__pycache__`` beside the module, numba's user-wide cache when that
is read-only, or ``NUMBA_CACHE_DIR``), so a new process loads it in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable

_COMPILED: dict[Callable, Callable] = {}


def compiled(loop: Callable) -> Callable:
    """``loop`` compiled by numba (``njit``, cached on disk, bounds unchecked)."""
    kernel = _COMPILED.get(loop)
    if kernel is None:
        import numba

        kernel = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")(loop)
        _COMPILED[loop] = kernel
    return kernel
