"""``python -m bench``: run grids, list plug-ins, rebuild reports, describe datasets."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from bench.budget import Budget
from bench.config import CellConfig, GridConfig, load_grid_toml
from bench.errors import BenchError, unknown_name
from bench.executors import EXECUTORS, ExecutorOptions
from bench.schemes import DEFAULT_SCHEMES

#: ``--quick``: a CI-sized preset (the whole ``--all`` grid in under a minute on 2 cores).
QUICK_BUDGET = Budget(steps=60, batch_images=96)
QUICK_DATASET_OPTIONS = {"inspection": {"n_per_defect": 30}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fair benchmarks of embedding methods for automated visual inspection.",
        formatter_class=RichHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a grid of methods x schemes x seeds", formatter_class=RichHelpFormatter)
    run.add_argument("--all", action="store_true", help="every method with the default schemes: " + ", ".join(DEFAULT_SCHEMES))
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
    run.add_argument("--batch-images", type=int, help=f"nominal images per step (default {Budget.batch_images})")
    run.add_argument("--lr", type=float, help=f"Adam learning rate (default {Budget.lr})")
    run.add_argument("--headline-rule", help="prediction rule for the headline metrics (default knn5)")
    run.add_argument("--cost-escape", type=float, help="cost of one escape (default 10)")
    run.add_argument("--cost-overkill", type=float, help="cost of one overkill (default 1)")
    run.add_argument("--good-share", type=float, help="share of good parts in production, for the cost")
    run.add_argument("--quick", action="store_true", help="CI-sized preset: tiny budget, one seed, small data")
    run.add_argument("--out", help="run directory (default results/<dataset>-<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue RUN_DIR, skipping finished cells")
    run.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    run.add_argument("--threads", type=int, help="torch threads per cell (default 1: the models are small, and threads that spin-wait "
                     "for a busy core slow training down many times over)")
    run.add_argument(
        "--executor", choices=EXECUTORS,
        help="where cells run: local (this process, live step bar), process (a pool of --jobs workers) or "
        "dask (default: process when there are several cells and cores, else local)",
    )
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="workers for --executor process or a local dask cluster (default: one per core)")
    run.add_argument("--address", help="Dask scheduler, tcp://HOST:8786 (implies --executor dask; without it, "
                     "dask starts a local cluster); GPU workers: dask worker ... --resources GPU=1")
    run.add_argument("--config", help="TOML grid file; flags override it")
    run.add_argument("--dry-run", action="store_true", help="print the resolved grid (TOML) and exit")

    lst = sub.add_parser("list", help="list methods, schemes, datasets and trunks", formatter_class=RichHelpFormatter)
    lst.add_argument("kind", nargs="?", choices=("methods", "schemes", "datasets", "trunks"), help="only this kind")

    rep = sub.add_parser("report", help="rebuild RUN_DIR/report.md from its records", formatter_class=RichHelpFormatter)
    rep.add_argument("run_dir")

    sub.add_parser("datasets", help="describe the built-in datasets", formatter_class=RichHelpFormatter)

    again = sub.add_parser(
        "rerun", help="rerun one recorded cell and report any difference", formatter_class=RichHelpFormatter
    )
    again.add_argument("run_dir")

    from bench.profile import add_profile_arguments

    prof = sub.add_parser(
        "profile", help="time each method's fit against a bare loop and a per-item pipeline",
        formatter_class=RichHelpFormatter,
    )
    add_profile_arguments(prof)
    again.add_argument("hash", help="the cell's hash (a unique prefix is enough)")
    again.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    again.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser


def _grid_from_args(args: argparse.Namespace) -> GridConfig:
    from bench.schemes import check_scheme
    from methods import get_method_class, list_methods
    from methods.trunks import list_trunks

    kw: dict[str, Any] = load_grid_toml(Path(args.config)) if args.config else {}
    if not isinstance(kw.get("dataset_options", {}), dict):
        raise BenchError("dataset_options must be a table")
    if args.all:
        kw["methods"] = tuple(list_methods())
        kw.setdefault("schemes", DEFAULT_SCHEMES)
    if args.method:
        kw["methods"] = tuple(dict.fromkeys(args.method))
    if args.scheme:
        kw["schemes"] = tuple(dict.fromkeys(args.scheme))
    if not kw.get("methods"):
        raise BenchError("nothing to run: pass --all, or --method NAME (see: python -m bench list methods)")
    kw.setdefault("schemes", DEFAULT_SCHEMES)
    if args.seed:
        kw["seeds"] = tuple(dict.fromkeys(args.seed))
    elif args.seeds is not None:
        if args.seeds < 1:
            raise BenchError(f"--seeds must be at least 1 (got {args.seeds})")
        kw["seeds"] = tuple(range(args.seeds))
    elif "seeds" not in kw:
        kw["seeds"] = (0,) if args.quick else (0, 1, 2)
    for flag, key in (("dataset", "dataset"), ("trunk", "trunk"), ("headline_rule", "headline_rule"),
                      ("cost_escape", "cost_escape"), ("cost_overkill", "cost_overkill"), ("good_share", "good_share")):
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
    for name in grid.methods:
        get_method_class(name)
    for name in grid.schemes:
        check_scheme(name)
    if grid.trunk not in list_trunks():
        raise unknown_name("trunk", grid.trunk, list_trunks())
    from bench.rules import RULES

    if grid.headline_rule not in RULES:
        raise unknown_name("headline rule", grid.headline_rule, list(RULES))
    return grid


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise BenchError(f"unknown device {device!r}; use cpu or cuda")


def _check_data(grid: GridConfig) -> None:
    """Load and split the data once up front, so a bad dataset is one error, not N failed cells."""
    from bench.runner import prepare_data
    from bench.schemes import make_plan

    train = prepare_data(grid.dataset, dict(grid.dataset_options), grid.seeds[0]).train
    for scheme in grid.schemes:
        make_plan(scheme, train.class_counts(), train.classes, train.good_index, **grid.scheme_options.get(scheme, {}))


def _run(args: argparse.Namespace, console: Console) -> int:
    from bench.grid import run_grid
    from bench.report import write_report
    from bench.store import RESULTS_FILE

    grid = _grid_from_args(args)
    _check_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be at least 1 (got {args.threads})")
    if args.jobs < 1:
        raise BenchError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.address and args.executor not in (None, "dask"):
        raise BenchError(f"--address is for --executor dask (got --executor {args.executor})")
    if args.dry_run:
        print(grid.to_toml(), end="")
        print(f"# {len(grid.cells())} cell(s)")
        return 0
    _check_data(grid)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out or f"results/{grid.dataset.replace(':', '_').replace('/', '_')}-{stamp}")
    if (run_dir / RESULTS_FILE).exists() and not args.resume:
        raise BenchError(f"{run_dir} already holds results; pass --resume to continue it, or choose another --out")
    options = ExecutorOptions(
        kind=args.executor or ("dask" if args.address else "process" if args.jobs > 1 and len(grid.cells()) > 1 else "local"),
        device=args.device, threads=args.threads or 1, jobs=args.jobs, address=args.address
    )
    # SIGTERM ends the run like Ctrl-C: the cell in flight is abandoned, finished ones are kept.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcome = run_grid(grid, run_dir, options, resume=args.resume)
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
        console.print(f"[red]{len(outcome.failed)} cell(s) failed[/red]; see the report's failed-cells section")
        return 1
    return 0


def _write_report_if_any(run_dir: Path, console: Console) -> None:
    from bench.report import write_report
    from bench.store import read_records

    if read_records(run_dir):
        console.print(f"report:  {write_report(run_dir)}")


def _print_summary(run_dir: Path, console: Console) -> None:
    """Method x scheme table of headline accuracy and escape rate (mean over seeds)."""
    import pandas as pd

    from bench.store import latest_by_hash, read_records

    rows = [
        {
            "method": r["config"]["method"],
            "scheme": r["config"]["scheme"],
            "accuracy": r["metrics"].get("accuracy"),
            "escape": r["metrics"].get("escape_rate"),
        }
        for r in latest_by_hash(read_records(run_dir)).values()
        if r["status"] == "ok"
    ]
    if not rows:
        return
    frame = pd.DataFrame(rows).groupby(["method", "scheme"], sort=True).agg(["mean", "count"])
    table = Table(title="headline (mean over seeds)")
    for col in ("method", "scheme", "seeds", "accuracy", "escape rate"):
        table.add_column(col, justify="left" if col in ("method", "scheme") else "right")
    for (method, scheme), row in frame.iterrows():
        esc = row[("escape", "mean")]
        table.add_row(
            method, scheme, str(int(row[("accuracy", "count")])), f"{row[('accuracy', 'mean')]:.3f}",
            "n/a" if pd.isna(esc) else f"{esc:.3f}",
        )
    console.print(table)


def _about(obj: object) -> str:
    """The first line of a plug-in's docstring, for ``list``."""
    return ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]


