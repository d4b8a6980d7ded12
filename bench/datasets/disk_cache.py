"""Decoded images kept on disk, so a file-backed source decodes its files once per machine, not
once per process.

A worker process (process pool, Dask) loads its dataset on its first cell, and decoding thousands
of PNGs takes seconds every time; reading back one ``.npz`` of the decoded arrays takes a few
milliseconds. An entry is keyed by the source, its identity (resolved location and the options
that change the arrays) and the fingerprint of its files (``bench.datasets.fingerprint``): a
rewritten file or another option is another key, and writing it removes the entries the same
identity left under older fingerprints, so the cache holds one entry per source and options.

Where: ``$BENCH_CACHE_DIR`` (``off`` turns the cache off), else ``$XDG_CACHE_HOME/bench``, else
``~/.cache/bench``; entries live in its ``images/`` folder. Writes are atomic (``os.replace``), so
a reader sees a whole entry or none. When several processes miss at once, one decodes (a lock
per identity; the kernel drops it if its holder dies) and the others read its entry. A file that
cannot be read back whole, or holds another key, counts as a miss and is rebuilt; a cache folder
that cannot be written only costs the speed-up, never the load.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.atomic import write_bytes_atomic
from bench.core.canonical import canonical_json

ENV_VAR = "BENCH_CACHE_DIR"
#: Values of ``$BENCH_CACHE_DIR`` that turn the disk cache off.
OFF_VALUES = ("off", "none", "0")
#: Bumped when the layout of an entry changes: entries of another version are misses.
SCHEMA_VERSION = 1
#: Seconds a process waits for another one decoding the same source before decoding itself.
LOCK_TIMEOUT_S = 900.0
_KEY = "__key__"

Arrays = dict[str, np.ndarray]


def cache_root() -> Path | None:
    """The folder entries are written to, or None when ``$BENCH_CACHE_DIR`` turns the cache off."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser() / "images"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base).expanduser() / "bench" / "images"


def cached_arrays(
    source: str, identity: Mapping[str, Any], fingerprint: str | None, build: Callable[[], Arrays]
) -> Arrays:
    """The arrays ``build()`` returns, from the disk cache when an entry for this key exists.

    Args:
        source: the source's name (``elpv``, ``hf``): the start of the entry's file name.
        identity: what else the arrays depend on besides the files' content: the resolved
            location and the options that change them (JSON-serializable).
        fingerprint: the files' fingerprint; None (files not known, e.g. a hub name) skips the cache.
        build: decodes the source; called at most once, and not at all on a hit. A BenchError it
            raises propagates and nothing is written.

    Returns:
        Named numpy arrays (no object arrays: entries are read back without pickle).
    """
    root = cache_root()
    if root is None or fingerprint is None:
        return build()
    owner = canonical_json({"source": source, "identity": dict(identity)})
    key = canonical_json({"schema_version": SCHEMA_VERSION, "owner": owner, "fingerprint": fingerprint})
    prefix = f"{re.sub(r'[^a-z0-9]+', '-', source.lower()).strip('-') or 'source'}-{_digest(owner, 12)}"
    path = root / f"{prefix}-{_digest(key, 16)}.npz"
    hit = read_entry(path, key)
    if hit is not None:
        return hit
    with _exclusive(root / f"{prefix}.lock"):
        hit = read_entry(path, key)  # another process may have written it while this one waited
        if hit is not None:
            return hit
        arrays = build()
        _write_entry(path, key, arrays)
        for stale in root.glob(f"{prefix}-*.npz"):  # the same source under older fingerprints
            if stale != path:
                stale.unlink(missing_ok=True)
    return arrays


def read_entry(path: Path, key: str) -> Arrays | None:
    """The arrays of the entry at ``path`` if it is whole and holds ``key``, else None."""
    try:
        with np.load(path, allow_pickle=False) as entry:
            if _KEY not in entry.files or str(entry[_KEY]) != key:
                return None
            return {name: entry[name] for name in entry.files if name != _KEY}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, truncated, or not an entry: a miss, rebuilt by the caller


def _write_entry(path: Path, key: str, arrays: Arrays) -> None:
    try:
        write_bytes_atomic(path, lambda fh: np.savez(fh, **{_KEY: np.array(key)}, **arrays))
    except OSError:
        pass  # a read-only or full cache folder: this load keeps its arrays, the next decodes again


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold the lock at ``lock_path`` while the body runs; without it (no writable folder, or a
    holder that takes too long) the body runs anyway: entries are written atomically."""
    from filelock import FileLock

    lock = FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:  # filelock.Timeout is one too
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def pack_images(images: np.ndarray) -> np.ndarray:
    """``images`` (float32 in [0, 1]) as uint8 when that is lossless (8-bit sources), else unchanged:
    a quarter of the bytes to write and read back."""
    if images.dtype != np.float32 or not bool(np.isfinite(images).all()):
        return images
    scaled = np.rint(images * np.float32(255))
    if images.size and (scaled.min() < 0 or scaled.max() > 255):
        return images
    as_bytes = scaled.astype(np.uint8)
    return as_bytes if np.array_equal(unpack_images(as_bytes).numpy(), images) else images


def unpack_images(array: np.ndarray) -> torch.Tensor:
    """A stored image array as the float32 tensor the sources produce: uint8 ``v`` becomes
    ``v / 255`` (the same float32 division the loaders do, so a cached load equals a fresh one)."""
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
