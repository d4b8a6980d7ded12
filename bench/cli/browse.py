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


def datasets_command(console: Console) -> int:
    from bench.datasets import describe_datasets

    rows = describe_datasets()
    table = Table(title="datasets")
    for col in ("name", "image size", "classes", "train", "val", "test", "balance", "source"):
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
        )
    console.print(table)
    return 0


def rerun_command(args: argparse.Namespace, console: Console) -> int:
    from bench.grid.rerun import rerun

    check_device(args.device)
    record, fresh, diffs = rerun(Path(args.run_dir), args.hash, device=args.device, threads=args.threads)
    label = CellConfig.from_dict(record["config"]).label
    if not diffs:
        console.print(f"{record['hash']} ({label}): rerun matches the record ({fresh['status']})")
        return 0
    console.print(f"{record['hash']} ({label}): {len(diffs)} difference(s)")
    for line in diffs[:50]:
        console.print(f"  {line}", highlight=False)
    return 1


def report_command(run_dir: Path, console: Console) -> int:
    from bench.grid.store import RESULTS_FILE, read_records
    from bench.report import write_report

    if not (run_dir / RESULTS_FILE).exists():
        raise BenchError(f"{run_dir} holds no {RESULTS_FILE}; pass the directory a run wrote (--out)")
    if not read_records(run_dir):
        raise BenchError(f"{run_dir / RESULTS_FILE} holds no readable records")
    console.print(f"report: {write_report(run_dir)}")
    return 0
