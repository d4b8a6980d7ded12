"""The flags ``run`` and ``tune`` share: what a grid trains and scores, where the output goes and
where the work runs, and their checks. A flag added here reaches both commands."""

from __future__ import annotations

import argparse
import os

from bench.core.errors import BenchError
from bench.datasets.standardize import INPUTS
from bench.grid.executors import EXECUTORS, ExecutorOptions, choose_executor
from bench.sampling.budget import Budget
from bench.sampling.schemes import DEFAULT_SCHEMES

#: ``--quick``: a CI-sized preset (the whole ``--all`` grid in under a minute on 2 cores).
QUICK_BUDGET = Budget(steps=60, batch_images=96)
QUICK_DATASET_OPTIONS = {"inspection": {"n_per_defect": 30}}
QUICK_SEEDS = (0,)


def quick_help() -> str:
    """What ``--quick`` sets, for ``--help``."""
    data = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in opts.items())
        for name, opts in QUICK_DATASET_OPTIONS.items()
    )
    return (
        f"CI-sized preset: {QUICK_BUDGET.steps} steps of {QUICK_BUDGET.batch_images} images, "
        f"seed {', '.join(map(str, QUICK_SEEDS))} only, smaller data ({data}); "
        "flags and --config values given explicitly win"
    )


def _method_names() -> str:
    from methods import list_methods

    try:
        return ", ".join(list_methods())
    except BenchError:  # a broken plug-in must not take --help down with it
        return "see python -m bench list methods"


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say what a grid trains and scores: data, methods, schemes, trunk, budget,
    metrics and a config file. Shared by ``run`` and ``tune``, so a flag added here reaches both."""
    from bench.evaluation.rules import RULES

    parser.add_argument(
        "--all",
        action="store_true",
        help="every method but the label-free baselines (run: with the default schemes: "
        + ", ".join(DEFAULT_SCHEMES)
        + ")",
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="add the label-free baselines (knn-distance, pca-gaussian: scored against the good "
        "training images only) to the methods",
    )
    parser.add_argument("--dataset", help="dataset name or hf:<name-or-path> (default: inspection)")
    parser.add_argument("--data-dir", help="where a file-based dataset lives (fashion-mnist)")
    parser.add_argument(
        "--good",
        help="label code of the good class (default: a class named good, ok, pass or 0, any case, "
        "else the first class, with a warning)",
    )
    parser.add_argument(
        "--good-per-defect", type=float, help="reshape the data to this good:defect image ratio"
    )
    parser.add_argument("--method", action="append", help=f"method (repeatable): {_method_names()}")
    parser.add_argument(
        "--scheme",
        action="append",
        help="balance scheme (repeatable): see python -m bench list schemes; good-xK for any K",
    )
    parser.add_argument("--trunk", help="shared trunk: mlp, cnn or resnet (default mlp)")
    parser.add_argument(
        "--inputs",
        choices=INPUTS,
        help="input standardization, statistics from the training split only: pixel (default; per-pixel "
        "mean and std), global (one mean and std) or raw (pixels as loaded)",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        help="chooses the test images, the same for every seed (default 0); the seeds choose the "
        "validation images among the others, the training draws and the initialisation",
    )
    parser.add_argument(
        "--augment",
        help="transforms applied to every method's training batches, comma-separated (hflip, vflip), "
        "or none (default: the dataset's own: hflip,vflip for elpv, none for the others)",
    )
    parser.add_argument("--steps", type=int, help=f"optimizer steps (default {Budget.steps})")
    parser.add_argument(
        "--batch-images", type=int, help=f"nominal images per step (default {Budget.batch_images})"
    )
    parser.add_argument(
        "--lr",
        type=float,
        help="Adam learning rate for every method (default: each method's own default_lr, chosen from"
        " the committed tunings, see docs/methods.md; a method's own `lr` in method_params overrides it; "
        "tune: the learning rate of each method's first, default-parameter trial)",
    )
    parser.add_argument(
        "--headline-rule",
        help=f"prediction rule for the headline metrics: {', '.join(RULES)} (default knn5)",
    )
    parser.add_argument("--cost-escape", type=float, help="cost of one escape (default 10)")
    parser.add_argument("--cost-overkill", type=float, help="cost of one overkill (default 1)")
    parser.add_argument(
        "--good-share",
        type=float,
        help="share of good parts in production, for the cost per 1000 parts "
        "(default: the test split's own mix)",
    )
    parser.add_argument(
        "--escape-budget",
        type=float,
        action="append",
        help="escape budget in %% of defective parts for the operating points (repeatable; default 1): "
        "the threshold keeping validation escapes within it is applied to the test split",
    )
    parser.add_argument("--quick", action="store_true", help=quick_help())
    parser.add_argument("--config", help="TOML grid file; flags override it")


def add_execution_arguments(
    parser: argparse.ArgumentParser,
    out_name: str,
    unit: str = "cells",
    resume_help: str | None = None,
    out_default: str = "results/<dataset>-<timestamp>",
) -> None:
    """Where the output goes and where the work runs (``--out``, ``--resume``, device, threads,
    executor, jobs, Dask address). Shared by ``run``, ``tune`` and ``study``."""
    parser.add_argument("--out", metavar=out_name, help=f"output directory (default {out_default})")
    parser.add_argument(
        "--resume", action="store_true", help=resume_help or f"continue {out_name}, keeping finished {unit}"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        help=f"torch threads per {unit[:-1]} (default 1: the models are small, and threads that spin-wait "
        "for a busy core slow training down many times over)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS.names(),
        help=f"where {unit} run: local (this process), process (a pool of --jobs workers) or "
        f"dask (default: dask with --address, else process when there are several {unit} and --jobs "
        "is over 1, else local)",
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
    choose_executor(args.executor, args.jobs, args.address, tasks=1)


def execution_options(args: argparse.Namespace, tasks: int) -> ExecutorOptions:
    """Where the work of a command runs, from its execution flags (checked: ``check_execution``),
    by the one rule of every command (``bench.grid.executors.choose_executor``).

    Args:
        args: the parsed flags.
        tasks: how many tasks the command has at most (cells, trials): one task runs locally.
    """
    return ExecutorOptions(
        kind=choose_executor(args.executor, args.jobs, args.address, tasks),
        device=args.device,
        threads=args.threads or 1,
        jobs=args.jobs,
        address=args.address,
    )


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise BenchError(f"unknown device {device!r}; use cpu or cuda")
