"""The runner end to end: real training on small data, real files, real subprocesses."""

import json
import subprocess
import sys
from functools import partial

import pytest
from helpers_processes import run_bench

from bench.cli import main
from bench.core.errors import BenchError
from bench.grid.store import read_records
from methods import registry
from methods.base import EmbeddingMethod

QUICK = ["--quick", "--steps", "20"]


bench = partial(run_bench, check=True)


@pytest.mark.slow
def test_run_all_quick_writes_every_cell_and_a_report(tmp_path):
    out = tmp_path / "run"
    proc = bench("run", "--all", "--quick", "--out", str(out))
    records = read_records(out)
    cells = {(r["config"]["method"], r["config"]["scheme"]) for r in records}
    assert len(records) == 20 and len(cells) == 20
    assert {m for m, _ in cells} == {"siamese", "mean-anchor-triplet", "mined-triplet", "classifier"}
    assert {s for _, s in cells} == {"uniform", "natural", "sqrt", "good-x5", "effective-number"}
    assert all(r["status"] == "ok" for r in records)
    r = records[0]
    for key in ("schema_version", "hash", "config", "metrics", "timing", "sampling", "env"):
        assert key in r
    assert set(r["timing"]) >= {"train_s", "train_images_per_s", "embed_images_per_s", "fit_eval_peak_rss_mb"}
    assert r["sampling"]["anchor_counts"].keys() == set(r["dataset"]["classes"])
    assert (out / "report.md").exists() and (out / "config.toml").exists()
    assert "accuracy" in proc.stdout  # the closing method x scheme table


def test_resume_reruns_nothing_that_finished(tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "--method",
        "classifier",
        "--scheme",
        "uniform",
        "--scheme",
        "good-x5",
        *QUICK,
        "--out",
        str(out),
    ]
    bench(*args)
    first = (out / "results.jsonl").read_text()
    proc = bench(*args, "--resume")
    assert (out / "results.jsonl").read_text() == first
    assert "skipped 2" in proc.stdout


def test_rerunning_into_a_finished_directory_without_resume_is_refused(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--method", "classifier", "--scheme", "uniform", *QUICK, "--out", str(out)]
    bench(*args)
    before = (out / "results.jsonl").read_text()
    proc = bench(*args, check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "results.jsonl").read_text() == before


class AlwaysFails(EmbeddingMethod):
    """A method whose fit raises: stands for any cell that breaks."""

    def fit(self, train, val=None, plan=None, budget=None, seed=0, device="cpu", progress=None):
        raise RuntimeError("deliberate failure for the test")


def test_a_failing_cell_is_recorded_while_the_others_complete(tmp_path, monkeypatch):
    # Registered for this test only, so the registry-wide contract tests never see it.
    monkeypatch.setitem(registry.METHODS.entries, "always-fails", AlwaysFails)
    out = tmp_path / "run"
    # In this process: worker processes would not see the test-only registration.
    code = main(
        [
            "run",
            "--method",
            "always-fails",
            "--method",
            "classifier",
            "--scheme",
            "uniform",
            *QUICK,
            "--executor",
            "local",
            "--out",
            str(out),
        ]
    )
    assert code == 1
    records = {r["config"]["method"]: r for r in read_records(out)}
    assert records["classifier"]["status"] == "ok"
    assert records["always-fails"]["status"] == "failed"
    assert "deliberate failure" in records["always-fails"]["error"]
    assert "deliberate failure" in (out / "report.md").read_text()


# The cell of the determinism test (budget and dataset options as CellConfig fields).
RUN_SEEDS_CELL = json.dumps(
    {
        "dataset": "inspection",
        "method": "mined-triplet",
        "scheme": "sqrt",
        "seed": 0,
        "budget": {"steps": 20, "batch_images": 96},
        "dataset_options": {"n_per_defect": 30},
    }
)
RUN_SEEDS = f"""
import json, sys
from bench.grid.config import CellConfig
from bench.grid.executors import WorkerSettings
from bench.grid.runner import run_cell
WorkerSettings(threads=1).apply()  # what an executor's worker starts with
for seed in sys.argv[1:]:
    cell = CellConfig.from_dict({{**json.loads({RUN_SEEDS_CELL!r}), "seed": int(seed)}})
    print(json.dumps(run_cell(cell), sort_keys=True))
"""


def test_a_seed_gives_the_same_record_in_separate_processes_and_another_seed_a_different_one():
    """A fresh process, under a fixed hash seed, runs seed 0 then seed 1; this (warm) test process
    runs seed 1 then seed 0. Each seed's record is the same in both, bit for bit, apart from
    timing and clock, whether it ran first or second; seed 1's differs from seed 0's (its split,
    initialization and draws)."""
    import os

    from bench.grid.config import CellConfig
    from bench.grid.executors import WorkerSettings
    from bench.grid.runner import run_cell

    child = subprocess.Popen(
        [sys.executable, "-c", RUN_SEEDS, "0", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    cells = {seed: CellConfig.from_dict({**json.loads(RUN_SEEDS_CELL), "seed": seed}) for seed in (0, 1)}
    with WorkerSettings(threads=1).applied():
        here = {seed: run_cell(cells[seed]) for seed in (1, 0)}
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err[-3000:]
    there = dict(enumerate(json.loads(line) for line in out.splitlines()))
    varying = {"timing", "started_at", "finished_at"}

    def measured(record):
        return json.dumps({k: v for k, v in record.items() if k not in varying}, sort_keys=True)

    assert {r["status"] for r in (*here.values(), *there.values())} == {"ok"}
    assert measured(here[0]) == measured(there[0]) and measured(here[1]) == measured(there[1])
    for key in ("metrics", "embedding_2d", "sampling"):
        assert here[1][key] != here[0][key], key


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "--method", "siamse"], "did you mean 'siamese'"),
        (["run", "--all", "--scheme", "good-x"], "malformed scheme"),
        (["run", "--all", "--dataset", "digitz"], "did you mean 'digits'"),
        (["run", "--all", "--trunk", "mpl"], "did you mean 'mlp'"),
        (["run", "--all", "--device", "cuda:0"], "CUDA"),
        (["run"], "nothing to run"),
        (["report", "/nonexistent/run"], "no results.jsonl"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path):
    import torch

    if "cuda:0" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main([*argv, "--out", str(tmp_path / "x")] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bench_error_is_not_a_traceback_from_a_subprocess():
    proc = bench("run", "--method", "nope", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown method 'nope'")
    assert BenchError.__name__ not in proc.stderr
