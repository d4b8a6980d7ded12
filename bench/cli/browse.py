"""The small commands: ``list``, ``datasets``, ``report`` and ``rerun``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.cli.flags import check_device
from bench.cli.tables import print_table, summary_line
from bench.core.errors import BenchError
from bench.grid.config import CellConfig

KINDS = ("methods", "schemes", "datasets", "trunks")


def list_command(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets.registry import DATASETS
    from bench.sampling.schemes import SCHEMES
    from methods import get_method_class, list_methods
    from methods.trunks import TRUNKS

    if args.kind is not None and args.kind not in KINDS:
        raise BenchError(f"cannot list {args.kind!r}; choose one of {', '.join(KINDS)} (or nothing for all)")
    kinds = {
        "methods": lambda: [(m, summary_line(get_method_class(m))) for m in list_methods()],
        "schemes": lambda: (
            [(s, summary_line(f)) for s, f in SCHEMES.items()]
            + [
                (
                    "good-xK",
                    "The good class K times each defect class (any K > 0; good-x5 is the reference's fix).",
                )
            ]
        ),
        "datasets": lambda: (
            [(d, summary_line(f)) for d, f in DATASETS.items()]
            + [
                (
                    "hf:<name-or-path>",
                    "Any Hugging Face datasets source: hub name, save_to_disk folder, image folder, parquet.",
                )
            ]
        ),
        "trunks": lambda: [(t, summary_line(f)) for t, f in TRUNKS.items()],
    }
    for kind in KINDS:
        if args.kind and kind != args.kind:
            continue
        columns = [("name", "left"), ("about", "left")]
        print_table(console, kind, columns, kinds[kind](), wrap=["about"], show_header=False)
    return 0


def datasets_command(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets import describe_datasets

    if getattr(args, "dataset", None):
        return _describe_one(args, console)
    given = [
        f"--{f.replace('_', '-')}" for f in ("data_dir", "good", "good_per_defect") if getattr(args, f, None)
    ]
    if given:
        raise BenchError(f"{', '.join(given)} describe(s) one source: add --dataset NAME")

    columns = [
        ("name", "left"),
        ("image size", "left"),
        ("classes", "right"),
        ("train", "right"),
        ("val", "right"),
        ("test", "right"),
        ("balance", "left"),
        ("source", "left"),
        ("inputs", "left"),
    ]
    rows = []
    for r in describe_datasets(args.inputs):
        counts = r.get("counts") or {}
        rows.append(
            [
                r["name"],
                r.get("image_size"),
                r.get("classes"),
                *(counts.get(s) for s in ("train", "val", "test")),
                r.get("balance"),
                r.get("source"),
                r.get("inputs"),
            ]
        )
    title = f"datasets (inputs {args.inputs}; --inputs pixel|global|raw)"
    print_table(console, title, columns, rows, wrap=["balance", "source", "inputs"])
    return 0


def _describe_one(args: argparse.Namespace, console: Console) -> int:
    """``bench datasets --dataset SRC``: the source as a run would load it (with ``--data-dir``,
    ``--good``, ``--good-per-defect``), one row per class with its split counts (seed 0)."""
    from bench.datasets.describe import describe_source

    options = {
        key: getattr(args, key)
        for key in ("data_dir", "good", "good_per_defect")
        if getattr(args, key, None) is not None
    }
    row = describe_source(args.dataset, options, args.inputs)
    counts = row["counts"]
    console.print(
        f"{row['name']}: {row['source']}\n"
        f"images {row['image_size']}; {row['classes']} classes, {row['images']} images; good class"
        f" {row['good']!r}; balance: {row['balance']}\n"
        f"split (seed 0): train {counts['train']}, val {counts['val']}, test {counts['test']}\n"
        f"inputs {args.inputs}: {row['inputs']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    columns = [
        ("class", "left"),
        ("images", "right"),
        ("train", "right"),
        ("val", "right"),
        ("test", "right"),
    ]
    rows = [
        [
            f"{code} (good)" if code == row["good"] else code,
            *(c[k] for k in ("images", "train", "val", "test")),
        ]
        for code, c in row["class_counts"].items()
    ]
    print_table(console, f"classes of {args.dataset}", columns, rows)
    return 0


def cells_command(run_dir: Path, console: Console) -> int:
    """One row per recorded cell of ``run_dir`` with its hash (what ``rerun`` takes)."""
    from bench.grid.store import RESULTS_FILE, latest_by_hash, read_records

    if not (run_dir / RESULTS_FILE).exists():
        raise BenchError(f"{run_dir} holds no {RESULTS_FILE}; pass the directory a run wrote (--out)")
    records = sorted(
        latest_by_hash(read_records(run_dir)).values(),
        key=lambda r: (
            r["config"].get("method", ""),
            r["config"].get("scheme", ""),
            r["config"].get("seed", 0),
            r["hash"],
        ),
    )
    if not records:
        raise BenchError(f"{run_dir / RESULTS_FILE} holds no readable records")

    def percent(value: object) -> str | None:
        return f"{100 * value:.1f}" if isinstance(value, int | float) else None

    rows = [
        [
            r["hash"],
            r["config"].get("method"),
            r["config"].get("scheme"),
            r["config"].get("seed"),
            r["status"],
            percent((r.get("metrics") or {}).get("accuracy")),
            percent((r.get("metrics") or {}).get("escape_rate")),
        ]
        for r in records
    ]
    columns = [
        ("hash", "left"),
        ("method", "left"),
        ("scheme", "left"),
        ("seed", "right"),
        ("status", "left"),
        ("accuracy %", "right"),
        ("escape %", "right"),
    ]
    print_table(
        console, f"cells of {run_dir} (rerun one: python -m bench rerun {run_dir} HASH)", columns, rows
    )
    return 0


def rerun_command(args: argparse.Namespace, console: Console) -> int:
    from bench.grid.rerun import rerun

    check_device(args.device)
    record, fresh, diffs = rerun(Path(args.run_dir), args.hash, device=args.device, threads=args.threads)
    label = CellConfig.from_dict(record["config"]).label
    _warn_other_machine(record.get("env"), fresh.get("env"), console)
    if not diffs:
        console.print(f"{record['hash']} ({label}): rerun matches the record ({fresh['status']})")
        return 0
    console.print(f"{record['hash']} ({label}): {len(diffs)} difference(s)")
    for line in diffs[:50]:
        console.print(f"  {line}", highlight=False)
    return 1


def _warn_other_machine(recorded: dict | None, now: dict | None, console: Console) -> None:
    """Say so, with both fingerprints, when the rerun's machine is not the record's."""
    from bench.core.environment import fingerprint

    before, after = fingerprint(recorded), fingerprint(now)
    if before == after:
        return
    console.print(
        "warning: this machine's fingerprint differs from the record's: per-seed numbers of cells far"
        " from convergence may differ across machines (CPU kernels, BLAS and threads round differently)",
        highlight=False,
    )
    rows = [
        [
            key + (" *" if before[key] != after[key] else ""),  # * marks what differs
            "not recorded" if before[key] is None else before[key],
            after[key],
        ]
        for key in before
    ]
    columns = [("", "left"), ("record", "left"), ("this machine", "left")]
    print_table(console, "machine fingerprints (* differs)", columns, rows, wrap=["record", "this machine"])


def report_command(run_dir: Path, console: Console) -> int:
    from bench.grid.store import RESULTS_FILE, read_records
    from bench.report import write_report

    if not (run_dir / RESULTS_FILE).exists():
        raise BenchError(f"{run_dir} holds no {RESULTS_FILE}; pass the directory a run wrote (--out)")
    if not read_records(run_dir):
        raise BenchError(f"{run_dir / RESULTS_FILE} holds no readable records")
    console.print(f"report: {write_report(run_dir)}")
    return 0
