"""ELPV (Deitsch et al.): 2,624 electroluminescence images of solar cells, read from the installed
``elpv-dataset`` package (``pip install -e '.[elpv]'``).

Each image is a 300 x 300 8-bit grayscale cell with an expert's defect probability in
{0, 1/3, 2/3, 1} (1,508 / 295 / 106 / 715 images) and a cell type, ``mono`` (1,074) or ``poly``
(1,550). The images are licensed CC BY-NC-SA 4.0: they are read from the package where pip put
them and never copied into this repository; the disk cache (``bench.datasets.disk_cache``) keeps
only their resized pixels, under the user's cache folder.

The package's layout, which ``data_dir`` may also point at: a folder holding ``labels.csv`` (one
line per image: ``images/cell0001.png  1.0  mono``, whitespace-separated) and the images at the
paths it names.

Label schemes (option ``labels``); which probabilities make the good class is what an escape
(a defective cell passed as good) means:

- ``levels`` (default): ``good`` = p 0; ``defect-33``, ``defect-67``, ``defect-100`` = p 1/3,
  2/3, 1. An escape is any cell an expert gave a defect probability above 0, passed as good.
- ``binary``: the usual reading in the literature: ``good`` = p 0 or 1/3 (functional),
  ``defect`` = p 2/3 or 1 (defective). An escape is a cell of p 2/3 or 1 passed as good.
- ``levels-type``: ``good`` = p 0 of both cell types, merged: the harness scores escape and
  overkill against one good class, and a mono cell taken for a good poly one is no escape;
  the defects are split by level and type (``defect-33-mono`` ... ``defect-100-poly``), 7
  classes. An escape is as in ``levels``.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from bench.core.errors import BenchError, unknown_name
from bench.datasets.disk_cache import cached_arrays, unpack_images
from bench.datasets.fingerprint import files_fingerprint, register_source_files
from bench.datasets.image_set import ImageSet
from bench.datasets.registry import register_dataset
from bench.datasets.validate import check_image_set

PACKAGE = "elpv_dataset"
DISTRIBUTION = "elpv-dataset"
INSTALL_HINT = "pip install -e '.[elpv]'"
LICENCE = "CC BY-NC-SA 4.0"
LABELS_FILE = "labels.csv"
#: The expert's defect probabilities, as written in reports; a level is an index into this.
PROBABILITIES = ("0", "1/3", "2/3", "1")
CELL_TYPES = ("mono", "poly")
#: The code of each probability level in the ``levels`` scheme (the good class first).
LEVEL_CODES = ("good", "defect-33", "defect-67", "defect-100")
#: Each label scheme and which probabilities make its classes (shown by ``bench datasets``).
LABEL_SCHEMES: dict[str, str] = {
    "levels": "good = p 0; defect-33, defect-67, defect-100 = p 1/3, 2/3, 1",
    "binary": "good = p 0 or 1/3 (functional, as in the literature); defect = p 2/3 or 1",
    "levels-type": "good = p 0 (mono and poly merged); defects by p x cell type, defect-33-mono .. defect-100-poly",
}
DEFAULT_LABELS = "levels"
#: Default side of the square images; any side in ``SIZE_RANGE`` is accepted.
DEFAULT_SIZE = 64
SIZE_RANGE = (8, 300)
#: The resampling filter (antialiased): part of the cache key, so changing it re-decodes.
RESAMPLE = "lanczos"
#: The transforms that keep a cell's label, applied to every method's training batches: a cell
#: mirrored left-right or top-bottom is the same cell with the same cracks (``--augment`` overrides).
AUGMENT = ("hflip", "vflip")
#: 8-bit modes converted to grayscale as they are; any other mode (16-bit, float) is refused.
_EIGHT_BIT_MODES = ("L", "1", "P", "LA", "RGB", "RGBA")


@dataclass(frozen=True)
class ElpvTable:
    """What ``labels.csv`` says: one entry per image, in file order.

    Attributes:
        directory: the folder holding ``labels.csv``.
        paths: each image's path as written in ``labels.csv`` (relative to ``directory``).
        levels: int64 (n,), index into ``PROBABILITIES``.
        types: int64 (n,), index into ``CELL_TYPES``.
    """

    directory: Path
    paths: tuple[str, ...]
    levels: np.ndarray
    types: np.ndarray

    def files(self) -> list[Path]:
        return [self.directory / p for p in self.paths]


def find_elpv(data_dir: str | Path | None = None) -> Path:
    """The folder holding ``labels.csv``: ``data_dir`` when given, else the installed package's.

    Raises:
        BenchError: the package is not installed (the message says how to install it), or the
            folder holds no ``labels.csv``.
    """
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if not (directory / LABELS_FILE).is_file():
            raise BenchError(
                f"elpv: no {LABELS_FILE} in {directory}; pass the folder holding it and images/ "
                f"(the package's .../{PACKAGE}/data), or leave data_dir out to use the installed package"
            )
        return directory
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            f"the elpv dataset needs the {DISTRIBUTION} package, which is not installed: {INSTALL_HINT} "
            f"(or pip install {DISTRIBUTION})"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (directory / LABELS_FILE).is_file():
        raise BenchError(
            f"{DISTRIBUTION} is installed but {directory} holds no {LABELS_FILE}; reinstall it: "
            f"pip install --force-reinstall {DISTRIBUTION}"
        )
    return directory


def read_elpv_table(directory: Path) -> ElpvTable:
    """Parse ``directory/labels.csv`` (text only: no image is opened).

    Raises:
        BenchError: a line without three fields, a probability other than 0, 1/3, 2/3 or 1, a
            cell type other than mono or poly, or no line at all; the message names the line.
    """
    csv = directory / LABELS_FILE
    paths, levels, types = [], [], []
    for number, line in enumerate(csv.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"elpv: {csv} line {number}"
        if len(fields) != 3:
            raise BenchError(f"{where}: expected 'path probability type', got {line.strip()!r}")
        path, probability, cell_type = fields
        try:
            thirds = float(probability) * 3
        except ValueError:
            thirds = float("nan")
        level = round(thirds) if np.isfinite(thirds) else -1
        if not (0 <= level <= 3 and abs(thirds - level) < 1e-6):
            raise BenchError(
                f"{where}: defect probability {probability!r} is not one of {', '.join(PROBABILITIES)}"
            )
        if cell_type.lower() not in CELL_TYPES:
            raise BenchError(f"{where}: cell type {cell_type!r} is not {' or '.join(CELL_TYPES)}")
        paths.append(path)
        levels.append(level)
        types.append(CELL_TYPES.index(cell_type.lower()))
    if not paths:
        raise BenchError(f"elpv: {csv} lists no images")
    return ElpvTable(
        directory, tuple(paths), np.asarray(levels, dtype=np.int64), np.asarray(types, dtype=np.int64)
    )


def scheme_labels(scheme: str, levels: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices (int64) and class codes of label scheme ``scheme``; the good class is index 0.

    Raises:
        BenchError: an unknown scheme (the message lists the known ones).
    """
    if check_labels(scheme) == "levels":
        return levels.astype(np.int64), LEVEL_CODES
    if scheme == "binary":
        return (levels >= 2).astype(np.int64), ("good", "defect")
    codes = ("good", *(f"{level}-{kind}" for level in LEVEL_CODES[1:] for kind in CELL_TYPES))
    return np.where(levels == 0, 0, 1 + (levels - 1) * len(CELL_TYPES) + types), codes


