"""``python -m bench export DIR --mlflow URI`` against a real MLflow store (a SQLite file in a
temporary directory, read back with ``mlflow.search_runs``): one experiment per study, a parent run
with the report, one run per cell with its config, metrics, curves and tags; a tuning's trials;
and exporting again (also after ``--resume`` added cells or a rerun fixed one) duplicates nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers_records import record

from bench.cli import main
from bench.grid.store import RESULTS_FILE, load_records
from bench.report import write_report

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "fashion-mnist-cnn-3x-steps"


@pytest.fixture(scope="module")
def mlflow():
    """MLflow, imported once for the module (its import takes seconds)."""
    import mlflow

    return mlflow


@pytest.fixture
def store(tmp_path, mlflow):
    """A fresh SQLite store: ``(uri, client)``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, mlflow.MlflowClient(uri)


def export(path: Path, uri: str, capsys, *extra: str) -> str:
    assert main(["export", str(path), "--mlflow", uri, *extra]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def runs(mlflow, uri: str, experiment: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment])


def experiments(client) -> list:
    """The experiments an export made (MLflow's own ``Default`` aside)."""
    return [e for e in client.search_experiments() if e.name != "Default"]


def cell_record(method: str, scheme: str, seed: int, accuracy: float, **kw) -> dict:
    """A record with the optional parts an export reads: curves, environment, times."""
    rec = record(method, scheme, seed, accuracy, **kw)
    if rec["status"] == "ok":
        rec["health"] = {
            "effective_rank": 5.0,
            "pc1_share": 0.3,
            "final_loss": 0.4,
            "collapse_loss": 1.0,
            "signs": {"one_direction": False, "low_rank": False, "stuck_loss": False},
            "collapsed": False,
            "loss_curve": {"step": [10, 20, 30], "loss": [1.5, 0.9, 0.4]},
        }
        rec["checkpoint"] = {
            "selected_step": 20,
            "val_accuracy": 0.8,
            "step": [10, 20, 30],
            "accuracy": [0.7, 0.8, 0.75],
        }
    rec["env"] = {
        "git_commit": "0123abcd",
        "cpu": "Test CPU",
        "threads": 1,
        "torch": "2.13.0",
        "device": "cpu",
    }
    rec["started_at"], rec["finished_at"] = "2026-01-02T03:04:05+00:00", "2026-01-02T03:05:00+00:00"
    return rec


