"""Faults lose no results: kill -9 and resume, SIGINT/SIGTERM, diverging cells, full disks, odd names."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_processes import pool_workers

from bench.cli import main
from bench.core.errors import BenchError
from bench.grid.config import CellConfig
from bench.grid.store import ResultStore, read_records

CONFIG = CellConfig("inspection", "siamese", "uniform", 0).to_dict()  # a record's cell, for the store tests

GRID = [
    "run",
    "--method",
    "classifier",
    "--scheme",
    "uniform",
    "--scheme",
    "sqrt",
    "--scheme",
    "good-x5",
    "--seeds",
    "2",
    "--quick",
    "--steps",
    "40",
]


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *GRID, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_records(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "results.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no record appeared in time")


def test_sigkill_mid_run_then_resume_completes_without_duplicates(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_records(out, 2, proc)
    workers = pool_workers(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no orphaned workers
    before = read_records(out)
    assert 2 <= len(before) < 6
    done = subprocess.run(
        [sys.executable, "-m", "bench", *GRID, "--out", str(out), "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = read_records(out)
    hashes = [r["hash"] for r in after]
    assert len(hashes) == len(set(hashes)) == 6  # every cell once: none missing, none twice
    assert after[: len(before)] == before  # finished records untouched
    assert (out / "report.md").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_cells_rebuilds_report_and_exits_130(tmp_path, sig):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_records(out, 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    records = read_records(out)
    assert records and all(r["status"] == "ok" for r in records)
    assert (out / "report.md").exists()


def test_diverging_cell_is_recorded_as_failed_with_its_step_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--method",
            "classifier",
            "--scheme",
            "uniform",
            "--scheme",
            "sqrt",
            "--quick",
            "--steps",
            "20",
            "--lr",
            "1e12",
            "--out",
            str(out),
        ]
    )
    records = read_records(out)
    assert code == 1 and len(records) == 2
    assert all(r["status"] == "failed" for r in records)
    assert all("diverged" in r["error"] and "at step" in r["error"] for r in records)


def test_full_disk_is_a_clear_error(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    store = ResultStore(tmp_path)
    (tmp_path / "results.jsonl").symlink_to("/dev/full")
    with pytest.raises(BenchError, match="could not write a record"):
        store.append({"hash": "a", "status": "ok", "config": CONFIG})


def test_a_failed_write_keeps_earlier_records(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.append({"hash": "a", "status": "ok", "config": CONFIG})

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(BenchError, match="No space left"):
        store.append({"hash": "b", "status": "ok", "config": CONFIG})
    monkeypatch.undo()
    assert read_records(tmp_path)[0]["hash"] == "a"


def test_rerun_reproduces_a_recorded_cell(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--method",
                "siamese",
                "--scheme",
                "good-x5",
                "--quick",
                "--steps",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = read_records(out)[0]
    assert main(["rerun", str(out), record["hash"][:8]]) == 0
    assert "matches the record" in capsys.readouterr().out
    # A doctored record is reported as different.
    doctored = dict(record, metrics={**record["metrics"], "accuracy": 0.0})
    (out / "results.jsonl").write_text(json.dumps(doctored) + "\n")
    assert main(["rerun", str(out), record["hash"]]) == 1
    assert "metrics.accuracy" in capsys.readouterr().out


def test_label_codes_cannot_write_outside_the_run_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    import numpy as np

    rng = np.random.default_rng(0)
    codes = ["ok", "../../escape", "/abs/path"]
    rows = {
        "image": [rng.random((8, 8)).astype("float32") for _ in range(60)],
        "label": [codes[i % 3] for i in range(60)],
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "deep" / "run"
    code = main(
        [
            "run",
            "--dataset",
            f"hf:{tmp_path / 'data'}",
            "--good",
            "ok",
            "--method",
            "classifier",
            "--scheme",
            "uniform",
            "--scheme",
            "good-x5",
            "--quick",
            "--steps",
            "20",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    outside = {p for p in written if not p.is_relative_to(out.resolve()) and "data" not in p.parts}
    assert outside == set()
    assert not Path("/abs/path").exists()


def test_an_interrupted_atomic_write_leaves_the_old_file_whole(tmp_path):
    from bench.core.atomic import atomic_open

    path = tmp_path / "report.md"
    path.write_text("old report\n")
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("half of a new rep")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left behind