def check_labels(scheme: object) -> str:
    """``scheme`` if it names a label scheme.

    Raises:
        BenchError: an unknown scheme (with a close match, and the known ones).
    """
    if not isinstance(scheme, str) or scheme not in LABEL_SCHEMES:
        raise BenchError(
            f"elpv: {unknown_name('label scheme', scheme, list(LABEL_SCHEMES))} (option labels=)"
        )
    return str(scheme)


def check_size(size: object) -> int:
    """``size`` as an int side in ``SIZE_RANGE`` (digits in a string are accepted).

    Raises:
        BenchError: anything else.
    """
    lo, hi = SIZE_RANGE
    value = int(size) if isinstance(size, int | str) and str(size).strip().isdigit() else None
    if isinstance(size, bool) or value is None or not lo <= value <= hi:
        raise BenchError(
            f"elpv: size={size!r} is not a side in pixels from {lo} to {hi} (default {DEFAULT_SIZE})"
        )
    return value


def decode_cells(directory: Path, paths: tuple[str, ...], size: int) -> np.ndarray:
    """The images at ``paths`` (relative to ``directory``) resized to ``size`` x ``size``: uint8 (n, size, size).

    Decoding is per file by nature (PNG); a few threads share it (PIL releases the GIL).

    Raises:
        BenchError: an image that cannot be decoded, or is not 8-bit; the message names it.
    """
    out = np.empty((len(paths), size, size), dtype=np.uint8)

    def decode(i: int) -> None:
        out[i] = _decode_one(directory, paths[i], size)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(decode, range(len(paths))))
    return out


