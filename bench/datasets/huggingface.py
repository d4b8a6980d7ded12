"""``hf:<name-or-path>``: any Hugging Face ``datasets`` source as an ImageSet.

Accepted: a directory written by ``save_to_disk`` (a Dataset or a DatasetDict, whose splits are
concatenated: the harness makes its own split), an image-folder directory (one sub-directory per
class), a ``.parquet`` file or a directory of them, or a hub name (needs a network; remote code
is never run). Images may be PIL images or arrays (2-D, 3-D with channels, or flat vectors with
``image_shape``); RGB is converted to grayscale, integers are scaled to [0, 1]. Labels may be
integers, a ClassLabel (its names become the codes) or strings; codes are sorted numerically
when all are numbers.

A local source is decoded once per machine and options: its images, labels and codes go to the
disk cache (``bench.datasets.disk_cache``), keyed by its files' fingerprint, so a later load in
any process skips ``datasets`` altogether; while ``datasets`` reads a local source, its progress
bars and info logging are off. Hub names are left to the ``datasets`` library's own cache.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core.errors import BenchError
from bench.datasets.disk_cache import cached_arrays, pack_images, unpack_images
from bench.datasets.fingerprint import source_fingerprint
from bench.datasets.image_set import ImageSet
from bench.datasets.split import choose_good
from bench.datasets.validate import check_image_set

# ITU-R 601 luma, the weights PIL's convert("L") uses, so arrays and PIL images agree.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def load_hf(
    spec: str,
    image_column: str = "image",
    label_column: str = "label",
    good: str | None = None,
    image_shape: tuple[int, int] | str | None = None,
    split: str | None = None,
    cache_dir: str | None = None,
) -> ImageSet:
    """Load a Hugging Face dataset (path or hub name) as a grayscale ImageSet.

    Args:
        spec: a ``save_to_disk`` directory, an image-folder directory, a ``.parquet`` file or a
            directory of them, or a hub name such as ``user/name``.
        image_column: column holding the images.
        label_column: column holding the labels.
        good: the code of the good class; default: a class named ``good``, ``ok``, ``pass`` or
            ``0`` (any case, in that order), else the first class.
        image_shape: ``(h, w)`` or ``"HxW"`` for a column of flat vectors (e.g. 1,404 values).
        split: keep only this split of a DatasetDict (default: concatenate all splits).
        cache_dir: where ``datasets`` may cache parquet / image-folder / hub conversions.

    Returns:
        The ImageSet, named ``hf:<spec>``.

    Raises:
        BenchError: missing path, unknown column (the message lists the existing ones), images of
            mixed sizes or channels, NaN/inf pixels, a single class, an unknown good class.
    """
    shape = _parse_shape(image_shape, spec)
    path = Path(spec).expanduser()
    if looks_like_path(spec) and not path.exists():
        raise BenchError(f"hf:{spec}: no such file or directory; check the path")

    def decode() -> dict[str, np.ndarray]:
        table = _open(spec, split=split, cache_dir=cache_dir)
        columns = list(table.column_names)
        if label_column not in columns:
            _check_folder_classes(spec)
        for role, column in (("image", image_column), ("label", label_column)):
            if column not in columns:
                raise BenchError(
                    f"hf:{spec} has no {role} column {column!r}; columns are {', '.join(columns)} "
                    f"(pass {role}_column=...)"
                )
        if len(table) == 0:
            raise BenchError(f"hf:{spec} has no rows; check the path or the split")
        images = _images(table, image_column, spec, shape)
        labels, classes = _labels(table, label_column, spec)
        return {"images": pack_images(images.numpy()), "labels": labels.numpy(), "classes": np.array(classes)}

    # A local source is decoded once per machine and options (its fingerprint keys the entry); a
    # hub name has no fingerprint, and the datasets library keeps its own cache of it.
    identity = {
        "path": str(path.resolve()) if looks_like_path(spec) else spec,
        "image_column": image_column,
        "label_column": label_column,
        "image_shape": list(shape) if shape else None,
        "split": split,
    }
    arrays = cached_arrays("hf", identity, source_fingerprint(f"hf:{spec}"), decode)
    data = ImageSet(
        images=unpack_images(arrays["images"]),
        labels=torch.from_numpy(arrays["labels"].astype(np.int64, copy=False)),
        classes=tuple(str(c) for c in arrays["classes"].tolist()),
        good_index=None,
        name=f"hf:{spec}",
        source=f"Hugging Face datasets: {spec}",
    )
    return check_image_set(choose_good(data, good))


def _check_folder_classes(spec: str) -> None:
    """An image folder with fewer than two class sub-directories has no labels to learn from:
    say so (``datasets`` then simply leaves out its label column)."""
    path = Path(spec).expanduser()
    if not (looks_like_path(spec) and path.is_dir()):
        return
    if (
        (path / "dataset_dict.json").exists()
        or (path / "state.json").exists()
        or any(path.rglob("*.parquet"))
    ):
        return
    classes = sorted({f.parent.name for f in path.rglob("*") if f.is_file() and f.parent != path})
    if len(classes) < 2:
        found = f"one class, {classes[0]!r}" if classes else "no class sub-directory"
        raise BenchError(
            f"hf:{spec} is an image folder with {found}; a benchmark needs at least two classes, "
            f"one sub-directory of images each (e.g. {spec}/good/ and {spec}/dent/)"
        )


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` names a local file or directory rather than a hub dataset."""
    return spec.startswith(("/", "./", "../", "~")) or spec.endswith(".parquet") or Path(spec).exists()


