"""A run directory is one grid run by one process: the lock, config.toml, resume from the directory
alone, a clean Ctrl-C while the process pool starts, and stale plots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_processes import pool_workers

from bench.cli import main
from bench.core.errors import BenchError
from bench.grid.config import GridConfig, load_grid_toml
from bench.grid.lock import HOLDER_FILE, RunLock, read_holder
from bench.grid.run_dir import CONFIG_FILE, claim_grid
from bench.grid.store import read_records
from bench.sampling.budget import Budget

ROOT = Path(__file__).resolve().parents[1]
# Small enough for subprocess tests: 6 images per defect class, a few steps.
SMALL_DATA = "[dataset_options]\nn_per_defect = 6\n"
GRID = GridConfig(
    methods=("classifier",), schemes=("uniform", "sqrt"), seeds=(0,), budget=Budget(steps=3, batch_images=48)
)


def bench(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


# --------------------------------------------------------------------------- the lock


def test_a_held_directory_refuses_a_second_run_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    code = f"from bench.grid.lock import RunLock; RunLock({str(out)!r}).acquire(); print('held', flush=True); input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "held"
    assert read_holder(out)["pid"] == holder.pid
    argv = ["run", "--method", "classifier", "--scheme", "uniform", "--quick", "--resume", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert f"in use by another bench run (pid {holder.pid} on " in err
    assert not (out / "results.jsonl").exists()
    holder.kill()  # as kill -9 would: no chance to release anything
    holder.wait()
    with RunLock(out) as lock:  # the kernel dropped the dead holder's flock
        assert lock.stale["pid"] == holder.pid
        assert read_holder(out)["pid"] == os.getpid()
    assert not (out / HOLDER_FILE).exists()  # released: the holder file goes with the lock


def test_the_same_process_may_take_its_own_lock_again():
    # run_grid takes the lock the CLI already holds; the outer release frees it.
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as tmp:
        with RunLock(tmp), RunLock(tmp):
            pass
        with RunLock(tmp):  # free again
            pass


# --------------------------------------------------------------------------- one grid


def test_config_toml_keeps_its_grid_and_gains_seeds(tmp_path):
    claim_grid(tmp_path, GRID)
    stored = load_grid_toml(tmp_path / CONFIG_FILE)
    assert stored["seeds"] == (0,)
    claim_grid(tmp_path, replace(GRID, seeds=(0, 1, 2)))  # more seeds: the same grid, extended
    assert load_grid_toml(tmp_path / CONFIG_FILE)["seeds"] == (0, 1, 2)
    claim_grid(tmp_path, replace(GRID, seeds=(1,), schemes=("sqrt", "uniform")))  # narrowed, reordered
    assert load_grid_toml(tmp_path / CONFIG_FILE)["seeds"] == (0, 1, 2)
    before = (tmp_path / CONFIG_FILE).read_text()
    with pytest.raises(BenchError, match="differs in budget"):
        claim_grid(tmp_path, replace(GRID, budget=Budget(steps=60, batch_images=48)))
    with pytest.raises(BenchError, match="differs in methods, method_params"):
        claim_grid(tmp_path, replace(GRID, methods=("siamese",), method_params={"siamese": {"margin": 0.5}}))
    forced = claim_grid(tmp_path, replace(GRID, budget=Budget(steps=60)), force=True)
    assert forced.budget == GRID.budget
    assert (tmp_path / CONFIG_FILE).read_text() == before  # never overwritten by another grid


def test_resume_out_dir_alone_reads_its_grid_and_refuses_another(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG_FILE).write_text(GRID.to_toml())
    assert main(["run", "--resume", "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith(GRID.to_toml())
    assert main(["run", "--resume", "--out", str(out), "--seeds", "3", "--dry-run"]) == 0
    assert "# 6 cell(s)" in capsys.readouterr().out
    assert main(["run", "--resume", "--out", str(out), "--steps", "7", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "holds another grid" in err and "budget" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--resume", "--out", str(out), "--method", "siamese", "--dry-run"]) == 2
    assert "differs in methods" in capsys.readouterr().err
    assert main(["run", "--resume", "--out", str(tmp_path / "empty"), "--dry-run"]) == 2
    assert "holds no config.toml to resume" in capsys.readouterr().err


def test_ctrl_c_while_the_pool_starts_then_two_resumes_at_once_finish_the_run_once(tmp_path):
    """An interrupted ``--all --quick`` run (one scheme, to stay cheap): Ctrl-C reaches the
    whole process group, as a terminal sends it, while the pool's workers are still starting.
    Then two ``bench run --resume --out DIR`` start at once: one runs the grid, the other is
    refused, and every cell is recorded exactly once. (The resumes run their cells in their
    own process, ``--executor local``: where cells run is no part of the grid, and a pool
    would double the test's cost.)"""
    (tmp_path / "small.toml").write_text(SMALL_DATA)
    out = tmp_path / "run"
    args = [
        "run",
        "--all",
        "--scheme",
        "uniform",
        "--quick",
        "--steps",
        "3",
        "--config",
        str(tmp_path / "small.toml"),
    ]
    proc = bench(*args, "--executor", "process", "--jobs", "2", "--out", str(out), start_new_session=True)
    lines = []
    while not (lines and lines[-1].startswith("running ")):
        line = proc.stderr.readline()
        assert line, (proc.wait(), lines)
        lines.append(line)
    deadline = time.monotonic() + (120 if Path("/proc").is_dir() else 2)
    while not pool_workers(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a worker is starting: importing torch takes seconds
    assert "good class: '0'\n" in lines  # said at every run's start
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest[-3000:]
    assert len(rest.strip().splitlines()) == 1, rest  # one line
    if not (out / "results.jsonl").exists():  # truthful: no claim of a file that is not there
        assert rest.startswith("interrupted before any cell finished: nothing was recorded")
    assert f"continue with: python -m bench run --resume --out {out}" in rest
    config = (out / CONFIG_FILE).read_text()

    resumes = [bench("run", "--resume", "--out", str(out), "--executor", "local") for _ in range(2)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in resumes]
    for _, err, code in results:
        # The loser exits 2 naming the winner (or, had the winner finished before it began,
        # finds every cell done).
        assert code == 0 or (code == 2 and "in use by another bench run" in err), err[-3000:]
    assert 0 in [code for *_, code in results]
    hashes = [r["hash"] for r in read_records(out)]
    assert len(hashes) == len(set(hashes)) == 4  # all four methods, once each
    assert (out / CONFIG_FILE).read_text() == config
    assert any("python -m bench cells" in stdout for stdout, _, code in results if code == 0)


def test_the_terminal_summary_never_averages_two_budgets_as_seeds(tmp_path):
    """Records of another grid in the directory (added with --force: 60 steps instead of 3)
    are summarized apart, not averaged in as if they were more seeds."""
    import io
    import json

    from rich.console import Console

    from bench.cli.run import _print_summary

    other = replace(GRID, budget=Budget(steps=60, batch_images=48))
    lines = []
    for grid, accuracy in ((GRID, 0.5), (other, 0.9)):
        for cell in grid.cells():
            record = {"hash": cell.hash, "status": "ok", "config": cell.to_dict()}
            metrics = {"accuracy": accuracy, "escape_rate": 0.1, "overkill_rate": 0.0}
            lines.append(json.dumps({**record, "metrics": metrics}))
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    buffer = io.StringIO()
    _print_summary(tmp_path, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "3 steps" in text and "60 steps" in text  # one table per budget
    rows = [
        [c.strip() for c in line.split("|")[1:5]]
        for line in text.splitlines()
        if line.startswith("| classifier")
    ]
    assert sorted(rows) == [
        ["classifier", "sqrt", "1", "50.0"],
        ["classifier", "sqrt", "1", "90.0"],
        ["classifier", "uniform", "1", "50.0"],
        ["classifier", "uniform", "1", "90.0"],
    ]


# --------------------------------------------------------------------------- stale plots


def test_a_report_rebuild_removes_only_plots_it_no_longer_links(tmp_path):
    from bench.report import write_report

    fixture = ROOT / "tests" / "fixtures" / "run" / "results.jsonl"
    lines = [line for line in fixture.read_text().splitlines() if '"method": "classifier"' in line]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "confusion-old-method.png").write_bytes(b"stale")
    (plots / "notes.txt").write_text("mine")
    (tmp_path / "elsewhere.png").write_bytes(b"not a plot of the report")
    report = write_report(tmp_path).read_text()
    linked = {p.name for p in plots.glob("*.png")}
    assert "confusion-old-method.png" not in linked
    assert linked and all(f"](plots/{name})" in report for name in linked)
    assert (plots / "notes.txt").exists() and (tmp_path / "elsewhere.png").exists()