def _decode_one(directory: Path, path: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(directory / path) as img:
            img.load()
            mode = img.mode
            if mode not in _EIGHT_BIT_MODES:
                raise BenchError(
                    f"elpv: image {path} in {directory} has mode {mode}, not 8-bit grayscale; "
                    f"reinstall the package: pip install --force-reinstall {DISTRIBUTION}"
                )
            gray = img if mode == "L" else img.convert("L")
            return np.asarray(gray.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    except BenchError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        reason = " ".join(str(exc).split())[:200]
        raise BenchError(
            f"elpv: image {path} in {directory} could not be decoded ({type(exc).__name__}: {reason}); "
            f"reinstall the package: pip install --force-reinstall {DISTRIBUTION}"
        ) from None


@register_source_files("elpv")
def elpv_files(data_dir: str | Path | None = None, **_options: object) -> list[Path] | None:
    """``labels.csv`` and the images it lists that exist (or None when no ``labels.csv`` is found):
    what the fingerprint of ``elpv`` covers. Other options (``labels``, ``size``) read no other files."""
    try:
        table = read_elpv_table(find_elpv(data_dir))
    except BenchError:
        return None  # the loader raises the same error, with its message
    return [table.directory / LABELS_FILE, *(p for p in table.files() if p.is_file())]


def _source_text(directory: Path, scheme: str, from_package: bool) -> str:
    where = f"{DISTRIBUTION} {_version()} in {directory}" if from_package else f"{directory}"
    return f"ELPV ({LICENCE}), {where}; labels={scheme}: {LABEL_SCHEMES[scheme]}"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


@register_dataset("elpv")
def load_elpv(
    labels: str = DEFAULT_LABELS, size: int = DEFAULT_SIZE, data_dir: str | Path | None = None
) -> ImageSet:
    """ELPV solar-cell EL images (2,624): labels=levels|binary|levels-type, size=64; pip install -e '.[elpv]'.

    The images are decoded once per machine and options (resized with a Lanczos filter to
    uint8) and kept in the disk cache (``bench.datasets.disk_cache``); a later load, in any
    process, reads them back in a fraction of a second.

    Args:
        labels: ``levels`` (4 classes, good = p 0), ``binary`` (good = p 0 or 1/3, defect = p 2/3
            or 1) or ``levels-type`` (good = p 0 of both types, defects by level and cell type).
        size: side of the square images, from 8 to 300 pixels (the originals are 300 x 300).
        data_dir: a folder with the package's layout (``labels.csv`` and the images it lists);
            default: the installed ``elpv-dataset`` package.

    Returns:
        The ImageSet named ``elpv``, pixels in [0, 1], good class ``good`` (index 0).

    Raises:
        BenchError: the package is not installed (``pip install -e '.[elpv]'``), an unknown label
            scheme or size, a malformed ``labels.csv``, a missing or undecodable image.
    """
    check_labels(labels)
    side = check_size(size)
    directory = find_elpv(data_dir)
    table = read_elpv_table(directory)
    files = table.files()
    missing = [p for p, f in zip(table.paths, files, strict=True) if not f.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BenchError(
            f"elpv: image {missing[0]}{more} listed in {directory / LABELS_FILE} is missing; "
            f"reinstall the package: pip install --force-reinstall {DISTRIBUTION}"
        )
    arrays = cached_arrays(
        "elpv",
        {"directory": str(directory.resolve()), "size": side, "resample": RESAMPLE},
        files_fingerprint([directory / LABELS_FILE, *files]),
        lambda: {"images": decode_cells(directory, table.paths, side)},
    )
    label_indices, classes = scheme_labels(labels, table.levels, table.types)
    return check_image_set(
        ImageSet(
            images=unpack_images(arrays["images"]),
            labels=torch.from_numpy(label_indices),
            classes=classes,
            good_index=0,
            name="elpv",
            source=_source_text(directory, labels, from_package=data_dir is None),
            augment=AUGMENT,
        )
    )
