"""What a record says about the machine and software that produced it."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy
import torch

import bench

#: The ``env`` entries that say which machine computed a record: the same cell can round
#: differently on another CPU (kernel choice follows the CPU capability, the BLAS and the
#: thread count), which moves the per-seed numbers of a training run far from convergence.
FINGERPRINT_KEYS = ("cpu", "cpu_capability", "blas", "threads", "device", "gpu", "torch", "numpy")

#: The installed distribution (pyproject.toml's ``name``).
DISTRIBUTION = "bench-embeddings"
# This file is bench/core/environment.py: the checkout is three levels up. Not bench.__file__:
# run from a folder holding a checkout named ``bench``, ``import bench`` can find that folder
# as a namespace package (no __file__, no __version__) ahead of the editable install.
_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def harness_version() -> str:
    """The harness's version: ``bench.__version__``, else the installed distribution's."""
    version = getattr(bench, "__version__", None)
    if version:
        return version
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def git_commit() -> str | None:
    """The harness's git commit when it runs from a checkout, else None."""
    root = _ROOT
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _blas() -> str:
    """torch's BLAS (its build setting) and numpy's (name and version)."""
    settings = torch.__config__.show()
    torch_blas = next(
        (
            part.split("=", 1)[1]
            for part in settings.replace(",", " ").split()
            if part.startswith("BLAS_INFO=")
        ),
        "unknown",
    )
    try:
        info = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        numpy_blas = f"{info.get('name', 'unknown')} {info.get('version', '')}".strip()
    except Exception:  # older numpy, another layout: the fingerprint still says torch's
        numpy_blas = "unknown"
    return f"torch {torch_blas}, numpy {numpy_blas}"


@functools.cache
def _machine() -> dict:
    return {
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "blas": _blas(),
        "numpy": numpy.__version__,
    }


def fingerprint(env: dict | None) -> dict:
    """The machine fingerprint of a record's ``env`` (``None`` for what it does not record)."""
    env = env or {}
    return {key: env.get(key) for key in FINGERPRINT_KEYS}


def environment(device: str) -> dict:
    """Versions, device, threads and the machine (CPU model and capability, cores, BLAS), for
    the ``env`` field of a record."""
    import pytorch_metric_learning

    gpu = {}
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return {
        **_machine(),
        **gpu,
        "bench": harness_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "platform": f"{sys.platform}-{platform.machine()}",
        "device": device,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }
