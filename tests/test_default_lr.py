"""Per-method default learning rates (issue 27 A): a grid without a budget ``lr`` trains each
method at its own ``default_lr``, named in each cell and record; an explicit budget ``lr``
(``--lr``, ``[budget] lr``) still applies to every method alike, and every record made before
keeps its hash and reruns as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.grid.config import GridConfig, load_written_grid
from bench.grid.runner import run_cell
from bench.grid.store import load_records
from bench.sampling.budget import LR_SEARCH_RANGE, Budget
from bench.tune.config import TuneConfig
from bench.tune.study import default_params
from methods import get_method_class, list_methods

ROOT = Path(__file__).resolve().parents[1]
TRAINED = [m for m in list_methods(label_free=False)]
#: The built-in rates (docs/methods.md says how they were chosen from the committed tunings).
CHOSEN = {"classifier": 1e-3, "siamese": 1.5e-4, "mean-anchor-triplet": 2e-4, "mined-triplet": 2e-4}


def test_each_builtin_method_has_the_rate_the_tunings_chose_inside_the_search_range():
    for name, lr in CHOSEN.items():
        assert get_method_class(name).default_lr == lr
    for name in TRAINED:
        assert LR_SEARCH_RANGE[0] <= get_method_class(name).default_lr <= LR_SEARCH_RANGE[1]


def test_a_grid_without_a_budget_lr_gives_each_cell_its_methods_rate():
    grid = GridConfig(methods=(*CHOSEN, "knn-distance"), schemes=("uniform",))
    assert grid.budget.lr is None and "lr" not in grid.budget.to_dict()
    params = {cell.method: cell.params_dict for cell in grid.cells()}
    assert {m: params[m]["lr"] for m in CHOSEN} == CHOSEN
    assert params["knn-distance"] == {}  # trains nothing: no rate
    own = GridConfig(methods=("siamese",), schemes=("uniform",), method_params={"siamese": {"lr": 5e-4}})
    assert own.cells()[0].params_dict == {"lr": 5e-4}  # a method's own lr wins


def test_an_explicit_budget_lr_applies_to_every_method_alike(capsys):
    grid = GridConfig(methods=tuple(CHOSEN), schemes=("uniform",), budget=Budget(lr=1e-3))
    assert all(cell.params_dict == {} and cell.budget.lr == 1e-3 for cell in grid.cells())
    assert main(["run", "--method", "siamese", "--dataset", "digits", "--lr", "0.002", "--dry-run"]) == 0
    assert "lr = 0.002" in capsys.readouterr().out


def test_a_fit_without_a_rate_trains_at_the_default_and_the_record_names_it():
    grid = GridConfig(
        methods=("siamese",),
        schemes=("uniform",),
        dataset="digits",
        budget=Budget(steps=5, batch_images=24),
    )
    record = run_cell(grid.cells()[0])
    assert record["status"] == "ok", record.get("error")
    assert record["params"]["lr"] == 1.5e-4
    method = get_method_class("siamese")()
    from bench.datasets import load_dataset

    data = load_dataset("digits")
    method.fit(data, budget=Budget(steps=2, batch_images=24))
    assert method.budget_.lr == 1.5e-4


def test_a_tuning_starts_each_method_at_its_default_rate():
    config = TuneConfig(grid=GridConfig(methods=("siamese",), schemes=("uniform",)), trials=2)
    assert default_params(get_method_class("siamese"), config, "siamese")["lr"] == 1.5e-4
    fixed = TuneConfig(grid=GridConfig(methods=("siamese",), schemes=("uniform",), budget=Budget(lr=1e-3)))
    assert default_params(get_method_class("siamese"), fixed, "siamese")["lr"] == 1e-3


@pytest.mark.parametrize("run", ["inspection", "digits", "fashion-mnist-mlp", "fashion-mnist-cnn"])
def test_committed_runs_keep_their_cells(run):
    """A committed run's grid (its ``config.toml``, made with lr 0.001 for all) still makes the
    cells its records hold: their hashes are unchanged, so ``--resume`` skips them and ``rerun``
    trains them as they were trained."""
    directory = ROOT / "results" / run
    grid = GridConfig(**load_written_grid(directory / "config.toml"))
    records = {r.hash: r for r in load_records(directory)}
    assert grid.budget.lr == 1e-3
    for cell in grid.cells():
        assert cell.hash in records
        assert records[cell.hash].config == cell
