"""The inspection set's recommended parameters (issue 27 B): the main job (``bench run --all``)
runs what the committed tuning chose, the shipped copy cannot drift from that tuning, and an
explicit ``--params-from``, a method's own parameters or another set-up take precedence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main, params_from
from bench.cli.params_from import TUNED_BUDGET, TUNED_FOR
from bench.datasets.inspection import INSPECTION_TUNING
from bench.datasets.recommended import recommended_for
from bench.grid.config import GridConfig, load_written_grid
from bench.grid.store import read_records
from bench.tune.outputs import TUNED_FILE

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "recommended for inspection, from " + INSPECTION_TUNING


def shipped() -> GridConfig:
    return GridConfig(**load_written_grid(recommended_for("inspection").path))


def test_the_shipped_parameters_are_the_committed_tunings():
    """The copy in the package equals ``INSPECTION_TUNING/tuned.toml``: after a new tuning,
    repoint the constant and copy its tuned.toml over the shipped file."""
    rec = recommended_for("inspection")
    assert rec is not None and rec.tuned_in == INSPECTION_TUNING and rec.path.is_file()
    tuning = GridConfig(**load_written_grid(ROOT / INSPECTION_TUNING / TUNED_FILE))
    ours = shipped()
    assert ours.method_params == tuning.method_params
    assert ours.params_source == tuning.params_source
    for name in TUNED_FOR:
        assert getattr(ours, name) == getattr(tuning, name), name
    assert all(getattr(ours.budget, k) == getattr(tuning.budget, k) for k in TUNED_BUDGET)
    assert recommended_for("digits") is None


def test_the_main_job_resolves_to_the_recommended_parameters(capsys):
    assert main(["run", "--all", "--dry-run"]) == 0
    text = capsys.readouterr().out
    for method, params in shipped().method_params.items():
        assert f'[method_params."{method}"]' in text
        assert f"lr = {params['lr']}" in text
        assert f'"{method}" = "{SOURCE}: trial ' in text


@pytest.mark.parametrize(
    ("flags", "note"),
    [
        (["--trunk", "cnn"], "were tuned with trunk 'mlp', this run has 'cnn'"),
        (["--steps", "100"], "were tuned with budget steps 600, this run has 100"),
        (["--dataset", "digits"], None),
        (["--quick"], None),
    ],
)
def test_another_set_up_runs_the_defaults(flags, note, capsys):
    assert main(["run", "--all", *flags, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "method_params" not in out and "recommended" not in out
    assert (note is None and "recommended parameters" not in err) or (
        note in err and "at their defaults" in err
    )


def test_params_from_and_a_methods_own_parameters_win(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('[method_params."siamese"]\nmargin = 0.5\n')
    assert main(["run", "--all", "--config", str(config), "--dry-run"]) == 0
    text = capsys.readouterr().out
    siamese = text.split('[method_params."siamese"]')[1].split("\n\n")[0]
    assert siamese.strip() == "margin = 0.5"
    assert '"classifier" = "recommended for inspection' in text  # the others keep theirs
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / TUNED_FILE).write_text((ROOT / INSPECTION_TUNING / TUNED_FILE).read_text())
    assert main(["run", "--all", "--params-from", str(tune), "--dry-run"]) == 0
    assert "recommended for" not in capsys.readouterr().out


def test_the_main_jobs_records_carry_the_recommended_parameters(tmp_path, monkeypatch):
    """The main job in small (the recommended set-up cut to 20 steps of 24 images on 20 images a
    defect, so the run matches it): every record holds the recommended parameters and names
    where they came from."""
    real = params_from.recommended_grid

    def small(dataset):
        found = real(dataset)
        if found is None:
            return None
        rec, grid = found
        budget = replace(grid.budget, steps=20, batch_images=24)
        return rec, replace(grid, budget=budget, dataset_options={"n_per_defect": 20})

    monkeypatch.setattr(params_from, "recommended_grid", small)
    out = tmp_path / "main"
    config = tmp_path / "small.toml"
    config.write_text("[dataset_options]\nn_per_defect = 20\n")
    argv = [
        "run",
        "--all",
        "--config",
        str(config),
        "--scheme",
        "uniform",
        "--seed",
        "0",
        "--steps",
        "20",
        "--batch-images",
        "24",
    ]
    assert main([*argv, "--executor", "local", "--out", str(out)]) == 0
    records = {r["config"]["method"]: r for r in read_records(out)}
    expected = shipped().method_params
    assert set(records) == set(expected)
    for method, params in expected.items():
        assert {k: records[method]["params"][k] for k in params} == params
        assert records[method]["params_source"].startswith(f"{SOURCE}: trial ")
    assert "- **Parameters from:** " in (out / "report.md").read_text()
    assert f"recommended for inspection, from {INSPECTION_TUNING}" in (out / "report.md").read_text()
