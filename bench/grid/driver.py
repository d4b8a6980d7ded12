"""The driver: resolve a grid, skip finished cells, run the rest on an executor, store each
record at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.grid.adaptive import next_counts, seed_sequence
from bench.grid.config import CellConfig, GridConfig
from bench.grid.executors import ExecutorOptions, TaskFailure, create_executor
from bench.grid.lock import RunLock
from bench.grid.progress import GridProgress
from bench.grid.run_dir import claim_grid
from bench.grid.runner import new_record, now, prepare_data, run_cell, same_weights_record
from bench.grid.store import ResultStore, latest_by_hash, parts_behind, read_records
from bench.sampling.schemes import same_weight_groups

OnStart = Callable[[CellConfig], None]
OnStep = Callable[[int, int], None]


@dataclass
class GridOutcome:
    """What a grid run did: records written now, cells skipped as already finished."""

    run_dir: Path
    total: int
    skipped: int
    records: list[dict[str, Any]] = field(default_factory=list)
    seed_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def run_cells(
    cells: list[CellConfig],
    options: ExecutorOptions,
    on_start: OnStart | None = None,
    on_step: OnStep | None = None,
) -> Iterator[tuple[CellConfig, dict[str, Any]]]:
    """Run ``cells`` (``run_cell`` as tasks) on the executor ``options`` names, yielding (cell,
    record) as each finishes. A cell whose task returned no record (its worker died twice, or
    could not run it) gets a failed record; ``on_start`` and ``on_step`` (the live step bar)
    reach only cells that run in this process.

    Raises:
        BenchError: an unknown executor, fewer than one job, an unreachable or lost Dask
            scheduler; records finished before were yielded already.
    """
    with create_executor(options) as executor:
        steps = {"on_step": on_step} if executor.in_process and on_step is not None else {}
        task = partial(run_cell, device=options.device, **steps)
        with closing(executor.map(task, cells, on_start)) as outcomes:
            for cell, outcome in outcomes:
                if isinstance(outcome, TaskFailure):
                    if outcome.reason == "lost":
                        raise BenchError(f"{cell.label}: {outcome.error}")
                    outcome = failed_record(cell, options.device, outcome)
                yield cell, outcome


def failed_record(cell: CellConfig, device: str, failure: TaskFailure) -> dict[str, Any]:
    """The failed record of a cell whose task returned none, shaped like ``run_cell``'s failed
    records. ``env`` describes the driver: the worker is gone."""
    from bench.core.environment import environment

    record = {
        **new_record(cell),
        "error": failure.error,
        "started_at": failure.started_at,
        "env": environment(device),
        "finished_at": now(),
    }
    if failure.traceback:
        record["traceback"] = failure.traceback
    return record


def run_grid(
    grid: GridConfig,
    run_dir: Path,
    options: ExecutorOptions | None = None,
    resume: bool = False,
    progress: GridProgress | None = None,
    cells: list[CellConfig] | None = None,
    record_extra: Mapping[str, Any] | None = None,
    force: bool = False,
) -> GridOutcome:
    """Run every cell of ``grid`` into ``run_dir``; with ``resume`` skip cells already ``ok``.

    The run holds ``run_dir``'s lock throughout (a second run into it is a BenchError naming
    this one) and records the grid in ``run_dir/config.toml`` (``claim_grid``: another grid
    there is a BenchError unless ``force``). Each record is appended (and fsynced) the moment
    its cell finishes; a KeyboardInterrupt abandons only the cells in flight. ``cells`` runs
    those cells of the grid instead of all of them; ``record_extra`` is merged into each
    record written.
    """
    with RunLock(run_dir):
        return _run_locked(
            grid, Path(run_dir), options or ExecutorOptions(), resume, progress, cells, record_extra, force
        )


def shared_schemes(grid: GridConfig) -> dict[str, str]:
    """Each scheme of ``grid`` that gives the same per-class weights on its training split as an
    earlier scheme of the grid (``bench.sampling.schemes.same_weight_groups``), mapped to the
    first scheme of its group, the one trained: ``{"good-x5": "natural"}`` on the inspection set.

    Training counts do not depend on the seed, so the first seed's split decides for every seed.
    Data that does not load, or a scheme that does not apply to it, shares nothing: each of its
    cells then fails in its own record, as it would have.
    """
    if len(grid.schemes) < 2:
        return {}
    try:
        train = prepare_data(grid.dataset, dict(grid.dataset_options), grid.seeds[0], grid.split_seed).train
        groups = same_weight_groups(grid.schemes, train.class_counts(), train.good_index, grid.scheme_options)
    except Exception:  # noqa: BLE001  (the cells report it, one record each)
        return {}
    return {scheme: group[0] for group in groups for scheme in group[1:]}


def _run_locked(grid, run_dir, options, resume, progress, cells, record_extra, force) -> GridOutcome:
    store = ResultStore(run_dir)
    claim_grid(run_dir, grid, force=force)
    cells = grid.cells() if cells is None else cells
    done = store.finished_hashes() if resume else set()
    todo = [c for c in cells if c.hash not in done]
    outcome = GridOutcome(Path(run_dir), total=len(cells), skipped=len(cells) - len(todo))
    # A cell whose scheme gives the weights of an earlier scheme is not trained: its record is
    # the trained cell's under its own name (``same_weights_record``), written beside it.
    trained_as = shared_schemes(grid) if todo else {}
    waiting: dict[str, list[CellConfig]] = defaultdict(list)  # trained cell's hash -> cells sharing it
    train = []
    for c in todo:
        if c.scheme in trained_as:
            waiting[grid.cell(c.method, trained_as[c.scheme], c.seed).hash].append(c)
        else:
            train.append(c)
    scheduled = {c.hash for c in train}
    stored = latest_by_hash(read_records(run_dir)) if waiting else {}
    ready = [h for h in waiting if h not in scheduled and stored.get(h, {}).get("status") == "ok"]
    # The trained cell of a shared one that is neither recorded nor scheduled runs too.
    train += [
        grid.cell(shared[0].method, trained_as[shared[0].scheme], shared[0].seed)
        for h, shared in waiting.items()
        if h not in scheduled and h not in ready
    ]
    progress = progress or GridProgress(len(train))

    def on_start(cell: CellConfig) -> None:
        progress.start_cell(cell.label, cell.budget.steps)

    def keep(cell: CellConfig, record: dict[str, Any]) -> None:
        if cell.method in grid.params_source:
            record["params_source"] = grid.params_source[cell.method]
        if record_extra:
            record = {**record, **record_extra}
        store.append(record)
        outcome.records.append(record)

    def share(trained: dict[str, Any], trained_hash: str) -> None:
        for cell in waiting.pop(trained_hash, []):
            keep(cell, same_weights_record(cell, trained))

    for h in ready:
        share(stored[h], h)
    with progress:
        for cell, record in run_cells(train, options, on_start, progress.step):
            keep(cell, record)
            progress.finish_cell(cell.label, record)
            share(record, cell.hash)
    return outcome


def run_adaptive_grid(
    grid: GridConfig,
    run_dir: Path,
    options: ExecutorOptions | None = None,
    resume: bool = False,
    on_round: Callable[[int, dict[tuple[str, str], list[int]]], None] | None = None,
    force: bool = False,
) -> GridOutcome:
    """Run ``grid`` with its ``seed_target``: the start seeds, then rounds of added seeds.

    Each round asks ``bench.grid.adaptive.next_counts`` which groups need more seeds, from the
    records of the cells scheduled so far, and runs those cells as one batch. With ``resume`` the
    rounds are replayed from the records: finished cells are skipped and the same choices made.
    Records carry ``seed_target`` (as the rule applies it: ``min_seeds`` included) and their
    ``seed_round``. ``on_round(round, added seeds by group)`` is called before each added round.
    """
    target = grid.seed_target
    if target is None:
        return run_grid(grid, run_dir, options, resume, force=force)
    with RunLock(run_dir):  # held across the rounds
        return _run_rounds(grid, Path(run_dir), options, resume, on_round, force)


def _run_rounds(grid, run_dir, options, resume, on_round, force) -> GridOutcome:
    target = grid.seed_target
    groups = [(m, s) for m in grid.methods for s in grid.schemes]
    counts = {g: len(grid.seeds) for g in groups}
    outcome = GridOutcome(Path(run_dir), total=0, skipped=0)
    batch = grid.cells()
    number = 0
    while True:
        extra = {"seed_target": target.applied(), "seed_round": number}
        done = run_grid(grid, run_dir, options, resume, cells=batch, record_extra=extra, force=force)
        outcome.total += done.total
        outcome.skipped += done.skipped
        outcome.records += done.records
        # Every recorded seed of each group, later rounds' too (after an interruption):
        # next_counts reads only the seeds scheduled so far, which is what makes a replay exact.
        records = latest_by_hash(read_records(Path(run_dir)))
        values = {
            g: {
                s: _value(records.get(grid.cell(*g, s).hash), target.path)
                for s in seed_sequence(grid.seeds, target.max_seeds)
            }
            for g in groups
        }
        grown = _with_baselines(
            next_counts(counts, values, grid.seeds, target, _parts(records, grid, groups))
        )
        added = {g: seed_sequence(grid.seeds, grown[g])[counts[g] :] for g in groups if grown[g] > counts[g]}
        if not added:
            break
        number += 1
        if on_round is not None:
            on_round(number, added)
        # Seed-major, as grid.cells(): an interrupted round leaves whole seeds behind.
        batch = [grid.cell(m, s, seed) for (m, s), seeds in added.items() for seed in seeds]
        batch.sort(key=lambda c: (c.seed, groups.index((c.method, c.scheme))))
        counts = grown
    outcome.seed_counts = counts
    return outcome


def _with_baselines(counts: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """``counts`` with each label-free baseline's groups at the most seeds any trained group has.

    A baseline has none of the target's metrics (it predicts no class), so the rule alone would
    keep its start seeds; following the largest group instead pairs it with every trained method
    on every seed (its cells cost a fraction of a second). It depends only on the other groups'
    counts, so a resume replays it exactly."""
    from methods import get_method_class

    trained = [n for (m, _), n in counts.items() if not get_method_class(m).label_free]
    if not trained:
        return counts
    most = max(trained)
    return {g: max(n, most) if get_method_class(g[0]).label_free else n for g, n in counts.items()}


def _parts(
    records: dict[str, dict[str, Any]], grid: GridConfig, groups: list[tuple[str, str]]
) -> dict[tuple[str, str], float | None]:
    """The parts behind each group's target rate on one seed (the mean over its recorded seeds;
    None where no record says): a rate without spread gets its interval from these counts."""
    target = grid.seed_target
    out: dict[tuple[str, str], float | None] = {}
    for g in groups:
        cells = (records.get(grid.cell(*g, s).hash) for s in seed_sequence(grid.seeds, target.max_seeds))
        known = [p for p in (parts_behind(r, target.path) for r in cells if r is not None) if p is not None]
        out[g] = sum(known) / len(known) if known else None
    return out


def _value(record: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    """The target metric of a record in % (None for a missing or failed cell)."""
    if record is None or record.get("status") != "ok":
        return None
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return None if value is None else 100.0 * float(value)
