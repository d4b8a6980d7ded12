"""The set-up's lines about the images: how they were standardized and augmented."""

from __future__ import annotations

from bench.grid.record import DatasetInfo
from bench.report.format import num

_INPUTS_TEXT = {
    "pixel": "each pixel standardized with the training split's per-pixel mean and std",
    "global": "every pixel standardized with the training split's global mean and std",
    "raw": "pixels as loaded, not standardized",
}


def augment_line(ds: DatasetInfo) -> list[str]:
    """The set-up's augmentation line: the training transforms and the test-time views; none
    where the records say no transform was applied."""
    if not ds.augment:
        return []
    views = (
        f"; **test-time views:** each output is the mean over {ds.test_views} flipped views of the image"
        if ds.test_views
        else "; **test-time views:** none (the images as loaded; records made before the views existed)"
    )
    return [f"- **Augmentation:** {', '.join(ds.augment)} on every method's training batches{views}"]


def inputs_line(inputs: str | None, ds: DatasetInfo) -> list[str]:
    """The set-up's inputs line; none when no record names its inputs (``study_inputs``)."""
    if not inputs:
        return []
    stats = ds.inputs
    floor = (
        f" (std floor {num(stats.std_floor, 4)}; {stats.floored or 0} raised, on the split described)"
        if stats is not None and stats.std_floor is not None
        else ""
    )
    return [f"- **Inputs:** `{inputs}`: {_INPUTS_TEXT.get(inputs, inputs)}{floor}"]


#: The headline table's rates: (name, column), each a ``HEADLINE_METRICS`` name.
