"""``bench tune``: tune every method's hyperparameters on the validation split, with the same
number of trials for each, then write ``tuned.toml``, ``tuning.md`` and the plots."""

from __future__ import annotations

import argparse
import signal
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from bench.cli.flags import add_execution_arguments, add_grid_arguments, check_execution, execution_options
from bench.cli.run import check_data, grid_from_args
from bench.cli.tables import print_table
from bench.grid.config import GridConfig
from bench.tune.config import OBJECTIVES, TUNE_SCHEMES, TuneConfig, tune_seeds
from bench.tune.pruner import PRUNERS

PRUNER_HELP = (
    "what stops a trial early, from the middle of its first fit on: median (default; below the median "
    "of the complete trials' running scores at the same step), halving (successive halving: only the "
    "best third goes on at each rung of training steps) or hyperband (brackets of successive halving)"
)


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """``run``'s grid and execution flags plus the tuning's own."""
    add_grid_arguments(parser)
    parser.add_argument(
        "--trials", type=int, default=30, help="trials per method, the same for each (default 30)"
    )
    parser.add_argument(
        "--tune-seeds",
        type=int,
        default=2,
        help="training seeds per trial; its score is their mean (default 2; seeds 1000, 1001, ...)",
    )
    parser.add_argument(
        "--objective",
        choices=tuple(OBJECTIVES),
        default="accuracy",
        help="validation score to optimize: accuracy of the headline rule (default), cost (per 1,000 "
        "parts, minimized) or map_at_r",
    )
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    parser.add_argument("--pruner", choices=tuple(PRUNERS), default="median", help=PRUNER_HELP)
    add_execution_arguments(parser, "DIR", unit="trials")


def tune_command(args: argparse.Namespace, console: Console) -> int:
    from bench.tune.driver import tune

    grid = grid_from_args(args, default_schemes=TUNE_SCHEMES)
    check_execution(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"results/tune-{grid.dataset.replace(':', '_').replace('/', '_')}-{stamp}")
    if args.resume:
        grid = _as_stored(grid, out, args, console)
    config = TuneConfig(
        grid=grid,
        trials=args.trials,
        seeds=tune_seeds(args.tune_seeds),
        objective=args.objective,
        sampler_seed=args.sampler_seed,
        pruner=args.pruner,
    )
    check_data(grid)
    options = execution_options(args, tasks=sum(config.trials_for(m) for m in grid.methods))
    console.print(
        f"tuning {', '.join(grid.methods)}: {config.trials} trials each{_once(config)}, {config.fits_per_trial} fit(s) per trial,"
        f" {config.describe()}; into {out}"
    )

    def on_trial(summary: dict) -> None:
        value = "" if summary["value"] is None else f" {summary['value']:.4f}"
        note = f" ({summary['note']})" if summary["note"] and summary["state"] != "complete" else ""
        console.print(f"  {summary['method']} trial {summary['number']}: {summary['state']}{value}{note}")

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        tune(config, out, options, resume=args.resume, on_trial=on_trial)
    except KeyboardInterrupt:
        console.print(
            f"interrupted: finished trials are in {out}; continue with the same command and --resume"
        )
        _write_outputs(out, config, console)
        return 130
    failed = _write_outputs(out, config, console)
    return 1 if failed else 0


def _once(config: TuneConfig) -> str:
    """The methods with nothing to search, which run one trial (their defaults), as a clause."""
    once = [m for m in config.grid.methods if not config.searches(m) and config.trials > 1]
    return f" ({', '.join(once)}: 1, nothing to search)" if once else ""


def _as_stored(grid: GridConfig, out: Path, args: argparse.Namespace, console: Console) -> GridConfig:
    """``grid`` as the tuning in ``out`` was made, where it was made before a grid field existed
    and the command does not set that field: a study of per-seed test splits resumes as one."""
    from bench.tune.study import STUDY_FILE, stored_grid_settings

    settings = stored_grid_settings(out / STUDY_FILE)
    if settings is None or "split_seed" in settings or args.split_seed is not None:
        return grid
    console.print(
        f"note: {out} was tuned under per-seed test splits (the older protocol); resuming it as such"
    )
    return replace(grid, split_seed=None)


def _write_outputs(out: Path, config: TuneConfig, console: Console) -> int:
    """Write tuning.md, tuned.toml and the plots; return how many trials failed."""
    from bench.tune.outputs import edge_lines, summarize, write_report, write_tuned
    from bench.tune.plots import write_plots
    from bench.tune.study import STUDY_FILE, open_storage

    if not (out / STUDY_FILE).is_file():
        return 0
    summaries = summarize(open_storage(out / STUDY_FILE), config)
    plots = write_plots(out, summaries, config.direction, config.objective)
    report = write_report(out, config, summaries, plots)
    tuned = write_tuned(out, config, summaries)
    columns = [(c, "left" if c == "method" else "right") for c in ("method", "complete", "pruned", "failed")]
    columns += [("steps", "right"), ("default", "right"), ("best", "right")]
    rows = [
        [
            s.method,
            s.counts["complete"],
            s.counts["pruned"],
            s.counts["failed"],
            f"{s.steps:,}",
            None if s.default is None else f"{s.default.value:.4f}",
            None if s.best is None else f"{s.best.value:.4f}",
        ]
        for s in summaries
    ]
    print_table(console, f"tuning ({config.describe()})", columns, rows)
    for line in edge_lines(summaries):
        console.print(
            f"[yellow]{line}[/yellow]" if line.startswith("warning") else line,
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"report: {report}" + (f"\ntuned:  {tuned}" if tuned else "\nno complete trial yet: no tuned.toml")
    )
    failed = sum(s.counts["failed"] for s in summaries)
    if failed:
        console.print(
            f"[red]{failed} trial(s) failed[/red]; their errors are in {out / STUDY_FILE} (trial attribute `note`)"
        )
    return failed
