"""The small commands: ``list``, ``datasets``, ``report`` and ``rerun``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.cli.run import check_device
from bench.core.errors import BenchError
from bench.grid.config import CellConfig


def _about(obj: object) -> str:
    """The first line of a plug-in's docstring, for ``list``."""
    return ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]


def list_command(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets.registry import DATASETS
    from bench.sampling.schemes import SCHEMES
    from methods import get_method_class, list_methods
    from methods.trunks import TRUNKS

    kinds = {
        "methods": [(m, _about(get_method_class(m))) for m in list_methods()],
        "schemes": [(s, _about(f)) for s, f in SCHEMES.items()]
        + [
            (
                "good-xK",
                "The good class K times each defect class (any K > 0; good-x5 is the reference's fix).",
            )
        ],
        "datasets": [(d, _about(f)) for d, f in DATASETS.items()]
        + [
            (
                "hf:<name-or-path>",
                "Any Hugging Face datasets source: hub name, save_to_disk folder, image folder, parquet.",
            )
        ],
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


def datasets_command(args: argparse.Namespace, console: Console) -> int:
    from bench.datasets import describe_datasets

    rows = describe_datasets(args.inputs)
    table = Table(title=f"datasets (inputs {args.inputs}; --inputs pixel|global|raw)")
    for col in ("name", "image size", "classes", "train", "val", "test", "balance", "source", "inputs"):
        table.add_column(col)
    for r in rows:
        counts = r.get("counts") or {}
        table.add_row(
            r["name"],
            str(r.get("image_size", "")),
            str(r.get("classes", "")),
            *(str(counts.get(s, "")) for s in ("train", "val", "test")),
            str(r.get("balance", "")),
            str(r.get("source", "")),
            str(r.get("inputs") or ""),
        )
    console.print(table)
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
    table = Table(show_header=True)
    for col in ("", "record", "this machine"):
        table.add_column(col)
    for key in before:
        table.add_row(
            key,
            "not recorded" if before[key] is None else str(before[key]),
            "–" if after[key] is None else str(after[key]),
            style="bold" if before[key] != after[key] else None,
        )
    console.print(table)


def report_command(run_dir: Path, console: Console) -> int:
    from bench.grid.store import RESULTS_FILE, read_records
    from bench.report import write_report

    if not (run_dir / RESULTS_FILE).exists():
        raise BenchError(f"{run_dir} holds no {RESULTS_FILE}; pass the directory a run wrote (--out)")
    if not read_records(run_dir):
        raise BenchError(f"{run_dir / RESULTS_FILE} holds no readable records")
    console.print(f"report: {write_report(run_dir)}")
    return 0
