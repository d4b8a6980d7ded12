"""``bench run --params-from DIR``: run the parameters a tuning found on what they were tuned for.

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


def _shown(name: str, value: Any) -> str:
    if name == "split_seed" and value is None:
        return "per-seed test splits (older protocol)"
    return repr(value)


def check_tuned_for(grid: GridConfig, tuned: GridConfig, tune_dir: Path) -> None:
    """BenchError, naming the first field, unless ``grid`` trains and scores as ``tuned`` did."""
    pairs = {name: (getattr(tuned, name), getattr(grid, name)) for name in TUNED_FOR}
    pairs |= {f"budget {k}": (getattr(tuned.budget, k), getattr(grid.budget, k)) for k in TUNED_BUDGET}
    for name, (then, now) in pairs.items():
        if then != now:
            raise BenchError(
                f"--params-from {tune_dir}: tuned with {name} {_shown(name, then)}, this run has"
                f" {_shown(name, now)}; tuned parameters hold for the data, inputs, budget, test split"
                f" and scoring they were tuned on (leave {name} out to take the tuning's)"
            )