def _list(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets.registry import DATASETS
    from bench.schemes import SCHEMES
    from methods import get_method_class, list_methods
    from methods.trunks import TRUNKS

    kinds = {
        "methods": [(m, _about(get_method_class(m))) for m in list_methods()],
        "schemes": [(s, _about(f)) for s, f in SCHEMES.items()]
        + [("good-xK", "The good class K times each defect class (any K > 0; good-x5 is the reference's fix).")],
        "datasets": [(d, _about(f)) for d, f in DATASETS.items()]
        + [("hf:<name-or-path>", "Any Hugging Face datasets source: hub name, save_to_disk folder, image folder, parquet.")],
        "trunks": [(t, _about(f)) for t, f in TRUNKS.items()],
    }
    for kind, items in kinds.items():
        if args.kind and kind != args.kind:
            continue
        table = Table(title=kind, show_header=False)
        table.add_column("name", no_wrap=True)
        table.add_column("about")
        for name, about in items:
            table.add_row(name, about)
        console.print(table)
    return 0


def _datasets(console: Console) -> int:
    from bench.datasets import describe_datasets

    rows = describe_datasets()
    table = Table(title="datasets")
    for col in ("name", "image size", "classes", "train", "val", "test", "balance", "source"):
        table.add_column(col)
    for r in rows:
        counts = r.get("counts") or {}
        table.add_row(
            r["name"], str(r.get("image_size", "")), str(r.get("classes", "")),
            *(str(counts.get(s, "")) for s in ("train", "val", "test")),
            str(r.get("balance", "")), str(r.get("source", "")),
        )
    console.print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failed cells, 2 bad input, 130 interrupted)."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "run":
            return _run(args, console)
        if args.command == "list":
            return _list(args, console)
        if args.command == "report":
            return _report(Path(args.run_dir), console)
        if args.command == "datasets":
            return _datasets(console)
        if args.command == "rerun":
            return _rerun(args, console)
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


def _rerun(args: argparse.Namespace, console: Console) -> int:
    from bench.rerun import rerun

    _check_device(args.device)
    record, fresh, diffs = rerun(Path(args.run_dir), args.hash, device=args.device, threads=args.threads)
    label = CellConfig.from_dict(record["config"]).label
    if not diffs:
        console.print(f"{record['hash']} ({label}): rerun matches the record ({fresh['status']})")
        return 0
    console.print(f"{record['hash']} ({label}): {len(diffs)} difference(s)")
    for line in diffs[:50]:
        console.print(f"  {line}", highlight=False)
    return 1


def _report(run_dir: Path, console: Console) -> int:
    from bench.report import write_report
    from bench.store import RESULTS_FILE, read_records

    if not (run_dir / RESULTS_FILE).exists():
        raise BenchError(f"{run_dir} holds no {RESULTS_FILE}; pass the directory a run wrote (--out)")
    if not read_records(run_dir):
        raise BenchError(f"{run_dir / RESULTS_FILE} holds no readable records")
    console.print(f"report: {write_report(run_dir)}")
    return 0
