"""Executors: the process pool and Dask give the local executor's results, survive a worker
that dies mid-cell, and clean up after an interrupt.

Workers are real spawned processes (each imports torch), so the grids here are tiny.
"""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import helpers_kill
import pytest

from bench.core.errors import BenchError
from bench.grid import driver
from bench.grid.config import CellConfig
from bench.grid.driver import run_cells
from bench.grid.executors import ExecutorOptions, choose_executor
from bench.grid.executors import dask as dask_executor
from bench.grid.runner import run_cell
from bench.grid.store import read_records
from bench.sampling.budget import Budget

TINY = Budget(steps=20, batch_images=48)
DATA = (("n_per_defect", 12),)
FAILED_KEYS = {"schema_version", "hash", "config", "status", "error", "env", "started_at", "finished_at"}


def cell(method: str, scheme: str) -> CellConfig:
    return CellConfig(
        dataset="inspection", method=method, scheme=scheme, seed=0, budget=TINY, dataset_options=DATA
    )


CELLS = [cell("classifier", "uniform"), cell("siamese", "good-x5")]
DIES = cell(helpers_kill.DIES, "uniform")


def run(cells, **options):
    """{hash: record} from ``run_cells``, checking each record belongs to its cell."""
    out = {}
    for c, record in run_cells(cells, ExecutorOptions(**options), lambda c: None, lambda i, n: None):
        assert record["hash"] == c.hash
        out[c.hash] = record
    assert set(out) == {c.hash for c in cells}
    return out


def metrics(record):
    assert record["status"] == "ok", record.get("error")
    return json.dumps(record["metrics"], sort_keys=True)


@pytest.fixture(scope="module")
def local_records():
    return run(CELLS, kind="local")


@pytest.fixture
def dying_method(monkeypatch):
    """Executors hand workers ``helpers_kill.run_cell``, which kills the worker process
    running a ``helpers_kill.DIES`` cell (see that module for why not a registered method)."""
    monkeypatch.setattr(driver, "run_cell", helpers_kill.run_cell)


def assert_died_twice(record, expected):
    assert set(record) >= FAILED_KEYS
    assert record["status"] == "failed" and record["hash"] == expected.hash
    assert record["config"] == expected.to_dict()
    assert record["error"].startswith("worker died twice: ")


def test_dask_thread_cluster_gives_the_local_metrics(local_records):
    from distributed import Client, LocalCluster

    # One worker: threads of one process share torch's global random state.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            with dask_executor.DaskExecutor(ExecutorOptions(kind="dask"), client=client) as executor:
                records = {c.hash: r for c, r in executor.map(partial(run_cell, device="cpu"), CELLS)}
    assert {h: metrics(r) for h, r in records.items()} == {h: metrics(r) for h, r in local_records.items()}


def test_dask_process_cluster_survives_a_dying_worker_and_gives_the_local_metrics(
    local_records, dying_method
):
    records = run([DIES, *CELLS], kind="dask", jobs=2)
    assert_died_twice(records.pop(DIES.hash), DIES)
    assert {h: metrics(r) for h, r in records.items()} == {h: metrics(r) for h, r in local_records.items()}


def test_process_pool_survives_a_dying_worker_and_gives_the_local_metrics(local_records, dying_method):
    records = run([DIES, *CELLS], kind="process", jobs=2)
    assert_died_twice(records.pop(DIES.hash), DIES)
    assert {h: metrics(r) for h, r in records.items()} == {h: metrics(r) for h, r in local_records.items()}


def test_interrupt_cancels_the_rest_and_closes_the_cluster_it_started(monkeypatch):
    started, start_local_cluster = [], dask_executor.start_local_cluster

    def start(jobs, processes=True):
        started.append(start_local_cluster(1, processes=False))
        return started[-1]

    monkeypatch.setattr(dask_executor, "start_local_cluster", start)
    grid = run_cells([*CELLS, cell("classifier", "natural")], ExecutorOptions(kind="dask"), None, None)
    next(grid)
    with pytest.raises(KeyboardInterrupt):
        grid.throw(KeyboardInterrupt)
    assert started[0].status.name == "closed"


def test_gpu_cells_ask_remote_clusters_for_a_gpu_worker():
    assert dask_executor.task_resources("cuda", remote=True) == {"GPU": 1}
    assert dask_executor.task_resources("cuda:1", remote=False) is None
    assert dask_executor.task_resources("cpu", remote=True) is None
    dask_executor.check_gpu_workers({})  # none yet: they may still join
    dask_executor.check_gpu_workers({"a": {"resources": {"GPU": 1}}, "b": {"resources": {}}})
    with pytest.raises(BenchError, match="--resources GPU=1"):
        dask_executor.check_gpu_workers({"a": {"resources": {}}})


def test_an_unreachable_scheduler_is_one_clear_error():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(BenchError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
            run(CELLS, kind="dask", address="tcp://127.0.0.1:9")


def test_zero_jobs_is_refused():
    with pytest.raises(BenchError, match="--jobs"):
        run(CELLS, kind="process", jobs=0)


@pytest.mark.slow
def test_cli_runs_a_grid_on_a_local_dask_cluster(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--method", "classifier", "--scheme", "uniform", "--scheme", "good-x5", "--quick"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--executor", "dask", "--jobs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(out)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert {r["config"]["scheme"] for r in records} == {"uniform", "good-x5"}


@pytest.mark.parametrize(
    "kind, jobs, address, tasks, chosen",
    [
        (None, 4, None, 10, "process"),
        (None, 4, None, 1, "local"),  # one task: no pool to start
        (None, 1, None, 10, "local"),
        (None, 1, "tcp://host:8786", 1, "dask"),  # --address implies dask
        ("local", 4, None, 10, "local"),  # --executor wins
        ("dask", 1, None, 1, "dask"),
    ],
)
def test_one_rule_chooses_the_executor_for_every_command(kind, jobs, address, tasks, chosen):
    assert choose_executor(kind, jobs, address, tasks) == chosen


def test_an_address_with_another_executor_or_an_unknown_executor_is_refused():
    with pytest.raises(BenchError, match="--address is for --executor dask"):
        choose_executor("process", 2, "tcp://host:8786", 4)
    with pytest.raises(BenchError, match="unknown executor 'proces'"):
        choose_executor("proces", 2, None, 4)


def test_a_cell_leaves_its_process_as_it_found_it_and_so_does_the_local_executor():
    """Process-wide settings belong to where a worker starts, never to a cell: no thread count,
    no deterministic-kernel switch, no global seed changes under a cell or a local grid."""
    import random

    import numpy as np
    import torch

    def state():
        return (
            torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(),
            torch.random.get_rng_state().tolist(),
            np.random.get_state()[1].tolist(),
            random.getstate(),
        )

    before = state()
    assert run_cell(CELLS[0])["status"] == "ok"
    assert state() == before
    run(CELLS[:1], kind="local", threads=2)
    assert state() == before
