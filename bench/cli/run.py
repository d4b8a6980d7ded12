"""``bench run``: resolve a grid from flags and files, check it, run it, report it."""

from __future__ import annotations

import argparse
import os
import signal
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.core.errors import BenchError, unknown_name
from bench.datasets.standardize import INPUTS
from bench.grid.adaptive import SeedTarget
from bench.grid.config import GridConfig, load_grid_toml
from bench.grid.executors import EXECUTORS, ExecutorOptions
from bench.sampling.budget import Budget
from bench.sampling.schemes import DEFAULT_SCHEMES

#: ``--quick``: a CI-sized preset (the whole ``--all`` grid in under a minute on 2 cores).
QUICK_BUDGET = Budget(steps=60, batch_images=96)
QUICK_DATASET_OPTIONS = {"inspection": {"n_per_defect": 30}}


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say what a grid trains and scores: data, methods, schemes, trunk, budget,
    metrics and a config file. Shared by ``run`` and ``tune``, so a flag added here reaches both."""
    parser.add_argument(
        "--all",
        action="store_true",
        help="every method (run: with the default schemes: " + ", ".join(DEFAULT_SCHEMES) + ")",
    )
    parser.add_argument("--dataset", help="dataset name or hf:<name-or-path> (default: inspection)")
    parser.add_argument("--data-dir", help="where a file-based dataset lives (fashion-mnist)")
    parser.add_argument("--good", help="label code of the good class (default: 0, else the first class)")
    parser.add_argument(
        "--good-per-defect", type=float, help="reshape the data to this good:defect image ratio"
    )
    parser.add_argument("--method", action="append", help="method (repeatable)")
    parser.add_argument("--scheme", action="append", help="balance scheme (repeatable; good-xK for any K)")
    parser.add_argument("--trunk", help="shared trunk: mlp or cnn (default mlp)")
    parser.add_argument(
        "--inputs",
        choices=INPUTS,
        help="input standardization, statistics from the training split only: pixel (default; per-pixel "
        "mean and std), global (one mean and std) or raw (pixels as loaded)",
    )
    parser.add_argument("--steps", type=int, help=f"optimizer steps (default {Budget.steps})")
    parser.add_argument(
        "--batch-images", type=int, help=f"nominal images per step (default {Budget.batch_images})"
    )
    parser.add_argument(
        "--lr",
        type=float,
        help=f"Adam learning rate (default {Budget.lr}; a method's own `lr` in method_params overrides it; "
        "tune: the learning rate of each method's first, default-parameter trial)",
    )
    parser.add_argument("--headline-rule", help="prediction rule for the headline metrics (default knn5)")
    parser.add_argument("--cost-escape", type=float, help="cost of one escape (default 10)")
    parser.add_argument("--cost-overkill", type=float, help="cost of one overkill (default 1)")
    parser.add_argument("--good-share", type=float, help="share of good parts in production, for the cost")
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized preset: tiny budget, one seed, small data"
    )
    parser.add_argument("--config", help="TOML grid file; flags override it")


def add_execution_arguments(parser: argparse.ArgumentParser, out_name: str, unit: str = "cells") -> None:
    """Where the output goes and where the work runs (``--out``, ``--resume``, device, threads,
    executor, jobs, Dask address). Shared by ``run`` and ``tune``."""
    parser.add_argument(
        "--out", metavar=out_name, help="output directory (default results/<dataset>-<timestamp>)"
    )
    parser.add_argument("--resume", action="store_true", help=f"continue {out_name}, keeping finished {unit}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        help=f"torch threads per {unit[:-1]} (default 1: the models are small, and threads that spin-wait "
        "for a busy core slow training down many times over)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        help=f"where {unit} run: local (this process), process (a pool of --jobs workers) or "
        f"dask (default: process when there are several {unit} and cores, else local)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="workers for --executor process or a local dask cluster (default: one per core)",
    )
    parser.add_argument(
        "--address",
        help="Dask scheduler, tcp://HOST:8786 (implies --executor dask; without it, "
        "dask starts a local cluster); GPU workers: dask worker ... --resources GPU=1",
    )


def check_execution(args: argparse.Namespace) -> None:
    """BenchError for an unusable device, thread or job count, or --address without dask."""
    check_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be at least 1 (got {args.threads})")
    if args.jobs < 1:
        raise BenchError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.address and args.executor not in (None, "dask"):
        raise BenchError(f"--address is for --executor dask (got --executor {args.executor})")


def grid_from_args(
    args: argparse.Namespace, default_schemes: tuple[str, ...] = DEFAULT_SCHEMES
) -> GridConfig:
    """The grid the flags and ``--config`` describe (flags override the file), checked."""
    from bench.sampling.schemes import check_options, check_scheme
    from methods import get_method_class, list_methods
    from methods.trunks import list_trunks

    kw: dict[str, Any] = load_grid_toml(Path(args.config)) if args.config else {}
    if not isinstance(kw.get("dataset_options", {}), dict):
        raise BenchError("dataset_options must be a table")
    if args.all:
        kw["methods"] = tuple(list_methods())
        kw.setdefault("schemes", default_schemes)
    if args.method:
        kw["methods"] = tuple(dict.fromkeys(args.method))
    if args.scheme:
        kw["schemes"] = tuple(dict.fromkeys(args.scheme))
    if not kw.get("methods"):
        raise BenchError("nothing to run: pass --all, or --method NAME (see: python -m bench list methods)")
    kw.setdefault("schemes", default_schemes)
    if getattr(args, "params_from", None):
        kw = _with_tuned_params(kw, Path(args.params_from))
    target = _seed_target(args, kw.get("seed_target"))
    kw["seed_target"] = target
    if getattr(args, "seed", None):
        kw["seeds"] = tuple(dict.fromkeys(args.seed))
    elif getattr(args, "seeds", None) is not None:
        if args.seeds < 1:
            raise BenchError(f"--seeds must be at least 1 (got {args.seeds})")
        kw["seeds"] = tuple(range(args.seeds))
    elif "seeds" not in kw:
        kw["seeds"] = (0,) if args.quick and target is None else (0, 1, 2)
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
    ):
        if getattr(args, flag) is not None:
            kw[key] = getattr(args, flag)
    dataset = kw.get("dataset", "inspection")
    options = dict(kw.get("dataset_options", {}))
    if args.quick:
        options = {**QUICK_DATASET_OPTIONS.get(dataset, {}), **options}
    for flag, key in (("data_dir", "data_dir"), ("good", "good"), ("good_per_defect", "good_per_defect")):
        if getattr(args, flag) is not None:
            options[key] = getattr(args, flag)
    kw["dataset_options"] = options
    budget = kw.get("budget", QUICK_BUDGET if args.quick else Budget())
    changes = {"steps": args.steps, "batch_images": args.batch_images, "lr": args.lr}
    kw["budget"] = replace(budget, **{k: v for k, v in changes.items() if v is not None})
    grid = GridConfig(**kw)
    if getattr(args, "params_from", None):
        _check_tuned_for(grid, Path(args.params_from))
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
    return grid


def _with_tuned_params(kw: dict[str, Any], tune_dir: Path) -> dict[str, Any]:
    """``kw`` with the tuned parameters of ``tune_dir/tuned.toml`` merged over ``method_params``
    (tuned values win) and their ``params_source``, for the methods of ``kw`` that were tuned."""
    from bench.tune.outputs import TUNED_FILE

    if not (tune_dir / TUNED_FILE).is_file():
        raise BenchError(
            f"--params-from {tune_dir}: no {TUNED_FILE} there (run `bench tune --out {tune_dir}` first)"
        )
    tuned = load_grid_toml(tune_dir / TUNED_FILE)
    params = {m: dict(p) for m, p in kw.get("method_params", {}).items()}
    sources = dict(kw.get("params_source", {}))
    for method in kw["methods"]:
        if method in tuned.get("method_params", {}):
            params[method] = {**params.get(method, {}), **tuned["method_params"][method]}
            sources[method] = tuned.get("params_source", {}).get(method, f"tuned in {tune_dir}")
    return {**kw, "method_params": params, "params_source": sources}


def _check_tuned_for(grid: GridConfig, tune_dir: Path) -> None:
    """BenchError unless ``grid`` trains on what ``tune_dir`` was tuned for: the same data,
    trunk and shared budget (steps, images per step, embedding size, checkpointing)."""
    from bench.tune.outputs import TUNED_FILE

    tuned = GridConfig(**load_grid_toml(tune_dir / TUNED_FILE))
    shared = ("steps", "batch_images", "embedding_size", "eval_every")
    pairs = {
        "dataset": (tuned.dataset, grid.dataset),
        "dataset_options": (tuned.dataset_options, grid.dataset_options),
        "trunk": (tuned.trunk, grid.trunk),
        **{f"budget {k}": (getattr(tuned.budget, k), getattr(grid.budget, k)) for k in shared},
    }
    for name, (then, now) in pairs.items():
        if then != now:
            raise BenchError(
                f"--params-from {tune_dir}: tuned with {name} {then!r}, this run has {now!r}; "
                "tuned parameters hold for the data and budget they were tuned on"
            )


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


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise BenchError(f"unknown device {device!r}; use cpu or cuda")


def check_data(grid: GridConfig) -> None:
    """Load and split the data once up front, so a bad dataset is one error, not N failed cells."""
    from bench.grid.runner import prepare_data
    from bench.sampling.schemes import make_plan

    train = prepare_data(grid.dataset, dict(grid.dataset_options), grid.seeds[0]).train
    for scheme in grid.schemes:
        make_plan(
            scheme,
            train.class_counts(),
            train.classes,
            train.good_index,
            **grid.scheme_options.get(scheme, {}),
        )


def run_command(args: argparse.Namespace, console: Console) -> int:
    from bench.grid.driver import run_adaptive_grid
    from bench.grid.store import RESULTS_FILE
    from bench.report import write_report

    grid = grid_from_args(args)
    check_execution(args)
    if args.dry_run:
        print(grid.to_toml(), end="")
        if grid.seed_target is None:
            print(f"# {len(grid.cells())} cell(s)")
        else:
            groups = len(grid.methods) * len(grid.schemes)
            print(
                f"# {len(grid.cells())} start cell(s); seeds are then added in rounds, up to"
                f" {grid.seed_target.max_seeds * groups} cell(s) ({grid.seed_target.max_seeds} seeds x {groups} groups)"
            )
        return 0
    check_data(grid)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out or f"results/{grid.dataset.replace(':', '_').replace('/', '_')}-{stamp}")
    if (run_dir / RESULTS_FILE).exists() and not args.resume:
        raise BenchError(
            f"{run_dir} already holds results; pass --resume to continue it, or choose another --out"
        )
    options = ExecutorOptions(
        kind=args.executor
        or ("dask" if args.address else "process" if args.jobs > 1 and len(grid.cells()) > 1 else "local"),
        device=args.device,
        threads=args.threads or 1,
        jobs=args.jobs,
        address=args.address,
    )
    # SIGTERM ends the run like Ctrl-C: the cell in flight is abandoned, finished ones are kept.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcome = run_adaptive_grid(
            grid, run_dir, options, resume=args.resume, on_round=_round_printer(console)
        )
    except KeyboardInterrupt:
        console.print(f"interrupted: finished cells are in {run_dir}; continue with --resume --out {run_dir}")
        _write_report_if_any(run_dir, console)
        return 130
    report = write_report(run_dir)
    _print_summary(run_dir, console)
    if outcome.skipped:
        console.print(f"skipped {outcome.skipped} finished cell(s) (--resume)")
    console.print(f"records: {run_dir / RESULTS_FILE}\nreport:  {report}")
    if outcome.failed:
        console.print(
            f"[red]{len(outcome.failed)} cell(s) failed[/red]; see the report's failed-cells section"
        )
        return 1
    return 0


def _write_report_if_any(run_dir: Path, console: Console) -> None:
    from bench.grid.store import read_records
    from bench.report import write_report

    if read_records(run_dir):
        console.print(f"report:  {write_report(run_dir)}")


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
    group stands against a seed target. A rich table on a terminal; markdown when piped, so no
    cell is cut to fit a width."""
    from bench.grid.store import latest_by_hash, read_records
    from bench.report.format import table as markdown_table
    from bench.report.summary import summary_tables

    for title, rows in summary_tables(list(latest_by_hash(read_records(run_dir)).values())):
        if not console.is_terminal:
            console.print(f"{title}\n\n{markdown_table(rows)}", highlight=False, soft_wrap=True)
            continue
        table = Table(title=title)
        for col in rows[0]:
            table.add_column(
                col, justify="left" if col in ("method", "scheme") or col.startswith("target") else "right"
            )
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