def _open(spec: str, split: str | None, cache_dir: str | None) -> Any:
    """The rows as one ``datasets.Dataset`` (imported lazily: it is slow to import)."""
    import datasets

    path = Path(spec).expanduser()
    try:
        # A local source is converted, not downloaded: no progress bars or info lines for it.
        with _quiet_datasets(looks_like_path(spec)):
            loaded = _load(datasets, spec, path, cache_dir)
    except BenchError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the reason, in one line
        reason = " ".join(str(exc).split())[:300]
        raise BenchError(f"hf:{spec} could not be loaded ({type(exc).__name__}: {reason})") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is not None:
            if split not in loaded:
                raise BenchError(f"hf:{spec} has no split {split!r}; splits are {', '.join(names)}")
            return loaded[split]
        if not names:
            raise BenchError(f"hf:{spec} holds no splits; check the path")
        try:
            return datasets.concatenate_datasets([loaded[n] for n in names])
        except ValueError as exc:
            reason = " ".join(str(exc).split())[:200]
            raise BenchError(
                f"hf:{spec}: splits {names} cannot be joined ({reason}); pass split=..."
            ) from None
    return loaded


@contextmanager
def _quiet_datasets(quiet: bool) -> Iterator[None]:
    """Silence the datasets library's progress bars and its logging (errors aside) while the body
    runs; both are restored after."""
    if not quiet:
        yield
        return
    import datasets

    bars_off, verbosity = datasets.are_progress_bars_disabled(), datasets.logging.get_verbosity()
    with warnings.catch_warnings():
        # HF_DATASETS_DISABLE_PROGRESS_BARS=0 keeps them on, with a warning: that user wants them.
        warnings.simplefilter("ignore")
        datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if not bars_off:
            datasets.enable_progress_bars()


def _load(datasets: Any, spec: str, path: Path, cache_dir: str | None) -> Any:
    """What ``datasets`` loads for ``spec``: a Dataset or a DatasetDict."""
    if not looks_like_path(spec):
        return datasets.load_dataset(spec, cache_dir=cache_dir)
    if not path.exists():
        raise BenchError(f"hf:{spec}: no such file or directory; check the path")
    if path.is_file():
        if path.suffix != ".parquet":
            raise BenchError(f"hf:{spec} is a file but not .parquet; pass a directory or a .parquet file")
        return datasets.load_dataset("parquet", data_files=str(path), cache_dir=cache_dir)
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
    if parquet := sorted(str(p) for p in path.rglob("*.parquet")):
        return datasets.load_dataset("parquet", data_files=parquet, cache_dir=cache_dir)
    return datasets.load_dataset("imagefolder", data_dir=str(path), cache_dir=cache_dir)


def _parse_shape(image_shape: tuple[int, int] | str | None, spec: str) -> tuple[int, int] | None:
    if image_shape is None:
        return None
    try:
        if isinstance(image_shape, str):
            h, w = (int(v) for v in image_shape.lower().split("x"))
        else:
            h, w = (int(v) for v in image_shape)
    except (ValueError, TypeError):
        raise BenchError(f"hf:{spec}: image_shape {image_shape!r} is not 'HxW' or (h, w)") from None
    return h, w


