"""The command line: the parser of every subcommand and the dispatch with its exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich_argparse import RichHelpFormatter

from bench.cli.browse import datasets_command, list_command, report_command, rerun_command
from bench.cli.run import run_command
from bench.core.errors import BenchError
from bench.grid.executors import EXECUTORS
from bench.sampling.budget import Budget
from bench.sampling.schemes import DEFAULT_SCHEMES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fair benchmarks of embedding methods for automated visual inspection.",
        formatter_class=RichHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a grid of methods x schemes x seeds", formatter_class=RichHelpFormatter
    )
    run.add_argument(
        "--all",
        action="store_true",
        help="every method with the default schemes: " + ", ".join(DEFAULT_SCHEMES),
    )
    run.add_argument("--dataset", help="dataset name or hf:<name-or-path> (default: inspection)")
    run.add_argument("--data-dir", help="where a file-based dataset lives (fashion-mnist)")
    run.add_argument("--good", help="label code of the good class (default: 0, else the first class)")
    run.add_argument("--good-per-defect", type=float, help="reshape the data to this good:defect image ratio")
    run.add_argument("--method", action="append", help="method to run (repeatable)")
    run.add_argument("--scheme", action="append", help="balance scheme (repeatable; good-xK for any K)")
    run.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default 3)")
    run.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    run.add_argument("--trunk", help="shared trunk: mlp or cnn (default mlp)")
    run.add_argument("--steps", type=int, help=f"optimizer steps (default {Budget.steps})")
    run.add_argument(
        "--batch-images", type=int, help=f"nominal images per step (default {Budget.batch_images})"
    )
    run.add_argument("--lr", type=float, help=f"Adam learning rate (default {Budget.lr})")
    run.add_argument("--headline-rule", help="prediction rule for the headline metrics (default knn5)")
    run.add_argument("--cost-escape", type=float, help="cost of one escape (default 10)")
    run.add_argument("--cost-overkill", type=float, help="cost of one overkill (default 1)")
    run.add_argument("--good-share", type=float, help="share of good parts in production, for the cost")
    run.add_argument(
        "--quick", action="store_true", help="CI-sized preset: tiny budget, one seed, small data"
    )
    run.add_argument("--out", help="run directory (default results/<dataset>-<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue RUN_DIR, skipping finished cells")
    run.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    run.add_argument(
        "--threads",
        type=int,
        help="torch threads per cell (default 1: the models are small, and threads that spin-wait "
        "for a busy core slow training down many times over)",
    )
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="where cells run: local (this process, live step bar), process (a pool of --jobs workers) or "
        "dask (default: process when there are several cells and cores, else local)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="workers for --executor process or a local dask cluster (default: one per core)",
    )
    run.add_argument(
        "--address",
        help="Dask scheduler, tcp://HOST:8786 (implies --executor dask; without it, "
        "dask starts a local cluster); GPU workers: dask worker ... --resources GPU=1",
    )
    run.add_argument("--config", help="TOML grid file; flags override it")
    run.add_argument("--dry-run", action="store_true", help="print the resolved grid (TOML) and exit")

    lst = sub.add_parser(
        "list", help="list methods, schemes, datasets and trunks", formatter_class=RichHelpFormatter
    )
    lst.add_argument(
        "kind", nargs="?", choices=("methods", "schemes", "datasets", "trunks"), help="only this kind"
    )

    rep = sub.add_parser(
        "report", help="rebuild RUN_DIR/report.md from its records", formatter_class=RichHelpFormatter
    )
    rep.add_argument("run_dir")

    sub.add_parser("datasets", help="describe the built-in datasets", formatter_class=RichHelpFormatter)

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
    again.add_argument("hash", help="the cell's hash (a unique prefix is enough)")
    again.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    again.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failed cells, 2 bad input, 130 interrupted)."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "run":
            return run_command(args, console)
        if args.command == "list":
            return list_command(args, console)
        if args.command == "report":
            return report_command(Path(args.run_dir), console)
        if args.command == "datasets":
            return datasets_command(console)
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
