"""Records as pandas frames (``bench.load_records``, ``bench.load_summary``) and ``python -m bench
table``: every committed run directory reads, the summary is the report's headline table, and the
table command's formats read back, survive a pipe and refuse bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers_records import record, table_rows

import bench
from bench.cli import main
from bench.export.frames import LEADING_COLUMNS
from bench.grid.store import RESULTS_FILE
from bench.report.cells import load_records as report_records
from bench.report.format import mean_ci, rate_ci

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
COMMITTED = sorted(p.parent for p in RESULTS.rglob(RESULTS_FILE))


def write_run(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / RESULTS_FILE, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return run_dir


def test_every_committed_results_file_reads_one_row_per_cell():
    frame = bench.load_records(RESULTS)
    assert len(COMMITTED) >= 10
    assert sorted(frame["run_dir"].unique()) == sorted(str(p) for p in COMMITTED)
    for run_dir in COMMITTED:
        rows = frame[frame["run_dir"] == str(run_dir)]
        assert sorted(rows["hash"]) == sorted(r.hash for r in report_records(run_dir))
    assert list(frame.columns[: len(LEADING_COLUMNS)]) == list(LEADING_COLUMNS)
    for column in (
        "config.method",
        "config.budget.steps",
        "metrics.escape_rate",
        "timing.train_s",
        "env.torch",
    ):
        assert column in frame.columns
    assert frame["metrics.escape_rate"].dtype == float and frame["config.seed"].equals(frame["seed"])
    assert not any(isinstance(v, list | dict) for v in frame.to_numpy().ravel())
    assert str(frame["finished_at"].dtype).startswith("datetime64")


def test_the_summary_is_the_reports_headline_table():
    """Formatted as the report formats them, the summary's numbers are the report's headline table
    (as the report's code builds it now: a committed report.md may predate a change of statistics)."""
    from bench.export.frames import study_records
    from bench.report.cells import Cells
    from bench.report.overview import headline_section

    summary = bench.load_summary(RESULTS / "inspection")
    ((_, records),) = study_records(RESULTS / "inspection")
    section = "\n".join(headline_section(Cells(records), "knn5"))
    expected = table_rows(section, "### Headline: method x scheme")
    # 4 methods x 4 schemes: natural and good-x5 gave the same weights there and are one row
    assert len(summary) == len(expected) == 16
    for row, want in zip(summary.to_dict("records"), expected, strict=True):
        assert (row["method"], row["scheme"], str(row["seeds"])) == (
            want["method"],
            want["scheme"],
            want["seeds"],
        )
        for name, column in (
            ("accuracy_pct", "accuracy %"),
            ("escape_pct", "escape %"),
            ("overkill_pct", "overkill %"),
        ):
            got = {"mean": row[name], "ci_low": row[f"{name}_low"], "ci_high": row[f"{name}_high"]}
            assert rate_ci(got) == want[column]
        cost = {
            "mean": row["cost_per_1000"],
            "ci_low": row["cost_per_1000_low"],
            "ci_high": row["cost_per_1000_high"],
        }
        assert mean_ci(cost, 1) == want["cost / 1000 parts"]


def test_old_and_new_records_a_failed_cell_and_a_new_metric_all_become_rows(tmp_path):
    old = record("siamese", "uniform", 0, 0.9)  # schema_version 1
    del old["config"]["inputs"]  # made before --inputs: read as raw, a study of its own
    new = {**record("siamese", "uniform", 1, 0.8), "schema_version": 2}
    new["metrics"]["escape_rate_at_target"] = 0.03  # a metric this bench does not declare
    failed = record("classifier", "uniform", 0, 0.0, status="failed")
    frame = bench.load_records(write_run(tmp_path / "run", [old, new, failed]))
    by_seed = frame.set_index(["method", "seed"])
    assert "config.inputs" in by_seed.loc[("siamese", 0), "inferred"].split(",")
    assert by_seed.loc[("siamese", 0), "config.inputs"] == "raw"
    assert by_seed.loc[("siamese", 1), "metrics.escape_rate_at_target"] == 0.03
    assert by_seed.loc[("classifier", 0), "status"] == "failed"
    assert by_seed.loc[("classifier", 0), "error"] == "RuntimeError: deliberate"
    assert frame["study"].nunique() == 2
    summary = bench.load_summary(tmp_path / "run")
    assert summary[["method", "scheme", "seeds"]].values.tolist() == [["siamese", "uniform", 1]] * 2
    with pytest.raises(AttributeError):
        bench.no_such_thing  # noqa: B018


def test_the_runner_records_the_validation_curve_of_checkpoint_selection(tmp_path):
    from bench.grid.config import CellConfig
    from bench.grid.runner import run_cell
    from bench.sampling.budget import Budget

    cell = CellConfig(
        "inspection",
        "classifier",
        "uniform",
        0,
        budget=Budget(steps=4, batch_images=12, eval_every=2),
        dataset_options=(("n_per_defect", 6),),
    )
    out = run_cell(cell)
    assert out["status"] == "ok", out.get("error")
    curve = out["checkpoint"]
    assert curve["step"] == [2, 4] and len(curve["accuracy"]) == 2
    assert curve["selected_step"] in (2, 4)
    frame = bench.load_records(write_run(tmp_path / "run", [out]))
    assert frame.loc[0, "checkpoint.selected_step"] == curve["selected_step"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "markdown"])