def _images(table: Any, column: str, spec: str, shape: tuple[int, int] | None) -> torch.Tensor:
    """All images as one float32 (n, h, w) tensor, built with one np.stack."""
    import datasets

    feature = table.features[column]
    if isinstance(feature, datasets.Image):
        # Decoding is per image by nature (PNG/JPEG); everything after it is one stacked array.
        decoded = table[column]
        arrays, modes = [], set()
        for img in decoded:
            bands = len(img.getbands())
            modes.add(bands)
            if bands >= 3:
                img = img.convert("RGB")
            elif img.mode in ("1", "P", "LA"):
                img = img.convert("L")
            arrays.append(np.asarray(img))
        if len(modes) > 1:
            raise BenchError(
                f"hf:{spec}: images mix channel counts {sorted(modes)}; convert them all to one mode first"
            )
    else:
        arrays = [np.asarray(v) for v in table.with_format("numpy")[column]]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join(str(s) for s in sorted(shapes)[:4])
        raise BenchError(
            f"hf:{spec}: images have mixed sizes or channels ({listed}); resize them to one size first"
        )
    if any(a.dtype == object for a in arrays[:1]):
        raise BenchError(f"hf:{spec}: column {column!r} does not hold images or numeric arrays")
    stack = np.stack(arrays)
    return _to_gray(stack, spec, shape)


def _to_gray(stack: np.ndarray, spec: str, shape: tuple[int, int] | None) -> torch.Tensor:
    """(n, ...) numeric array -> float32 (n, h, w) in [0, 1] for integer input."""
    if not (np.issubdtype(stack.dtype, np.number) or stack.dtype == bool):
        raise BenchError(f"hf:{spec}: images are of type {stack.dtype}, not numeric")
    scale = None
    if stack.dtype == bool:
        stack = stack.astype(np.float32)
    elif np.issubdtype(stack.dtype, np.integer):
        # 8-bit types are 0..255 and 16-bit ones (PIL "I;16") 0..65535. Wider ints come from
        # lists stored as int64, so their range decides: 8-bit values unless a pixel is above 255.
        if stack.dtype.itemsize <= 2:
            scale = 255.0 if stack.dtype.itemsize == 1 else 65535.0
        else:
            top = int(stack.max()) if stack.size else 0
            if top > 65535 or (stack.size and int(stack.min()) < 0):
                raise BenchError(
                    f"hf:{spec}: integer pixels span beyond 0..65535; scale them to [0, 1] first"
                )
            scale = 255.0 if top <= 255 else 65535.0
    x = stack.astype(np.float32, copy=False)
    if x.ndim == 2:  # flat vectors, like the reference's 1,404 values
        size = x.shape[1]
        if shape is None:
            side = math.isqrt(size)
            if side * side != size:
                raise BenchError(
                    f"hf:{spec}: images are flat vectors of {size} values; pass image_shape='HxW'"
                )
            shape = (side, side)
        if shape[0] * shape[1] != size:
            raise BenchError(f"hf:{spec}: image_shape {shape} does not fit vectors of {size} values")
        x = x.reshape(len(x), *shape)
    elif x.ndim == 4:
        if x.shape[1] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
            x = np.moveaxis(x, 1, -1)  # channels-first arrays
        channels = x.shape[-1]
        if channels == 1:
            x = x[..., 0]
        elif channels in (3, 4):
            x = x[..., :3] @ _LUMA  # alpha is dropped: inspection images are opaque
        else:
            raise BenchError(f"hf:{spec}: images have {channels} channels; expected 1, 3 or 4")
    elif x.ndim != 3:
        raise BenchError(f"hf:{spec}: images have shape {stack.shape[1:]}; expected (h, w) or (h, w, c)")
    if scale is not None:
        x = x / np.float32(scale)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _labels(table: Any, column: str, spec: str) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Label indices and the sorted codes they point into."""
    import datasets

    feature = table.features[column]
    raw = np.asarray(table[column], dtype=object)
    if any(v is None for v in raw):
        raise BenchError(f"hf:{spec}: column {column!r} has missing labels; fill or drop those rows")
    if isinstance(feature, datasets.ClassLabel):
        declared = list(feature.names)
        codes = np.asarray([declared[int(v)] for v in raw], dtype=object)
    else:
        codes = np.asarray([_code(v, column, spec) for v in raw], dtype=object)
        declared = None
    present = set(codes.tolist())
    if all(_is_int(c) for c in present):
        classes = tuple(sorted(present, key=int))
    elif declared is not None:
        classes = tuple(c for c in declared if c in present)  # the ClassLabel's own order
    else:
        classes = tuple(sorted(present))
    lookup = {c: i for i, c in enumerate(classes)}
    labels = torch.as_tensor([lookup[c] for c in codes.tolist()], dtype=torch.int64)
    return labels, classes


def _code(value: Any, column: str, spec: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    raise BenchError(
        f"hf:{spec}: label {value!r} in column {column!r} is not an integer, class name or string"
    )


def _is_int(code: str) -> bool:
    try:
        int(code)
    except ValueError:
        return False
    return True
