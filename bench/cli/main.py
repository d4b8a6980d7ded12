"""The command line: the parser of every subcommand and the dispatch with its exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich_argparse import RichHelpFormatter

from bench.cli.browse import (
    KINDS,
    cells_command,
    datasets_command,
    list_command,
    report_command,
    rerun_command,
)
from bench.cli.export import add_export_arguments, add_table_arguments, export_command, table_command
from bench.cli.flags import add_execution_arguments, add_grid_arguments
from bench.cli.run import run_command
from bench.cli.study import add_study_arguments, study_command
from bench.cli.tune import add_tune_arguments, tune_command
from bench.core.errors import BenchError
from bench.datasets.standardize import INPUTS

DEBUG_HELP = "show tracebacks for errors (before or after the command)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fair benchmarks of embedding methods for automated visual inspection.",
        formatter_class=RichHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a grid of methods x schemes x seeds", formatter_class=RichHelpFormatter
    )
    add_grid_arguments(run)
    run.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default 3)")
    run.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    run.add_argument(
        "--target-ci",
        type=float,
        metavar="W",
        help="seeds on demand: after the start seeds (--seeds, default 3), add seeds in rounds to each "
        "method x scheme whose 95%% interval of --target-metric is wider than ±W points, until it is "
        "within ±W or has --max-seeds",
    )
    run.add_argument(
        "--target-diff-ci",
        type=float,
        metavar="W",
        help="the same for each scheme's paired difference against --against (same method, same seeds)",
    )
    run.add_argument(
        "--against", help="baseline scheme of --target-diff-ci (default uniform; must be in the grid)"
    )
    run.add_argument(
        "--target-metric",
        choices=("accuracy", "escape", "overkill"),
        help="metric of the seed targets, in %%: the headline rule's accuracy (default), escape or overkill rate",
    )
    run.add_argument(
        "--max-seeds", type=int, metavar="M", help="most seeds per group with a seed target (default 20)"
    )
    run.add_argument(
        "--params-from",
        metavar="DIR",
        help="use the tuned parameters of DIR/tuned.toml (from bench tune) for the methods it tuned",
    )
    add_execution_arguments(
        run,
        "RUN_DIR",
        resume_help="continue RUN_DIR, skipping finished cells; alone (--resume --out RUN_DIR) it "
        "continues RUN_DIR's own grid (RUN_DIR/config.toml); flags may change only the seeds",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="add this grid's cells to a directory that holds another grid (its config.toml is kept)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the resolved grid (TOML) and exit")

    tune = sub.add_parser(
        "tune",
        help="tune each method's hyperparameters on the validation split, the same trials for each",
        formatter_class=RichHelpFormatter,
    )
    add_tune_arguments(tune)

    study = sub.add_parser(
        "study",
        help="the whole protocol in one directory: tune every method, then the final runs and the report",
        formatter_class=RichHelpFormatter,
    )
    add_study_arguments(study)

    lst = sub.add_parser(
        "list", help="list methods, schemes, datasets and trunks", formatter_class=RichHelpFormatter
    )
    lst.add_argument("kind", nargs="?", help=f"only this kind: {', '.join(KINDS)}")

    rep = sub.add_parser(
        "report", help="rebuild RUN_DIR/report.md from its records", formatter_class=RichHelpFormatter
    )
    rep.add_argument("run_dir")

    datasets = sub.add_parser(
        "datasets",
        help="describe the built-in datasets, or one source a run accepts (--dataset)",
        formatter_class=RichHelpFormatter,
    )
    datasets.add_argument(
        "--inputs", choices=INPUTS, default="pixel", help="input standardization to describe (default pixel)"
    )
    datasets.add_argument(
        "--dataset",
        help="describe this source instead (any --dataset a run takes: a built-in name, hf:<name-or-path>,"
        " an image folder hf:/some/dir): classes with their split counts, good class, balance",
    )
    datasets.add_argument("--data-dir", help="with --dataset: where a file-based dataset lives")
    datasets.add_argument("--good", help="with --dataset: label code of the good class")
    datasets.add_argument(
        "--good-per-defect", type=float, help="with --dataset: reshape to this good:defect image ratio"
    )

    cells = sub.add_parser(
        "cells",
        help="list RUN_DIR's recorded cells with their hashes (for rerun)",
        formatter_class=RichHelpFormatter,
    )
    cells.add_argument("run_dir")

    table = sub.add_parser(
        "table",
        help="print RUN_DIR's records (one row per cell) or the report's summary as markdown, CSV, "
        "JSON lines or Parquet",
        formatter_class=RichHelpFormatter,
    )
    add_table_arguments(table)

    export = sub.add_parser(
        "export",
        help="export RUN_DIR's records (or a tuning's trials) as MLflow runs, one per cell",
        formatter_class=RichHelpFormatter,
    )
    add_export_arguments(export)

    again = sub.add_parser(
        "rerun", help="rerun one recorded cell and report any difference", formatter_class=RichHelpFormatter
    )
    again.add_argument("run_dir")

    from bench.profile import add_profile_arguments

    prof = sub.add_parser(
        "profile",
        help="time each method's fit against a bare loop and a per-item pipeline",
        formatter_class=RichHelpFormatter,
    )
    add_profile_arguments(prof)
    again.add_argument(
        "hash", help="the cell's hash (a unique prefix is enough; see: python -m bench cells RUN_DIR)"
    )
    again.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    again.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    for command in sub.choices.values():
        if "--debug" not in command._option_string_actions:
            # SUPPRESS: absent after the command, it leaves the value set before it alone.
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failed cells, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "run":
            return run_command(args, console)
        if args.command == "tune":
            return tune_command(args, console)
        if args.command == "study":
            return study_command(args, console, argv)
        if args.command == "list":
            return list_command(args, console)
        if args.command == "report":
            return report_command(Path(args.run_dir), console)
        if args.command == "datasets":
            return datasets_command(args, console)
        if args.command == "cells":
            return cells_command(Path(args.run_dir), console)
        if args.command == "table":
            return table_command(args)
        if args.command == "export":
            return export_command(args, console)
        if args.command == "rerun":
            return rerun_command(args, console)
        if args.command == "profile":
            from bench.profile import run_profile

            return run_profile(args, console)
    except BenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2
