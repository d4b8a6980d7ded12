"""``bench run``: resolve a grid from flags and files, check it, run it, report it."""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.cli import dry_run, params_from
from bench.cli.flags import (
    QUICK_BUDGET,
    QUICK_DATASET_OPTIONS,
    QUICK_SEEDS,
    check_execution,
    execution_options,
)
from bench.core.errors import BenchError, unknown_name
from bench.datasets.augment import parse_augment
from bench.datasets.image_set import ImageSet
from bench.grid.adaptive import SeedTarget
from bench.grid.config import GridConfig, load_grid_toml, load_written_grid
from bench.grid.run_dir import CONFIG_FILE
from bench.sampling.budget import Budget
from bench.sampling.schemes import DEFAULT_SCHEMES


def grid_from_args(
    args: argparse.Namespace,
    default_schemes: tuple[str, ...] = DEFAULT_SCHEMES,
    run_dir_grid: bool = False,
    recommended: bool = True,
) -> GridConfig:
    """The grid the flags and ``--config`` describe (flags override the file), checked.

    With ``run_dir_grid`` (``bench run``), ``--resume --out DIR`` without ``--config`` starts
    from ``DIR/config.toml``: the grid the directory holds. And ``--all`` (the main job) on a
    dataset that ships recommended parameters (``bench.datasets.recommended``) runs them as an
    implicit ``--params-from``, except with ``--params-from``, ``--quick`` or a resumed directory;
    a method with parameters of its own in the ``--config`` file keeps them; where the run does
    not train and score as the recommended parameters were tuned (another trunk, budget...), a
    note says so and the methods run at their defaults (``recommended=False``).
    """
    from bench.sampling.schemes import check_options, check_scheme
    from methods import get_method_class, list_methods
    from methods.trunks import list_trunks

    kw: dict[str, Any] = {}
    from_dir = run_dir_grid and args.resume and args.out
    if run_dir_grid and args.resume and not args.out:
        raise BenchError("--resume needs --out DIR, the run directory to continue")
    if args.config:
        kw = load_grid_toml(Path(args.config))
    elif from_dir and (Path(args.out) / CONFIG_FILE).exists():
        kw = load_written_grid(Path(args.out) / CONFIG_FILE)  # --resume --out DIR continues DIR's own grid
    if not isinstance(kw.get("dataset_options", {}), dict):
        raise BenchError("dataset_options must be a table")
    tuned = None
    if getattr(args, "params_from", None):
        tuned = params_from.tuned_grid(Path(args.params_from))
        kw = params_from.inherit(kw, tuned)
    shipped = None
    resumed = from_dir and (Path(args.out) / CONFIG_FILE).exists()
    if recommended and run_dir_grid and args.all and tuned is None and not resumed and not args.quick:
        shipped = params_from.recommended_grid(args.dataset or kw.get("dataset", "inspection"))
        if shipped is not None:
            kw = params_from.inherit(kw, shipped[1])
    if args.all:
        kw["methods"] = tuple(list_methods(label_free=False))
        kw.setdefault("schemes", default_schemes)
    if args.method:
        kw["methods"] = tuple(dict.fromkeys(args.method))
    if getattr(args, "baselines", False):
        kw["methods"] = tuple(dict.fromkeys((*kw.get("methods", ()), *list_methods(label_free=True))))
    if args.scheme:
        kw["schemes"] = tuple(dict.fromkeys(args.scheme))
    if not kw.get("methods"):
        if from_dir:
            raise BenchError(
                f"{args.out} holds no {CONFIG_FILE} to resume; pass the grid (--all, or --method NAME)"
            )
        raise BenchError("nothing to run: pass --all, or --method NAME (see: python -m bench list methods)")
    kw.setdefault("schemes", default_schemes)
    if tuned is not None:
        kw = params_from.with_tuned_params(kw, tuned, Path(args.params_from))
    if shipped is not None:
        kw = params_from.with_recommended_params(kw, shipped[1], shipped[0])
    target = _seed_target(args, kw.get("seed_target"))
    kw["seed_target"] = target
    if getattr(args, "seed", None):
        kw["seeds"] = tuple(dict.fromkeys(args.seed))
    elif getattr(args, "seeds", None) is not None:
        if args.seeds < 1:
            raise BenchError(f"--seeds must be at least 1 (got {args.seeds})")
        kw["seeds"] = tuple(range(args.seeds))
    elif "seeds" not in kw:
        kw["seeds"] = QUICK_SEEDS if args.quick and target is None else (0, 1, 2)
    if target is not None and len(kw["seeds"]) < 2:
        raise BenchError(
            "a seed target needs at least 2 start seeds (an interval needs two); pass --seeds 2 or more"
        )
    for flag, key in (
        ("dataset", "dataset"),
        ("trunk", "trunk"),
        ("inputs", "inputs"),
        ("headline_rule", "headline_rule"),
        ("cost_escape", "cost_escape"),
        ("cost_overkill", "cost_overkill"),
        ("good_share", "good_share"),
        ("split_seed", "split_seed"),
    ):
        if getattr(args, flag) is not None:
            kw[key] = getattr(args, flag)
    if getattr(args, "augment", None) is not None:
        kw["augment"] = parse_augment(args.augment)
    dataset = kw.get("dataset", "inspection")
    options = dict(kw.get("dataset_options", {}))
    if args.quick and tuned is None:  # with --params-from, the tuning says which data
        options = {**QUICK_DATASET_OPTIONS.get(dataset, {}), **options}
    if getattr(args, "escape_budget", None):
        kw["escape_budgets"] = tuple(percent / 100.0 for percent in args.escape_budget)
    for flag, key in (("data_dir", "data_dir"), ("good", "good"), ("good_per_defect", "good_per_defect")):
        if getattr(args, flag) is not None:
            options[key] = getattr(args, flag)
    kw["dataset_options"] = options
    budget = kw.get("budget", QUICK_BUDGET if args.quick else Budget())
    changes = {"steps": args.steps, "batch_images": args.batch_images, "lr": args.lr}
    kw["budget"] = replace(budget, **{k: v for k, v in changes.items() if v is not None})
    grid = GridConfig(**kw)
    if tuned is not None:
        params_from.check_tuned_for(grid, tuned, Path(args.params_from))
    if shipped is not None and (mismatch := params_from.tuned_mismatch(grid, shipped[1])) is not None:
        name, then, now = mismatch
        defaults = grid_from_args(
            args, default_schemes, run_dir_grid, recommended=False
        )  # bad input: its error alone
        err(
            f"note: the recommended parameters for {grid.dataset} (from {shipped[0].tuned_in}) were tuned"
            f" with {name} {then}, this run has {now}: the methods run at their defaults"
        )
        return defaults
    for name in grid.methods:
        get_method_class(name)
    for name in grid.schemes:
        check_scheme(name)
    for name, options in sorted(grid.scheme_options.items()):
        try:
            check_options(name, options)
        except BenchError as exc:
            raise BenchError(f"scheme_options.{name}: {exc}") from None
    if grid.trunk not in list_trunks():
        raise unknown_name("trunk", grid.trunk, list_trunks())
    from bench.evaluation.rules import RULES

    if grid.headline_rule not in RULES:
        raise unknown_name("headline rule", grid.headline_rule, list(RULES))
    _check_method_params(grid)
    return grid


