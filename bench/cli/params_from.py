"""``bench run --params-from DIR``: run the parameters a tuning found on what they were tuned for.

The same holds for a dataset's recommended parameters (``bench.datasets.recommended``), which
``bench run --all`` takes as an implicit ``--params-from``: only where the run trains and scores
as their tuning did; otherwise the methods run at their defaults, with a note.

Tuned parameters hold for the data, inputs, trunk, budget, test split and scoring they were
tuned on. So the run takes each of these from the tuning (``DIR/tuned.toml``) unless the command
or its ``--config`` file sets it, and refuses (exit 2, naming the field) a value that differs
from the tuning's. Only the methods, schemes and seeds are the run's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.grid.config import GridConfig, load_written_grid

#: Grid fields a tuning fixes: what its trials trained on and how they were scored.
TUNED_FOR = (
    "dataset",
    "dataset_options",
    "inputs",
    "augment",
    "trunk",
    "split_seed",
    "headline_rule",
    "cost_escape",
    "cost_overkill",
    "good_share",
)
#: The shared budget a tuning fixes (a method's ``lr`` is its own; the budget's ``lr`` only sets
#: the methods the tuning did not tune).
TUNED_BUDGET = ("steps", "batch_images", "embedding_size", "eval_every", "schedule", "weight_decay")


def tuned_grid(tune_dir: Path) -> GridConfig:
    """The grid of ``tune_dir/tuned.toml`` (a file written before a field existed reads as the
    tuning it was: ``load_written_grid``).

    Raises:
        BenchError: no ``tuned.toml`` there, or not a grid.
    """
    from bench.tune.outputs import TUNED_FILE

    if not (Path(tune_dir) / TUNED_FILE).is_file():
        raise BenchError(
            f"--params-from {tune_dir}: no {TUNED_FILE} there (run `bench tune --out {tune_dir}` first)"
        )
    return GridConfig(**load_written_grid(Path(tune_dir) / TUNED_FILE))


def inherit(kw: dict[str, Any], tuned: GridConfig) -> dict[str, Any]:
    """``kw`` (the ``--config`` file's grid, or a run directory's) with every field the tuning
    fixes that ``kw`` does not set taken from ``tuned``; flags are applied afterwards."""
    out = dict(kw)
    for key in TUNED_FOR:
        out.setdefault(key, getattr(tuned, key))
    out.setdefault("budget", tuned.budget)
    return out


def with_tuned_params(kw: dict[str, Any], tuned: GridConfig, tune_dir: Path) -> dict[str, Any]:
    """``kw`` with the tuned parameters merged over ``method_params`` (tuned values win) and
    their ``params_source``, for the methods of ``kw`` that were tuned."""
    params = {m: dict(p) for m, p in kw.get("method_params", {}).items()}
    sources = dict(kw.get("params_source", {}))
    for method in kw["methods"]:
        if method in tuned.method_params:
            params[method] = {**params.get(method, {}), **tuned.method_params[method]}
            sources[method] = tuned.params_source.get(method, f"tuned in {tune_dir}")
    return {**kw, "method_params": params, "params_source": sources}


def recommended_grid(dataset: str):
    """``(Recommended, its grid)`` for a dataset that ships recommended parameters, else None."""
    from bench.datasets.recommended import recommended_for

    rec = recommended_for(dataset)
    if rec is None:
        return None
    return rec, GridConfig(**load_written_grid(rec.path))


def with_recommended_params(kw: dict[str, Any], tuned: GridConfig, rec: Any) -> dict[str, Any]:
    """``kw`` with a dataset's recommended parameters for each of its methods that has none of
    its own in ``method_params`` (a method's own parameters win over the recommended ones), each
    stamped ``recommended for DATASET, from TUNING: trial ...``."""
    params = {m: dict(p) for m, p in kw.get("method_params", {}).items()}
    sources = dict(kw.get("params_source", {}))
    for method in kw["methods"]:
        if method in tuned.method_params and not params.get(method):
            params[method] = dict(tuned.method_params[method])
            sources[method] = rec.source_text(tuned.params_source.get(method))
    return {**kw, "method_params": params, "params_source": sources}


def tuned_mismatch(grid: GridConfig, tuned: GridConfig) -> tuple[str, str, str] | None:
    """``(field, tuned value, this run's value)`` of the first field (``TUNED_FOR``, then the
    ``TUNED_BUDGET`` ones as ``budget steps``...) where ``grid`` does not train and score as
    ``tuned`` did; None when it does."""
    pairs = {name: (getattr(tuned, name), getattr(grid, name)) for name in TUNED_FOR}
    pairs |= {f"budget {k}": (getattr(tuned.budget, k), getattr(grid.budget, k)) for k in TUNED_BUDGET}
    for name, (then, now) in pairs.items():
        if then != now:
            return name, _shown(name, then), _shown(name, now)
    return None


def _shown(name: str, value: Any) -> str:
    if name == "split_seed" and value is None:
        return "per-seed test splits (older protocol)"
    return repr(value)


def check_tuned_for(grid: GridConfig, tuned: GridConfig, tune_dir: Path) -> None:
    """BenchError, naming the first field, unless ``grid`` trains and scores as ``tuned`` did."""
    mismatch = tuned_mismatch(grid, tuned)
    if mismatch is not None:
        name, then, now = mismatch
        raise BenchError(
            f"--params-from {tune_dir}: tuned with {name} {then}, this run has {now}; tuned parameters"
            " hold for the data, inputs, budget, test split and scoring they were tuned on (leave"
            f" {name} out to take the tuning's)"
        )
