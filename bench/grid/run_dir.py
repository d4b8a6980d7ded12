"""A run directory holds one grid: ``RUN_DIR/config.toml`` says which, and no other grid replaces it.

A run into a directory that already has a ``config.toml`` may only narrow or extend its seeds;
any other change to the grid's cells (methods, schemes, dataset, budget, hyperparameters...)
is refused unless forced, and even then ``config.toml`` keeps the original grid.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from bench.core.atomic import write_text_atomic
from bench.core.errors import BenchError
from bench.grid.config import GridConfig, load_written_grid

CONFIG_FILE = "config.toml"


def stored_grid(run_dir: Path) -> GridConfig | None:
    """The grid ``run_dir/config.toml`` holds, or None when there is none. A file written before
    a grid field existed reads as the grid its records were made with (``load_written_grid``).

    Raises:
        BenchError: the file exists but does not describe a grid.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    return GridConfig(**load_written_grid(path))


def grid_changes(stored: GridConfig, grid: GridConfig) -> list[str]:
    """What in ``grid`` changes the cells of ``stored``, seeds aside (empty when nothing does).

    Decided on cell hashes (so the order of methods or schemes does not count); the names
    returned are the differing fields, for the message.
    """
    seeds = tuple(dict.fromkeys(stored.seeds + grid.seeds))
    before = {c.hash for c in replace(stored, seeds=seeds).cells()}
    after = {c.hash for c in replace(grid, seeds=seeds).cells()}
    if before == after:
        return []
    changed = []
    for f in fields(GridConfig):
        if f.name == "seeds":
            continue
        old, new = getattr(stored, f.name), getattr(grid, f.name)
        if f.name in ("methods", "schemes"):
            old, new = set(old), set(new)
        if old != new:
            changed.append(f.name)
    return changed or ["cells"]


def check_same_grid(run_dir: Path, stored: GridConfig, grid: GridConfig, force: bool = False) -> list[str]:
    """The fields in which ``grid`` changes the cells of ``stored`` (``run_dir``'s grid).

    Raises:
        BenchError: they differ (seeds aside) and ``force`` is not set.
    """
    changed = grid_changes(stored, grid)
    if changed and not force:
        raise BenchError(
            f"{run_dir} holds another grid (its {CONFIG_FILE} differs in {', '.join(changed)}); "
            f"continue it with `python -m bench run --resume --out {run_dir}`, choose another --out, "
            "or pass --force to add these cells to it anyway"
        )
    return changed


def claim_grid(run_dir: Path, grid: GridConfig, force: bool = False) -> GridConfig:
    """Check ``grid`` against ``run_dir/config.toml`` and write the grid the directory holds now.

    No ``config.toml`` yet: it gets ``grid``. The same grid (seeds aside): it gets the union
    of both seed lists, so ``--resume`` later covers every seed run, and ``grid``'s seed target
    and parameter sources where it has them (neither is part of a cell). Another grid: a
    BenchError unless ``force``; forced, the file keeps the original grid.

    Returns:
        The grid ``config.toml`` now holds.
    """
    run_dir = Path(run_dir)
    stored = stored_grid(run_dir)
    if stored is None:
        target = grid
    elif check_same_grid(run_dir, stored, grid, force):
        target = stored
    else:
        target = replace(
            stored,
            seeds=tuple(dict.fromkeys(stored.seeds + grid.seeds)),
            seed_target=grid.seed_target or stored.seed_target,
            params_source={**stored.params_source, **grid.params_source},
        )
    if stored is None or target != stored:
        write_text_atomic(run_dir / CONFIG_FILE, target.to_toml())
    return target
