"""The evaluation protocol: a test split fixed per split seed that tuning never scores, old run
directories resuming as the grid they are, ``--params-from`` taking what a tuning fixed, the
suggested commands running as printed, and ``--dry-run`` checking the data. Digits, tiny budgets."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_processes import run_bench

from bench.cli import main
from bench.grid.config import CellConfig, GridConfig
from bench.grid.runner import prepare_cell
from bench.grid.store import RESULTS_FILE, read_records
from bench.tune.config import TuneConfig, tune_seeds
from bench.tune.objective import trial_cells
from tests.helpers_records import record

ROOT = Path(__file__).resolve().parents[1]
TINY_GRID = ["--dataset", "digits", "--steps", "20", "--batch-images", "24"]


bench = run_bench  # ``python -m bench ARGS`` in a real process, as a user runs it


# ----------------------------------------------------------------- item 1: tuning never scores a test image


def test_no_image_a_tuning_scores_is_a_test_image_of_any_final_seed():
    """Tuning seeds 1000.. and final seeds 0..19 of the default grid on the inspection set: the
    images a trial embeds (training references, validation queries) are never final test images."""
    grid = GridConfig(methods=("classifier",), schemes=("uniform",), seeds=tuple(range(20)))
    tuning = TuneConfig(grid=replace(grid, seeds=(0,)), seeds=tune_seeds(4))
    seen = set()
    for cell in trial_cells(tuning, "classifier", {}):
        splits, _ = prepare_cell(cell)
        seen |= set(splits.val.index.tolist()) | set(splits.train.index.tolist())
    tests, vals = set(), set()
    for cell in grid.cells():
        splits, _ = prepare_cell(cell)
        tests.add(tuple(splits.test.index.tolist()))
        vals.add(tuple(splits.val.index.tolist()))
    tested = {i for test in tests for i in test}
    assert not seen & tested  # older protocol: 157 / 174 / 161 of seeds 0 / 1 / 2's 575 test images
    assert len(tests) == 1 and len(tested) == 575  # one test split for every final seed
    assert len(vals) == 20  # the seeds still draw their own validation images


def test_a_seed_equal_to_its_split_seed_gives_the_older_split_exactly():
    from bench.datasets import load_dataset, split_dataset

    data = load_dataset("digits")
    for seed in (0, 3):
        old, new = split_dataset(data, seed=seed), split_dataset(data, seed=seed, split_seed=seed)
        for part in ("train", "val", "test"):
            assert getattr(old, part).index.tolist() == getattr(new, part).index.tolist()


def test_reports_say_which_protocol_made_their_records(no_plots, tmp_path):
    from bench.report.build import render_report

    old = [record("classifier", "uniform", s, 0.9, split_seed=None) for s in (0, 1)]
    new = [record("classifier", "uniform", s, 0.9) for s in (0, 1)]
    assert "split_seed" not in old[0]["config"] or old[0]["config"]["split_seed"] is None
    assert "**Test split:** varied with the seed (older protocol)" in render_report(old, tmp_path)
    assert "**Test split:** fixed by split seed 0" in render_report(new, tmp_path)


# ----------------------------------------------------------------- item 12: old run directories


def test_an_old_run_directory_resumes_as_the_grid_it_is(tmp_path):
    """A directory written before ``inputs`` and ``split_seed`` existed (raw pixels, per-seed
    test splits): ``--resume --out DIR`` recognises every cell, and the command an error
    message recommends runs as printed."""
    out = tmp_path / "old"
    grid = ["--method", "classifier", "--scheme", "uniform", *TINY_GRID, "--seeds", "2"]
    assert main(["run", *grid, "--inputs", "raw", "--executor", "local", "--out", str(out)]) == 0
    # What such a directory holds: no inputs or split_seed in config.toml or in the records.
    config = out / "config.toml"
    config.write_text("".join(x for x in config.open() if not x.startswith(("inputs", "split_seed"))))
    lines = []
    for rec in read_records(out):  # as version-1 records
        config = {k: v for k, v in rec["config"].items() if k not in ("inputs", "split_seed")}
        cell = CellConfig.from_dict({**config, "inputs": "raw", "split_seed": None})
        lines.append(json.dumps({**rec, "schema_version": 1, "config": config, "hash": cell.hash}))
    (out / RESULTS_FILE).write_text("\n".join(lines) + "\n")

    refused = bench("run", *grid, "--inputs", "pixel", "--resume", "--out", str(out))
    assert refused.returncode == 2 and "differs in inputs" in refused.stderr, refused.stderr
    command = re.search(r"`python -m bench (run [^`]*)`", refused.stderr).group(1)
    assert command == f"run --resume --out {out}"  # the directory's own grid
    again = bench(*shlex.split(command))
    assert again.returncode == 0 and "skipped 2 finished cell(s)" in again.stdout, again.stderr
    assert len(read_records(out)) == 2


# ----------------------------------------------------------------- item 5 and issue 27: --params-from


@pytest.fixture(scope="module")
def tuning(tmp_path_factory) -> Path:
    """A finished two-trial tuning of the classifier on digits (20 steps of 24 images)."""
    out = tmp_path_factory.mktemp("protocol") / "tune"
    args = ["tune", "--method", "classifier", *TINY_GRID, "--tune-seeds", "1", "--trials", "2"]
    assert main([*args, "--executor", "local", "--out", str(out)]) == 0
    return out


def test_params_from_takes_the_data_and_budget_of_the_tuning(tuning, capsys):
    capsys.readouterr()
    assert main(["run", "--method", "classifier", "--params-from", str(tuning), "--dry-run"]) == 0
    text = capsys.readouterr().out
    for line in (
        'dataset = "digits"',
        "steps = 20",
        "batch_images = 24",
        'inputs = "pixel"',
        "split_seed = 0",
    ):
        assert line in text


def test_params_from_refuses_a_tuning_made_with_other_inputs(tuning):
    # the tuning's grid given in full but for the inputs (which older code accepted)
    grid = ["--method", "classifier", *TINY_GRID, "--params-from", str(tuning)]
    done = bench("run", *grid, "--inputs", "raw", "--dry-run")
    assert done.returncode == 2 and "tuned with inputs 'pixel', this run has 'raw'" in done.stderr, (
        done.stderr
    )


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--headline-rule", "knn1"], "headline_rule"),
        (["--cost-escape", "5"], "cost_escape"),
        (["--cost-overkill", "2"], "cost_overkill"),
        (["--good-share", "0.9"], "good_share"),
        (["--split-seed", "1"], "split_seed"),
        (["--trunk", "cnn"], "trunk"),
        (["--dataset", "inspection"], "dataset"),
    ],
)
def test_params_from_refuses_other_scoring_and_data_naming_the_field(tuning, flags, field, capsys):
    capsys.readouterr()
    grid = ["--method", "classifier", *TINY_GRID, "--params-from", str(tuning)]
    assert main(["run", *grid, *flags, "--dry-run"]) == 2
    assert f"tuned with {field} " in capsys.readouterr().err


def suggested(tuning: Path) -> list[list[str]]:
    """The commands ``tuning.md`` suggests (the same as ``tuned.toml``'s), as argv after ``python -m bench``."""
    text = (tuning / "tuning.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    header = (tuning / "tuned.toml").read_text().splitlines()
    assert commands == [x[len("# Run them: ") :] for x in header if x.startswith("# Run them: ")]
    assert len(commands) == 2
    argvs = [shlex.split(c) for c in commands]
    assert all(argv[:3] == ["python", "-m", "bench"] for argv in argvs)
    return [argv[3:] for argv in argvs]


def test_every_command_a_tuning_suggests_resolves_as_printed(tuning):
    """Each suggested command, from the directory the tuning ran in, resolves its grid, loads and
    splits the data and checks every cell short of training (``--dry-run``)."""
    for argv in suggested(tuning):
        done = bench(*argv, "--dry-run", cwd=tuning.parent)
        assert done.returncode == 0, (argv, done.stderr)
        assert 'dataset = "digits"' in done.stdout and "steps = 20" in done.stdout


@pytest.mark.slow
def test_every_command_a_tuning_suggests_runs_as_printed(tuning):
    """The same commands, run as printed (40 cells of 20 steps: about a minute on 2 cores)."""
    for argv in suggested(tuning):
        done = bench(*argv, cwd=tuning.parent)
        assert done.returncode == 0, (argv, done.stderr)
    runs = sorted((tuning.parent / "results").iterdir())
    assert len(runs) == 2 and all((run / "report.md").is_file() for run in runs)


# ----------------------------------------------------------------- issue 27: --dry-run checks the data


def test_dry_run_loads_the_data_and_prints_classes_good_class_and_split_counts(capsys):
    missing = bench("run", "--all", "--dataset", "/no/such", "--dry-run")
    assert missing.returncode == 2 and "unknown dataset '/no/such'" in missing.stderr
    assert main(["run", "--method", "classifier", "--dataset", "digits", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "# dataset digits: 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)" in text
    assert "# good class: '0'" in text
    assert "train 1078, val 269, test 450 images; test split fixed by split seed 0" in text