def write_run(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / RESULTS_FILE, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    write_report(run_dir)
    return run_dir


def test_a_committed_run_exported_twice_is_one_run_per_cell(store, mlflow, capsys):
    uri, _ = store
    hashes = {r.hash for r in load_records(COMMITTED)}
    first = export(COMMITTED, uri, capsys, "--experiment", "cnn")
    assert f"{len(hashes)} run(s): {len(hashes)} new, 0 replaced, 0 unchanged" in first
    (experiment,) = [e.name for e in experiments(mlflow.MlflowClient(uri))]
    assert experiment.startswith("cnn: fashion-mnist · trunk cnn")
    before = runs(mlflow, uri, experiment)
    second = export(COMMITTED, uri, capsys, "--experiment", "cnn")
    assert f"{len(hashes)} run(s): 0 new, 0 replaced, {len(hashes)} unchanged" in second
    after = runs(mlflow, uri, experiment)
    cells = after[after["tags.bench.kind"] == "cell"]
    assert len(after) == len(hashes) + 1 and sorted(cells["tags.bench.cell_hash"]) == sorted(hashes)
    assert sorted(after["run_id"]) == sorted(before["run_id"])


def test_a_cells_run_carries_its_config_metrics_curves_and_tags(tmp_path, store, mlflow, capsys):
    uri, client = store
    cells = [
        cell_record(m, "uniform", seed, 0.9 - 0.01 * seed)
        for m in ("siamese", "classifier")
        for seed in (0, 1)
    ]
    failed = cell_record("siamese", "good-x5", 0, 0.0, status="failed")
    run_dir = write_run(tmp_path / "quick", [*cells, failed])
    export(run_dir, uri, capsys)
    (experiment,) = experiments(client)
    assert experiment.name.startswith("quick: inspection · trunk mlp, 100 steps")
    found = runs(mlflow, uri, experiment.name)
    assert sorted(found["tags.bench.kind"]) == ["cell"] * 5 + ["study"]
    parent = found[found["tags.bench.kind"] == "study"].iloc[0]
    assert parent["params.config.budget.steps"] == "100" and parent["params.config.dataset"] == "inspection"

    rec = cells[1]  # siamese, seed 1
    run = found[found["tags.bench.cell_hash"] == rec["hash"]].iloc[0]
    assert run["tags.mlflow.parentRunId"] == parent["run_id"] and run["status"] == "FINISHED"
    assert run["tags.mlflow.runName"] == "siamese · uniform · seed 1"
    assert run["params.config.method"] == "siamese" and run["params.config.seed"] == "1"
    assert run["metrics.metrics.accuracy"] == pytest.approx(0.89)
    assert run["metrics.metrics.escape_rate"] == pytest.approx(0.1)
    assert run["metrics.timing.train_s"] == 1.0 and run["metrics.checkpoint.selected_step"] == 20
    assert run["tags.bench.git_commit"] == run["tags.mlflow.source.git.commit"] == "0123abcd"
    assert json.loads(run["tags.bench.machine_fingerprint"])["cpu"] == "Test CPU"
    assert len(run["tags.bench.machine"]) == 12
    loss = client.get_metric_history(run["run_id"], "train_loss")
    assert [(m.step, m.value) for m in loss] == [(10, 1.5), (20, 0.9), (30, 0.4)]
    val = client.get_metric_history(run["run_id"], "val_accuracy")
    assert [(m.step, m.value) for m in val] == [(10, 0.7), (20, 0.8), (30, 0.75)]

    bad = found[found["tags.bench.cell_hash"] == failed["hash"]].iloc[0]
    assert bad["status"] == "FAILED" and bad["tags.bench.error"] == "RuntimeError: deliberate"

    files = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert files == {"report.md", "summary.csv", "plots"}
    assert {a.path for a in client.list_artifacts(parent["run_id"], "plots")} == {
        f"plots/{p.name}" for p in (run_dir / "plots").glob("*.png")
    }
    summary = Path(mlflow.artifacts.download_artifacts(run_id=parent["run_id"], artifact_path="summary.csv"))
    assert summary.read_text().count("\n") == 3  # header, siamese x uniform, classifier x uniform


def test_resumed_and_rerun_cells_add_runs_without_duplicates(tmp_path, store, mlflow, capsys):
    uri, client = store
    failed = cell_record("siamese", "good-x5", 0, 0.0, status="failed")
    run_dir = write_run(tmp_path / "run", [cell_record("siamese", "uniform", 0, 0.9), failed])
    export(run_dir, uri, capsys)
    # --resume adds a seed; a rerun of the failed cell succeeds (same hash, a later ok record).
    write_run(run_dir, [cell_record("siamese", "uniform", 1, 0.8), cell_record("siamese", "good-x5", 0, 0.7)])
    out = export(run_dir, uri, capsys)
    assert "3 run(s): 1 new, 1 replaced, 1 unchanged" in out
    (experiment,) = experiments(client)
    found = runs(mlflow, uri, experiment.name)
    cells = found[found["tags.bench.kind"] == "cell"]
    assert len(cells) == 3 and cells["tags.bench.cell_hash"].is_unique
    assert set(cells["status"]) == {"FINISHED"}
    assert set(cells["tags.mlflow.parentRunId"]) == set(
        found.loc[found["tags.bench.kind"] == "study", "run_id"]
    )
    assert "3 run(s): 0 new, 0 replaced, 3 unchanged" in export(run_dir, uri, capsys)


def test_a_tuning_is_one_run_per_trial_with_its_state_and_parameters(tmp_path, store, mlflow, capsys):
    import optuna

    from bench.tune.study import STUDY_FILE, open_storage

    uri, client = store
    tune_dir = tmp_path / "tune-quick"
    tune_dir.mkdir()
    (tune_dir / "tuning.md").write_text("# Tuning\n")
    storage = open_storage(tune_dir / STUDY_FILE)
    study = optuna.create_study(study_name="siamese", storage=storage, direction="maximize")
    study.set_user_attr("settings", {"method": "siamese", "objective": "accuracy", "seeds": [1000]})

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.report(0.5, 10)
        trial.report(0.6, 20)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise RuntimeError("deliberate")
        return 0.7 + lr

    study.optimize(objective, n_trials=3, catch=(RuntimeError,))
    experiment = "tune-quick: tuning"
    assert "3 run(s): 3 new" in export(tune_dir, uri, capsys)
    found = runs(mlflow, uri, experiment)
    trials = found[found["tags.bench.kind"] == "trial"].sort_values("tags.bench.trial_number")
    assert sorted(found["tags.bench.kind"]) == ["study", "trial", "trial", "trial", "tuning"]
    assert trials["tags.bench.state"].tolist() == ["COMPLETE", "PRUNED", "FAIL"]
    assert trials["status"].tolist() == ["FINISHED", "KILLED", "FAILED"]
    first = trials.iloc[0]
    assert float(first["params.lr"]) == pytest.approx(study.trials[0].params["lr"])
    assert first["metrics.value"] == pytest.approx(study.trials[0].value)
    curve = client.get_metric_history(first["run_id"], "intermediate_value")
    assert [(m.step, m.value) for m in curve] == [(10, 0.5), (20, 0.6)]
    study_run = found[found["tags.bench.kind"] == "study"].iloc[0]
    assert study_run["params.objective"] == "accuracy" and set(trials["tags.mlflow.parentRunId"]) == {
        study_run["run_id"]
    }
    top = found[found["tags.bench.kind"] == "tuning"].iloc[0]
    assert {a.path for a in client.list_artifacts(top["run_id"])} == {"tuning.md"}

    assert "3 run(s): 0 new, 0 replaced, 3 unchanged" in export(tune_dir, uri, capsys)
    study.optimize(lambda t: 0.5 + 0 * t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=1)
    assert "4 run(s): 1 new, 0 replaced, 3 unchanged" in export(tune_dir, uri, capsys)
    assert len(runs(mlflow, uri, experiment)) == 6


def test_a_study_directory_exports_its_tuning_and_its_final_runs(tmp_path, store, mlflow, capsys):
    """``bench study`` leaves DIR/tune (a journal) and DIR/final (records): both are exported."""
    import optuna

    from bench.tune.study import STUDY_FILE, open_storage

    uri, client = store
    (tmp_path / "study" / "tune").mkdir(parents=True)
    study = optuna.create_study(
        study_name="siamese", storage=open_storage(tmp_path / "study" / "tune" / STUDY_FILE)
    )
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2), n_trials=2)
    write_run(tmp_path / "study" / "final", [cell_record("siamese", "uniform", 0, 0.9)])
    out = export(tmp_path / "study", uri, capsys)
    assert "study/tune: tuning / siamese: 2 run(s): 2 new" in out
    assert "study/final: inspection" in out and "1 run(s): 1 new" in out
    assert sorted(e.name.split(":")[0] for e in experiments(client)) == ["study/final", "study/tune"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["export", "{run}"], "choose where to export: --mlflow [URI]"),
        (["export", "no/such/dir", "--mlflow", "{uri}"], "no/such/dir is not a run directory"),
        (["export", "{run}", "--mlflow", "{uri}"], "MLflow is not installed: pip install -e '.[mlflow]'"),
        (["export", "{blank}", "--mlflow", "{uri}"], "holds no readable records"),
    ],
)
def test_export_bad_input_is_one_line_and_exit_2(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / RESULTS_FILE).write_text("")
    paths = {
        "run": str(COMMITTED),
        "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "blank": str(tmp_path / "blank"),
    }
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err
    assert not (tmp_path / "mlflow.db").exists()