def _check_method_params(grid: GridConfig) -> None:
    """Every ``[method_params.NAME]`` names a known method and hyperparameters it takes, with
    values it accepts: a typo is one error now, not a failed record per cell."""
    from bench.sampling.budget import method_budget
    from methods import create_method, get_method_class

    for name, params in sorted(grid.method_params.items()):
        get_method_class(name)
        if "trunk" in params:
            raise BenchError(
                f"method_params.{name} sets trunk; the trunk is shared by the whole grid (--trunk, or trunk = ...)"
            )
    for name in grid.methods:
        _, params = method_budget(grid.budget, grid.method_params.get(name, {}))  # lr is the budget's
        create_method(name, trunk=grid.trunk, **params).check_params()


def _seed_target(args: argparse.Namespace, from_file: SeedTarget | None) -> SeedTarget | None:
    """The seed target from the flags over the config file's ``[seed_target]``; None without one."""
    flags = {
        "ci": getattr(args, "target_ci", None),
        "diff_ci": getattr(args, "target_diff_ci", None),
        "against": getattr(args, "against", None),
        "metric": getattr(args, "target_metric", None),
        "max_seeds": getattr(args, "max_seeds", None),
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if from_file is None and flags["ci"] is None and flags["diff_ci"] is None:
        if given:
            flag = {"against": "--against", "metric": "--target-metric", "max_seeds": "--max-seeds"}
            names = ", ".join(flag[k] for k in given)
            raise BenchError(
                f"{names} only apply with a seed target: add --target-ci W or --target-diff-ci W"
            )
        return None
    return replace(from_file, **given) if from_file is not None else SeedTarget(**given)


def check_data(grid: GridConfig) -> ImageSet:
    """Load and split the data once up front, so a bad dataset is one error, not N failed cells.

    Returns:
        The training split of the first seed.
    """
    from bench.grid.runner import prepare_data
    from bench.sampling.schemes import make_plan

    train = prepare_data(grid.dataset, dict(grid.dataset_options), grid.seeds[0], grid.split_seed).train
    for scheme in grid.schemes:
        make_plan(
            scheme,
            train.class_counts(),
            train.classes,
            train.good_index,
            **grid.scheme_options.get(scheme, {}),
        )
    return train


def _check_run_dir(run_dir: Path, grid: GridConfig, args: argparse.Namespace) -> None:
    """Refuse to write into a directory of finished work unless resuming, and into another grid's."""
    from bench.grid.run_dir import check_same_grid, stored_grid
    from bench.grid.store import RESULTS_FILE

    if (run_dir / RESULTS_FILE).exists() and not args.resume:
        raise BenchError(
            f"{run_dir} already holds results; continue it with `python -m bench run --resume --out {run_dir}`, "
            "or choose another --out"
        )
    stored = stored_grid(run_dir)
    if stored is not None:
        check_same_grid(run_dir, stored, grid, force=args.force)


def run_command(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets import good_class_note
    from bench.grid.driver import run_adaptive_grid
    from bench.grid.lock import RunLock, describe_holder
    from bench.grid.store import RESULTS_FILE
    from bench.report import write_report

    grid = grid_from_args(args, run_dir_grid=True)
    check_execution(args)
    if args.dry_run:
        if args.out and Path(args.out).is_dir():
            _check_run_dir(Path(args.out), grid, args)  # what the run would refuse, refused now
        lines = dry_run.data_lines(grid)  # the data loads, splits and fits every scheme
        print(grid.to_toml(), end="")
        print("\n".join(lines))
        if grid.seed_target is None:
            print(f"# {len(grid.cells())} cell(s)")
        else:
            groups = len(grid.methods) * len(grid.schemes)
            print(
                f"# {len(grid.cells())} start cell(s); seeds are then added in rounds, up to"
                f" {grid.seed_target.max_seeds * groups} cell(s) ({grid.seed_target.max_seeds} seeds x {groups} groups)"
            )
        return 0
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out or f"results/{grid.dataset.replace(':', '_').replace('/', '_')}-{stamp}")
    options = execution_options(args, tasks=len(grid.cells()))
    with ExitStack() as held:
        locks = []
        if run_dir.exists():  # in use, or another grid's: say so before loading any data
            locks.append(held.enter_context(RunLock(run_dir)))
            _check_run_dir(run_dir, grid, args)
        note, warn = good_class_note(check_data(grid), grid.dataset_options.get("good"))
        err(f"warning: {note}" if warn else note)
        if grid.split_seed is None:
            err(f"note: {OLDER_PROTOCOL}")
        locks.append(held.enter_context(RunLock(run_dir)))
        _check_run_dir(run_dir, grid, args)  # again: the directory may have appeared meanwhile
        for lock in locks:
            if lock.stale:
                err(
                    f"note: took over {run_dir} from a run that ended without releasing it ({describe_holder(lock.stale)})"
                )
        # SIGTERM ends the run like Ctrl-C: the cells in flight are abandoned, finished ones are kept.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            outcome = run_adaptive_grid(
                grid, run_dir, options, resume=args.resume, on_round=_round_printer(console), force=args.force
            )
        except KeyboardInterrupt:
            return _interrupted(run_dir)
        report = write_report(run_dir)
    _print_summary(run_dir, console)
    if outcome.skipped:
        console.print(f"skipped {outcome.skipped} finished cell(s) (--resume)")
    console.print(
        f"records: {run_dir / RESULTS_FILE}\nreport:  {report}\ncells:   python -m bench cells {run_dir}",
        highlight=False,
    )
    if outcome.failed:
        console.print(
            f"[red]{len(outcome.failed)} cell(s) failed[/red]; see the report's failed-cells section"
        )
        return 1
    return 0


