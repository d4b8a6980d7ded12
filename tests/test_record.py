"""The typed record: one reader for every schema version, a writer that keeps the JSON shape, one
table of headline metrics for the seed-target rule and the report."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from bench.grid.adaptive import TARGET_METRICS, SeedTarget
from bench.grid.config import CellConfig
from bench.grid.record import (
    _CONVERSIONS,
    HEADLINE_METRICS,
    INPUTS_FIELD,
    PEAK_RSS_FIELD,
    SCHEMA_VERSION,
    SPLIT_SEED_FIELD,
    Record,
    RecordError,
)
from bench.grid.runner import new_record, run_cell
from bench.grid.store import ResultStore, load_records, read_records
from bench.report.paired import PAIRED_METRICS
from bench.sampling.budget import Budget

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "results").rglob("results.jsonl"))
FIXTURE = ROOT / "tests" / "fixtures" / "run" / "results.jsonl"
CELL = CellConfig("inspection", "siamese", "uniform", 0)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_there_are_committed_records_to_read():
    assert len(COMMITTED) >= 13


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_committed_record_reads_and_writes_back_its_own_json(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no line skipped
        records = load_records(path.parent)
    lines = _lines(path)
    assert len(records) == len(lines) > 0
    for record, line in zip(records, lines, strict=True):
        assert record.ok and record.config.hash == record.hash
        if "split_seed" in line["config"]:  # made under the current protocol: written back as read
            assert record.config.split_seed == line["config"]["split_seed"] is not None
            assert record.to_dict() == line
            continue
        # Complete version-1 records: the current writer gives back the same object, with the
        # split seed they were made with: none, a test split per seed (the older protocol).
        assert record.config.split_seed is None and not record.recorded(SPLIT_SEED_FIELD)
        config = {**line["config"], "split_seed": None}
        assert record.to_dict() == {**line, "config": config, "schema_version": SCHEMA_VERSION}
        # written back, the split seed is recorded (null), no longer the reader's
        assert Record.from_dict(record.to_dict()) == replace(record, inferred=frozenset())


def test_records_from_before_inputs_and_per_cell_memory_are_converted():
    lines = _lines(FIXTURE)
    records = [Record.from_dict(line) for line in lines]
    assert all("inputs" not in line["config"] for line in lines)
    for record, line in zip(records, lines, strict=True):
        # Made on raw pixels, and the reader says it filled that in.
        assert record.config.inputs == "raw" and not record.recorded(INPUTS_FIELD)
        assert record.to_dict()["config"] == {**line["config"], "inputs": "raw", "split_seed": None}
    ok = [r for r in records if r.ok]
    assert ok and len(ok) < len(records)
    for record in ok:
        # The old peak was the worker's lifetime peak: kept, but not the cell's figure.
        assert record.timing.fit_eval_peak_rss_mb is None and not record.recorded(PEAK_RSS_FIELD)
        assert set(record.timing.extra) == {"peak_rss_mb"}
        assert record.health is None and record.params is None
    failed = [r for r in records if not r.ok]
    assert all(r.error and r.started_at is None and r.dataset is None for r in failed)


def test_a_record_without_schema_version_is_version_1():
    line = {
        "hash": CELL.hash,
        "status": "ok",
        "config": {k: v for k, v in CELL.to_dict().items() if k != "inputs"},
    }
    assert Record.from_dict(line).inferred == {INPUTS_FIELD}
    assert Record.from_dict({**line, "schema_version": 2, "config": CELL.to_dict()}).inferred == frozenset()


def test_every_older_version_has_a_conversion():
    assert len(_CONVERSIONS) == SCHEMA_VERSION - 1


def test_keys_the_type_does_not_declare_are_kept():
    line = {
        **new_record(CELL),
        "status": "ok",
        "note": {"by": "hand"},
        "metrics": {"accuracy": 0.5, "my_metric": 3},
        "sampling": {"tuples": 4, "my_count": {"0": 1}},
        "timing": {
            "train_s": 1.0,
            "train_images_per_s": 2.0,
            "embed_images_per_s": 3.0,
            "eval_s": 0.5,
            "fit_eval_peak_rss_mb": None,  # the platform cannot measure it: written as null
            "fit_eval_peak_cuda_mb": 12.5,  # optional: written only when measured
        },
        "traceback": "Traceback ...",
    }
    record = Record.from_dict(line)
    assert record.extra == {"note": {"by": "hand"}} and record.metrics.extra == {"my_metric": 3}
    assert record.timing.fit_eval_peak_cuda_mb == 12.5 and record.traceback == "Traceback ..."
    again = record.to_dict()
    assert again["note"] == line["note"] and again["sampling"] == line["sampling"]
    assert again["timing"] == line["timing"] and again["metrics"]["my_metric"] == 3
    assert Record.from_dict(again) == record


@pytest.mark.parametrize(
    "line, why",
    [
        ([1, 2], "JSON object"),
        ({"hello": 1}, "hash"),
        ({"hash": "a", "status": "ok", "config": {}}, "cell config"),
        ({"hash": "a", "status": "ok", "config": CELL.to_dict(), "metrics": [1]}, "metrics"),
        ({"hash": 7, "status": "ok", "config": CELL.to_dict()}, "hash"),
        ({**new_record(CELL), "schema_version": SCHEMA_VERSION + 1}, "newer bench"),
    ],
)
def test_what_is_not_a_record_is_refused_with_the_reason(line, why):
    with pytest.raises(RecordError, match=why):
        Record.from_dict(line)


def test_the_store_skips_a_record_of_a_newer_bench_with_a_warning(tmp_path):
    store = ResultStore(tmp_path)
    store.append(new_record(CELL))
    store.append({**new_record(CELL), "schema_version": SCHEMA_VERSION + 1})
    store.append(Record.from_dict(new_record(CELL)))
    with pytest.warns(UserWarning, match="line 2|:2: .*newer bench"):
        records = load_records(tmp_path)
    assert len(records) == 2 and all(isinstance(r, Record) for r in records)
    with pytest.warns(UserWarning):
        assert read_records(tmp_path) == [r.to_dict() for r in records]


def test_one_table_of_headline_metrics_serves_the_seed_target_and_the_report():
    assert TARGET_METRICS is HEADLINE_METRICS and set(PAIRED_METRICS) == set(HEADLINE_METRICS)
    line = {**new_record(CELL), "status": "ok", "metrics": {"accuracy": 0.9, "escape_rate": 0.1}}
    record = Record.from_dict(line)
    for name in HEADLINE_METRICS:
        path = SeedTarget(ci=1.0, metric=name).path
        assert record.headline(name) == line[path[0]].get(path[1])


def test_the_runner_writes_the_typed_record_in_the_known_shape():
    tiny = CellConfig(
        "inspection",
        "classifier",
        "uniform",
        0,
        budget=Budget(steps=3, batch_images=12),
        dataset_options=(("n_per_defect", 6),),
    )
    out = run_cell(tiny)
    assert out["status"] == "ok", out.get("error")
    assert set(out) == {
        "schema_version",
        "hash",
        "config",
        "status",
        "error",
        "started_at",
        "dataset",
        "plan",
        "params",
        "headline_rule",
        "metrics",
        "metrics_by_rule",
        "val_metrics_by_rule",
        "embedding_2d",
        "sampling",
        "health",
        "timing",
        "env",
        "finished_at",
    }
    assert out["schema_version"] == SCHEMA_VERSION and out["config"] == tiny.to_dict()
    assert set(out["val_metrics_by_rule"]["knn5"]) == {
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "escape_rate",
        "overkill_rate",
        "cost_per_1000",
    }
    assert "fit_eval_peak_rss_mb" in out["timing"] and out["dataset"]["inputs"]["mode"] == "pixel"
    assert Record.from_dict(out).to_dict() == json.loads(json.dumps(out))

    failed = run_cell(CellConfig(**{**tiny.__dict__, "method": "no-such-method"}))
    assert failed["status"] == "failed" and "no-such-method" in failed["error"]
    assert {"dataset", "plan", "env", "finished_at"} <= set(failed) and "metrics" not in failed
