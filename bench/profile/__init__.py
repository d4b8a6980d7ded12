"""``python -m bench profile``: how fast each method trains and how long evaluation takes.

Training (``bench.profile.training``): each method's real ``fit`` against a bare PyTorch loop and
per-item ``Dataset`` + ``DataLoader`` pipelines, interleaved in one process. Evaluation
(``--eval``, ``bench.profile.evaluation``): ``evaluate`` on 10,000 queries against 60,000
references next to its own distance computation; ``--growth`` times training and evaluation as
the dataset and the embedding size grow.
"""

from __future__ import annotations

import torch

from bench.profile.training import ROUNDS
from bench.sampling.budget import Budget


def add_profile_arguments(parser) -> None:
    """The ``profile`` subcommand's options."""
    parser.add_argument("--dataset", default="inspection", help="dataset to train on (default: inspection)")
    parser.add_argument("--trunk", default="mlp", help="shared trunk (default: mlp)")
    parser.add_argument("--steps", type=int, default=100, help="steps per timed fit (default: 100)")
    parser.add_argument(
        "--batch-images", type=int, default=None, help="images per step (default: the budget's)"
    )
    parser.add_argument("--method", action="append", help="method to time (repeatable; default: all)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (median taken)")
    parser.add_argument(
        "--eval", action="store_true", help="also time evaluate() on 10k queries x 60k references"
    )
    parser.add_argument(
        "--growth", action="store_true", help="time training and evaluation vs data and embedding size"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")


def run_profile(args, console) -> int:
    """Run ``python -m bench profile`` and print its tables (``bench.cli.tables``: whole in a pipe
    and on a narrow terminal); returns the exit code."""
    from bench.cli.tables import print_table
    from bench.core.errors import BenchError
    from bench.datasets import load_dataset, split_dataset
    from bench.profile.evaluation import profile_evaluation, profile_growth
    from bench.profile.training import profile_training
    from methods import list_methods

    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        raise BenchError("--steps, --rounds and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    methods = args.method or list_methods(label_free=False)  # the baselines do not train
    for name in methods:
        if name not in list_methods():
            raise BenchError(f"unknown method {name!r}; known methods: {', '.join(list_methods())}")
    train = split_dataset(load_dataset(args.dataset), seed=0).train
    batch = args.batch_images or Budget().batch_images
    console.print(
        f"training: {args.dataset} ({len(train)} train images), trunk {args.trunk}, {batch} images/step, "
        f"{args.steps} steps, {args.rounds} rounds, {torch.get_num_threads()} thread(s)",
        soft_wrap=True,
    )
    rows = profile_training(train, methods, args.trunk, args.steps, batch, args.rounds)
    columns = ("contender", "images/s", "vs bare loop", "vs per-item pipeline", "vs per-item, tensor rows")
    print_table(
        console,
        "Training throughput (nominal images/s, medians)",
        [(col, "left" if col == "contender" else "right") for col in (*columns, "vs bare loop, CPU time")],
        [
            (
                row.name,
                f"{row.images_per_s:,.0f}",
                f"{row.vs_bare:.2f}x",
                f"{row.vs_per_item:.2f}x",
                f"{row.vs_per_item_tensor:.2f}x",
                f"{row.vs_bare_cpu:.2f}x",
            )
            for row in rows
        ],
    )

    if args.eval:
        eval_rounds = min(args.rounds, 3)
        result = profile_evaluation(trunk=args.trunk, rounds=eval_rounds)
        columns = (
            "distance computation s",
            "eval s",
            "eval / distance",
            "eval / distance, CPU time",
            "embedding s",
            "search + rules + metrics s",
            "of which good-vs-defect",
        )
        print_table(
            console,
            f"evaluate(): 10,000 queries x 60,000 references, 128-d, {torch.get_num_threads()} "
            f"thread(s), {eval_rounds} round(s), medians",
            [(col, "right") for col in columns],
            [
                (
                    f"{result['distance_s']:.2f}",
                    f"{result['eval_s']:.2f}",
                    f"{result['eval_vs_distance']:.2f}x",
                    f"{result['eval_vs_distance_cpu']:.2f}x",
                    f"{result['embed_s']:.2f}",
                    f"{result['search_and_metrics_s']:.2f}",
                    f"{100 * result['operating_share']:.1f}%",
                )
            ],
        )
    if args.growth:
        grow = profile_growth(steps=args.steps, trunk=args.trunk)
        columns = ("images", "embedding", "fit s", "eval s", "embedding s", "search + metrics s")
        print_table(
            console,
            f"Growth: mined-triplet fit ({args.steps} steps) and evaluate()",
            [(col, "right") for col in columns],
            [
                (
                    f"{r['images']:,}",
                    str(r["embedding_size"]),
                    f"{r[f'fit_{args.steps}_steps_s']:.2f}",
                    f"{r['eval_s']:.2f}",
                    f"{r['embed_s']:.2f}",
                    f"{r['search_and_metrics_s']:.2f}",
                )
                for r in grow
            ],
        )
    return 0