#: What a run of the older protocol (an old run directory, a tuning made under it) is told.
OLDER_PROTOCOL = (
    "this grid's test split varies with the seed (the older protocol, kept so its cells stay the"
    " cells they were); a new grid fixes it with --split-seed (default 0)"
)


def err(line: str) -> None:
    """One line on stderr (run status: what the progress lines share)."""
    print(line, file=sys.stderr, flush=True)


def _interrupted(run_dir: Path) -> int:
    """Say, in one line, what an interrupted run kept and how to continue it; rebuild the report."""
    from bench.grid.store import RESULTS_FILE, latest_by_hash, read_records
    from bench.report import write_report

    kept = sum(r["status"] == "ok" for r in latest_by_hash(read_records(run_dir)).values())
    again = f"continue with: python -m bench run --resume --out {run_dir}"
    if not kept:
        err(f"interrupted before any cell finished: nothing was recorded in {run_dir}; {again}")
        return 130
    write_report(run_dir)
    err(f"interrupted: {kept} finished cell(s) kept in {run_dir / RESULTS_FILE} (report rebuilt); {again}")
    return 130


def _round_printer(console: Console):
    def on_round(number: int, added: dict[tuple[str, str], list[int]]) -> None:
        cells = sum(len(seeds) for seeds in added.values())
        detail = ", ".join(f"{m}/{s} +{len(seeds)}" for (m, s), seeds in added.items())
        console.print(
            f"seed round {number}: {len(added)} group(s) still wider than the target get {cells} more"
            f" seed(s) (recorded ones are skipped): {detail}",
            highlight=False,
        )

    return on_round


def _print_summary(run_dir: Path, console: Console) -> None:
    """Per study: method x scheme headline rates in % with their 95% intervals, and where each
    group stands against a seed target. A rich table on a terminal wide enough; markdown
    otherwise (piped, or a narrow terminal), so no cell is cut to fit a width."""
    from bench.cli.tables import print_table
    from bench.grid.store import latest_by_hash, read_records
    from bench.report.summary import summary_tables

    for title, rows in summary_tables(list(latest_by_hash(read_records(run_dir)).values())):
        columns = [
            (col, "left" if col in ("method", "scheme") or col.startswith("target") else "right")
            for col in rows[0]
        ]
        print_table(console, title, columns, [list(row.values()) for row in rows])