def test_table_writes_every_format_and_each_reads_back(fmt, tmp_path):
    out = tmp_path / f"table.{fmt}"
    argv = ["table", str(RESULTS / "digits"), "--format", fmt, "--output", str(out)]
    assert main([*argv, "--columns", "method,scheme,seed,hash,metrics.*"]) == 0
    frame = bench.load_records(RESULTS / "digits")
    want = frame[
        ["method", "scheme", "seed", "hash", *(c for c in frame.columns if c.startswith("metrics."))]
    ]
    if fmt == "markdown":
        lines = out.read_text().splitlines()
        assert len(lines) == len(frame) + 2 and "| hash " in lines[0]
        return
    got = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[
        fmt
    ](out)
    assert list(got.columns) == list(want.columns)
    assert got["hash"].astype(str).tolist() == want["hash"].tolist()
    pd.testing.assert_series_equal(got["metrics.accuracy"], want["metrics.accuracy"], check_names=False)


def test_table_summary_prints_the_reports_numbers_through_a_pipe():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "table", "results/inspection", "--summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "40"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()]
    rows = [dict(zip(lines[0], line, strict=True)) for line in lines[2:]]
    siamese = next(r for r in rows if (r["method"], r["scheme"]) == ("siamese", "uniform"))
    # The report: | siamese | uniform | 10 | 98.4 (97.7–98.9) | 1.8 (1.3–2.7) | 0.1 (0.0–0.8) | 144.5 ± 53.1 |
    columns = (
        "seeds",
        "accuracy_pct",
        "accuracy_pct_low",
        "accuracy_pct_high",
        "escape_pct",
        "cost_per_1000",
    )
    assert [siamese[c] for c in columns] == ["10", "98.4", "97.7", "98.9", "1.8", "144.5"]
    assert "…" not in proc.stdout


def test_table_stops_quietly_when_the_pipe_closes():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "table", "results/inspection"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"| run_dir")
    proc.stdout.close()  # `| head -1`
    assert proc.wait(timeout=300) == 0
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["table", "no/such/dir"], "no/such/dir is not a run directory"),
        (["table", "{empty}"], "holds no results.jsonl"),
        (["table", "{run}", "--format", "xml"], "unknown format 'xml'; choose one of markdown, csv"),
        (["table", "{run}", "--columns", "nothing.*"], "no column matches 'nothing.*'"),
        (["table", "{blank}"], "holds no readable records"),
    ],
)
def test_table_bad_input_is_one_line_and_exit_2(argv, fragment, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_run(tmp_path / "blank", [])
    paths = {"empty": tmp_path / "empty", "run": RESULTS / "digits", "blank": tmp_path / "blank"}
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err


def test_the_documented_example_runs_on_the_committed_records(tmp_path, monkeypatch, capsys):
    """The python block of docs/results-api.md's example, run where ``results/`` is the repository's."""
    import re

    import matplotlib

    matplotlib.use("Agg")
    text = (ROOT / "docs" / "results-api.md").read_text()
    section = text.split("### Example: a figure the report does not draw", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "results").symlink_to(RESULTS)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/results-api.md", "exec"), {})
    assert (tmp_path / "escape-vs-rank.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "mean-anchor-triplet" in printed and "health.effective_rank" in printed
