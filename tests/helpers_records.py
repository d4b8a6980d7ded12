"""Records with known values, hashed by the real CellConfig, for tests that check report numbers."""

from __future__ import annotations

from typing import Any

from bench.grid.config import CellConfig
from bench.sampling.budget import Budget

CLASSES = ("0", "11", "12")
GOOD_SHARE_OF_TEST = 0.5  # the test mix behind cost_per_1000["test_mix"]


def record(
    method: str,
    scheme: str,
    seed: int,
    accuracy: float,
    escape: float = 0.1,
    overkill: float = 0.05,
    *,
    params: dict | None = None,
    scheme_options: dict | None = None,
    dataset_options: dict | None = None,
    status: str = "ok",
    timing: dict | None = None,
    **config: Any,
) -> dict:
    """An ``ok`` record of one cell whose headline (and knn5) metrics are the given rates.

    ``config`` overrides other CellConfig fields (``trunk``, ``budget``, ``cost_escape``...).
    """
    cell = CellConfig(
        dataset=config.pop("dataset", "inspection"),
        method=method,
        scheme=scheme,
        seed=seed,
        params=tuple(sorted((params or {}).items())),
        scheme_options=tuple(sorted((scheme_options or {}).items())),
        dataset_options=tuple(sorted((dataset_options or {}).items())),
        budget=config.pop("budget", Budget(steps=100)),
        **config,
    )
    rec: dict[str, Any] = {"schema_version": 1, "hash": cell.hash, "config": cell.to_dict(), "status": status}
    if status != "ok":
        rec["error"] = "RuntimeError: deliberate"
        return rec
    metrics = {
        "accuracy": accuracy,
        "escape_rate": escape,
        "overkill_rate": overkill,
        "cost_per_1000": {
            "test_mix": 1000 * (0.5 * escape * cell.cost_escape + 0.5 * overkill * cell.cost_overkill),
            "production_mix": 1000 * (0.1 * escape * cell.cost_escape + 0.9 * overkill * cell.cost_overkill),
        },
    }
    rec.update(
        error=None,
        dataset={
            "name": cell.dataset,
            "classes": list(CLASSES),
            "good": "0",
            "image_shape": [4, 4],
            "counts": {"train": {"0": 10, "11": 5, "12": 5}},
        },
        metrics=metrics,
        metrics_by_rule={"knn5": metrics},
        val_metrics_by_rule={"knn5": {"accuracy": accuracy}},
        timing=timing
        or {"train_s": 1.0, "train_images_per_s": 100.0, "embed_images_per_s": 1000.0, "eval_s": 0.5},
        sampling={"anchor_counts": {"0": 10, "11": 5, "12": 5}, "tuples": 20},
    )
    return rec


def table_rows(markdown: str, heading: str, occurrence: int = 0) -> list[dict[str, str]]:
    """The rows of the first markdown table after the ``occurrence``-th line equal to ``heading``."""
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line == heading]
    assert len(starts) > occurrence, f"no {heading!r} (occurrence {occurrence}) in the report"
    i = starts[occurrence] + 1
    while not lines[i].startswith("|"):
        assert not lines[i].startswith("#"), f"no table under {heading!r}"
        i += 1
    header = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows
