"""A reader for the IDX format of (Fashion-)MNIST, plain or gzipped, without copying per item."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError

# IDX type codes -> big-endian numpy dtypes (the format stores multi-byte values big-endian).
_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path: str | Path) -> bytes:
    """The decompressed content of an IDX file (gzip is detected from the content, not the name).

    Raises:
        BenchError: the file is missing, unreadable or a broken gzip stream.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except FileNotFoundError:
        raise BenchError(f"IDX file {path} does not exist; check the data directory") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BenchError(f"cannot read IDX file {path} ({exc}); re-download or reinstall it") from None


def parse_idx(buffer: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX content into an array of its declared shape and type (native byte order).

    Args:
        buffer: the whole decompressed file.
        name: what to call the file in errors.

    Raises:
        BenchError: a bad magic number, unknown type code, or a size that does not match the header.
    """
    if len(buffer) < 4 or buffer[0] != 0 or buffer[1] != 0:
        raise BenchError(f"{name} is not an IDX file (bad magic number); check the file")
    code, ndim = buffer[2], buffer[3]
    if code not in _DTYPES:
        raise BenchError(f"{name} has unknown IDX type code 0x{code:02x}; check the file")
    header_end = 4 + 4 * ndim
    if len(buffer) < header_end:
        raise BenchError(f"{name} is truncated inside its IDX header; re-download it")
    dims = tuple(int(d) for d in np.frombuffer(buffer, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buffer) - header_end != expected:
        raise BenchError(
            f"{name} holds {len(buffer) - header_end} data bytes but its header {dims} needs {expected}; "
            "re-download it"
        )
    data = np.frombuffer(buffer, dtype=dtype, offset=header_end).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels), plain or gzipped.

    Args:
        path: the file.

    Returns:
        A read-only numpy array of the shape and dtype the header declares.

    Raises:
        BenchError: missing, unreadable or malformed file.
    """
    return parse_idx(read_idx_bytes(path), name=str(path))
