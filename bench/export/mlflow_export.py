"""A run directory's records as MLflow runs: one experiment per study, one run per cell.

Each study of the run directory (as the report groups them) is an experiment named
``PREFIX: STUDY TITLE`` (the prefix is the run directory's name unless given). It holds a parent
run for the study, carrying the study's config as parameters and ``report.md``, the study's
plots and ``summary.csv`` (``bench.export.frames.load_summary``) as artifacts, and under it one run
per cell: parameters from the cell config (``config.*``) and the method's parameters as it ran
(``params.*``), metrics from the record under the records frame's names (``metrics.*``,
``metrics_by_rule.*``, ``val_metrics_by_rule.*``, ``health.*``, ``checkpoint.*``, ``timing.*``,
``sampling.*``), the training loss (``train_loss``) and, for cells that recorded checkpoint
selection, the validation curve (``val_accuracy``) as step metrics, and tags: the cell hash, the
git commit, the machine fingerprint and the environment. Runs are keyed by the cell hash
(``bench.export.mlflow_store``): exporting twice, or after ``--resume`` added cells, leaves one
run per cell.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core.canonical import canonical_json
from bench.core.environment import fingerprint
from bench.export.frames import machine_id, record_row, study_records, summary_rows
from bench.export.mlflow_store import (
    KIND_TAG,
    ExportCount,
    RunContent,
    existing_runs,
    experiment_id,
    log_files,
    millis,
    sync_run,
)
from bench.grid.record import Record
from bench.report.cells import REPORT_FILE, labels_by_hash, method_labels, study_config

#: The record's groups whose numbers are an exported run's metrics.
METRIC_GROUPS = (
    "metrics",
    "metrics_by_rule",
    "val_metrics_by_rule",
    "health",
    "checkpoint",
    "timing",
    "sampling",
)
STUDY_KEY = "study"


def cell_content(record: Record, row: dict[str, Any]) -> RunContent:
    """The MLflow run of one cell: ``row`` is its row of the records frame."""
    params = {k: v for k, v in row.items() if k.startswith(("config.", "params.")) and v is not None}
    metrics = {
        k: float(v)
        for k, v in row.items()
        if k.split(".", 1)[0] in METRIC_GROUPS and "." in k and isinstance(v, int | float)
    }
    curves = {}
    loss = record.health.loss_curve if record.health is not None else None
    if loss is not None and loss.step:
        curves["train_loss"] = list(zip(loss.step, loss.loss, strict=False))
    if record.checkpoint is not None and record.checkpoint.step:
        curves["val_accuracy"] = list(zip(record.checkpoint.step, record.checkpoint.accuracy, strict=False))
    env = dict(record.env or {})
    tags = {
        KIND_TAG: "cell",
        "bench.cell_hash": record.hash,
        "bench.status": record.status,
        "bench.method": row["method"],
        "bench.scheme": row["scheme"],
        "bench.seed": str(record.config.seed),
        "bench.run_dir": row["run_dir"],
        **{f"env.{k}": str(v) for k, v in env.items() if v is not None},
    }
    if env.get("git_commit"):
        tags["bench.git_commit"] = tags["mlflow.source.git.commit"] = str(env["git_commit"])
    if env:
        tags["bench.machine"] = machine_id(env) or ""
        tags["bench.machine_fingerprint"] = canonical_json(fingerprint(env))
    if record.error:
        tags["bench.error"] = record.error
    if record.params_source:
        tags["bench.params_source"] = record.params_source
    return RunContent(
        key=record.hash,
        name=f"{row['method']} · {row['scheme']} · seed {record.config.seed}",
        params=params,
        metrics=metrics,
        curves=curves,
        tags=tags,
        start=millis(record.started_at or record.finished_at),
        end=millis(record.finished_at),
        status="FINISHED" if record.ok else "FAILED",
    )


def study_plots(run_dir: Path, title: str) -> list[Path]:
    """The plots ``report.md`` links under the study's heading."""
    report = run_dir / REPORT_FILE
    if not report.is_file():
        return []
    sections = re.split(r"^## ", report.read_text(encoding="utf-8"), flags=re.M)
    section = next((s for s in sections if s.startswith(title + "\n")), "")
    return [run_dir / link for link in dict.fromkeys(re.findall(r"\]\((plots/[^)\s]+\.png)\)", section))]


def export_run_dir(client: Any, uri: str, run_dir: Path, prefix: str | None = None) -> list[ExportCount]:
    """Export every study of ``run_dir`` to the MLflow store of ``client`` (at ``uri``).

    Args:
        client: an ``MlflowClient`` (``bench.export.mlflow_store.mlflow_client``).
        uri: its tracking URI (a local SQLite store keeps artifacts in ``mlartifacts`` beside it).
        run_dir: a run directory (it holds ``results.jsonl``).
        prefix: the experiments' name prefix (default: the run directory's name).

    Returns:
        What the export did, per experiment (each study's cells; the parent run is not counted).
    """
    prefix = prefix or Path(run_dir).resolve().name
    counts = []
    for title, records in study_records(Path(run_dir)):
        name = f"{prefix}: {title}"
        study = study_config(records[0])
        experiment = experiment_id(
            client, uri, name, {"bench.run_dir": str(run_dir), "bench.study": canonical_json(study)}
        )
        existing = existing_runs(client, experiment)
        parent = RunContent(
            key=STUDY_KEY,
            name=title,
            params={f"config.{k}": v for k, v in _flat(study).items() if v is not None},
            tags={KIND_TAG: "study", "bench.run_dir": str(run_dir)},
        )
        parent_id, _ = sync_run(client, experiment, parent, existing)
        _log_study_files(client, parent_id, Path(run_dir), title, records)
        methods = method_labels(records)
        schemes = labels_by_hash(records, "scheme", "scheme_options")
        count = ExportCount(name)
        for record in records:
            row = record_row(record, str(run_dir), title, methods[record.hash], schemes[record.hash])
            _, what = sync_run(client, experiment, cell_content(record, row), existing, parent_id)
            count.add(what)
        counts.append(count)
    return counts


def _flat(value: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def _log_study_files(client: Any, run_id: str, run_dir: Path, title: str, records: Sequence[Record]) -> None:
    import pandas as pd

    files = [(run_dir / REPORT_FILE, None), *((p, "plots") for p in study_plots(run_dir, title))]
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.csv"
        pd.DataFrame(summary_rows(str(run_dir), title, records)).to_csv(summary, index=False)
        log_files(client, run_id, [*files, (summary, None)])
