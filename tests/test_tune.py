"""The tuning stage: equal trials per method, resume after kill -9, tuned parameters reaching
the final run's records, and a test split the tuning never touches. Tiny budgets on digits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bench.cli import main
from bench.cli.main import _parser
from bench.datasets.image_set import Splits
from bench.grid.config import load_grid_toml
from bench.grid.store import read_records
from bench.sampling.budget import LR_SEARCH_RANGE
from bench.tune.study import STUDY_FILE, open_storage, suggest_params, trial_counts
from methods import create_method, get_method_class, list_methods
from methods.base import EmbeddingMethod

TINY = ["--dataset", "digits", "--steps", "20", "--batch-images", "24", "--tune-seeds", "1"]


def studies(out: Path) -> dict[str, optuna.Study]:
    storage = open_storage(out / STUDY_FILE)
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
        for s in storage.get_all_studies()
    }


# ----------------------------------------------------------------- search spaces


@pytest.mark.parametrize("name", list_methods(label_free=False))
def test_every_search_space_names_real_hyperparameters_and_holds_the_defaults(name):
    cls = get_method_class(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = suggest_params(cls, study.ask(), {})
        assert LR_SEARCH_RANGE[0] <= params.pop("lr") <= LR_SEARCH_RANGE[1]
        create_method(name, **params).check_params()  # every name is a hyperparameter, every value usable
    defaults = {**cls().get_params(), "lr": 1e-3}
    names = suggest_params(cls, study.ask(), {}).keys()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FixedTrial warns about a value outside the distribution
        fixed = optuna.trial.FixedTrial({k: defaults[k] for k in names})
        assert suggest_params(cls, fixed, {}) == {k: defaults[k] for k in names}


def test_a_method_without_a_search_space_is_tuned_on_the_learning_rate_alone():
    class PlugIn(EmbeddingMethod):  # a third-party method that declares nothing
        pass

    trial = optuna.create_study().ask()
    assert list(suggest_params(PlugIn, trial, {})) == ["lr"]
    assert trial.distributions == {"lr": FloatDistribution(*LR_SEARCH_RANGE, log=True)}


def test_a_search_space_suggests_each_kind_of_distribution_in_its_order():
    class PlugIn(EmbeddingMethod):
        @classmethod
        def search_space(cls):
            return {
                "k": IntDistribution(2, 8, step=2),
                "p": FloatDistribution(0.0, 1.0, step=0.25),
                **super().search_space(),
                "kind": CategoricalDistribution(("a", "b")),
            }

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    params = suggest_params(PlugIn, trial, {"kind": "b"})
    assert list(params) == ["k", "p", "lr", "kind"] and params["kind"] == "b"
    assert params["k"] in (2, 4, 6, 8) and params["p"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert trial.distributions == PlugIn.search_space()


@pytest.mark.parametrize("tuning", ["tune-digits", "tune-inspection"])
def test_the_committed_journals_hold_the_declared_search_spaces(tuning, tmp_path):
    """Every trial of the committed tunings was suggested from the space each method declares
    now, in its order and of the same kinds; ranges have only widened since (the learning rate's
    floor and the triplet margins, whose best values sat at the older edges)."""
    journal = tmp_path / STUDY_FILE
    journal.write_bytes((Path(__file__).resolve().parents[1] / "results" / tuning / STUDY_FILE).read_bytes())
    for name, study in studies(tmp_path).items():
        space = get_method_class(name).search_space()
        for trial in study.trials:
            assert list(trial.distributions) == [k for k in space if k in trial.distributions]
            for key, then in trial.distributions.items():
                now = space[key]
                assert type(then) is type(now) and getattr(then, "log", None) == getattr(now, "log", None)
                if isinstance(now, CategoricalDistribution):
                    assert then == now
                else:
                    assert now.low <= then.low and then.high <= now.high


def test_tune_takes_every_grid_flag_of_run():
    def options(command: str) -> set[str]:
        sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
        return {s for a in sub._actions for s in a.option_strings}

    seed_target = {"--target-ci", "--target-diff-ci", "--against", "--target-metric", "--max-seeds"}
    # --force: a run directory's own grid (a tuning directory refuses another grid outright)
    run_only = {"--seeds", "--seed", "--params-from", "--dry-run", "--force", *seed_target}
    assert options("run") - run_only <= options("tune")
    assert {
        "--trials",
        "--tune-seeds",
        "--objective",
        "--jobs",
        "--executor",
        "--address",
        "--resume",
    } <= options("tune")


# ----------------------------------------------------------------- the pruner's feed


def test_probes_report_validation_scores_and_a_pruned_trial_counts_its_steps(digits_splits):
    from bench.grid.config import GridConfig
    from bench.sampling.budget import Budget
    from bench.tune.config import TuneConfig
    from bench.tune.objective import Pruned, TrialRun, run_trial

    grid = GridConfig(
        dataset="digits",
        methods=("classifier",),
        schemes=("uniform",),
        budget=Budget(steps=40, batch_images=24),
    )
    config = TuneConfig(grid=grid, trials=1, seeds=(1000, 1001))

    class Trial:  # records reports; prunes at the first check after step 45 (in the second fit)
        reports: list[tuple[int, float]] = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return self.reports[-1][0] > 45

    run = TrialRun()
    with pytest.raises(Pruned) as caught:
        run_trial(Trial(), config, "classifier", {"lr": 1e-3}, "cpu", run)
    steps = [s for s, _ in Trial.reports]
    assert steps == [
        10,
        20,
        30,
        40,
        50,
    ]  # probes every 10 steps, the first fit's end at 40, then step 10 of fit 2
    assert all(0 < v <= 1 for _, v in Trial.reports)
    assert caught.value.steps == 50 and run.steps == 50 and len(run.scores) == 1


# ----------------------------------------------------------------- equal budgets, parallel workers


def test_every_method_gets_exactly_the_same_trials_with_two_worker_processes(tmp_path):
    out = tmp_path / "tune"
    args = ["tune", "--method", "classifier", "--method", "siamese", *TINY, "--trials", "3", "--jobs", "2"]
    assert main([*args, "--executor", "process", "--out", str(out)]) == 0
    found = studies(out)
    assert sorted(found) == ["classifier", "siamese"]
    for name, study in found.items():
        trials = study.get_trials()
        assert trial_counts(study)["counted"] == 3 and len(trials) == 3
        # the defaults: the method's own rate (no --lr given)
        assert trials[0].user_attrs.get("defaults")
        assert trials[0].params["lr"] == get_method_class(name).default_lr
        assert all(t.user_attrs["steps"] > 0 for t in trials)
    tuned = load_grid_toml(out / "tuned.toml")
    assert set(tuned["method_params"]) == {"classifier", "siamese"}
    assert "| classifier | 3 |" in (out / "tuning.md").read_text()


# ----------------------------------------------------------------- resume after kill -9


def test_a_killed_tuning_resumes_to_the_same_trial_count_and_refuses_another_grid(tmp_path, capsys):
    out = tmp_path / "tune"
    args = [
        sys.executable,
        "-m",
        "bench",
        "tune",
        "--method",
        "classifier",
        "--dataset",
        "digits",
        "--steps",
        "100",
    ]
    args += [
        "--batch-images",
        "24",
        "--tune-seeds",
        "1",
        "--trials",
        "5",
        "--executor",
        "local",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        journal = out / STUDY_FILE
        text = journal.read_text() if journal.exists() else ""
        finished = text.rfind('"state":1')
        if text.count('"state":1') >= 2 and '"op_code":7' in text[finished:]:  # two done, one probed since
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.value for t in studies(out)["classifier"].get_trials() if t.state.is_finished()}
    assert len(before) >= 2
    with open(out / STUDY_FILE, "a") as fh:
        fh.write('{"op_code": 5, "worker_id": "torn')  # a write cut short by the kill

    assert main([*args[3:], "--resume"]) == 0  # resumed in this process (the kill needed a real one)
    study = studies(out)["classifier"]
    counts = trial_counts(study)
    assert counts["counted"] == 5 and counts["interrupted"] <= 1
    assert all(t.state.is_finished() for t in study.get_trials())  # the killed run's trial was closed
    assert {t.number: t.value for t in study.get_trials() if t.number in before} == before

    in_process = [*args[3:], "--resume"]
    capsys.readouterr()
    assert main([*in_process, "--steps", "50"]) == 2  # another grid's study
    assert main(in_process[:-1]) == 2  # a study, without --resume
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "holds the tuning study of another grid" in errors[0], errors


# ----------------------------------------------------------------- tuned parameters reach the run


def test_tuned_parameters_reach_the_final_runs_records_and_report(tmp_path, capsys):
    out, run_dir = tmp_path / "tune", tmp_path / "run"
    grid = [
        "--method",
        "classifier",
        "--method",
        "mean-anchor-triplet",
        "--dataset",
        "digits",
        "--steps",
        "20",
    ]
    grid += ["--batch-images", "24"]
    assert (
        main(["tune", *grid, "--tune-seeds", "1", "--trials", "2", "--executor", "local", "--out", str(out)])
        == 0
    )
    tuned = load_grid_toml(out / "tuned.toml")
    # the run's shared lr differs from every lr the tuning may pick (trial 0: 1e-3, the others: drawn)
    run = [
        "run",
        *grid,
        "--lr",
        "7e-4",
        "--scheme",
        "uniform",
        "--seeds",
        "1",
        "--executor",
        "local",
        "--out",
        str(run_dir),
    ]
    assert main([*run, "--params-from", str(out)]) == 0
    records = {r["config"]["method"]: r for r in read_records(run_dir)}
    for method, params in tuned["method_params"].items():
        assert records[method]["config"]["params"] == params
        assert records[method]["params"]["lr"] == params["lr"]  # the learning rate the fit used
        assert records[method]["params_source"].startswith(f"tuned in {out}: trial ")
    assert "**Parameters from:** `mean-anchor-triplet`: tuned in" in (run_dir / "report.md").read_text()

    # tuned.toml is itself a grid file; tuned parameters do not fit another budget
    assert main([*run[:1], "--config", str(out / "tuned.toml"), "--dry-run"]) == 0
    capsys.readouterr()
    assert main([*run, "--steps", "30", "--params-from", str(out)]) == 2
    assert "tuned with budget steps 20" in capsys.readouterr().err


# ----------------------------------------------------------------- the test split stays unseen


@pytest.mark.parametrize("objective", ["accuracy", "cost", "map_at_r"])
def test_tuning_never_embeds_or_scores_the_test_split(objective, tmp_path, monkeypatch):
    import bench.grid.runner as runner

    seen: list[bool] = []
    embed = EmbeddingMethod.embed

    def spy(self, images, *args, **kwargs):
        seen.append(bool(torch.isnan(images).any() or (images.abs() > 1e6).any()))
        return embed(self, images, *args, **kwargs)

    def values(poison: bool) -> list[float]:
        split = runner.split_dataset

        def poisoned(data, seed=0, **kw):
            s = split(data, seed=seed, **kw)
            bad = torch.full_like(s.test.images, float("nan"))
            bad[::2] = 1e9
            return Splits(s.train, s.val, replace(s.test, images=bad)) if poison else s

        monkeypatch.setattr(runner, "split_dataset", poisoned)
        out = tmp_path / f"tune-{poison}"
        args = ["tune", "--method", "classifier", *TINY, "--trials", "2", "--objective", objective]
        assert main([*args, "--executor", "local", "--out", str(out)]) == 0
        return [t.value for t in studies(out)["classifier"].get_trials()]

    monkeypatch.setattr(EmbeddingMethod, "embed", spy)
    clean = values(poison=False)
    assert seen and not any(seen)
    assert values(poison=True) == clean  # poisoned test images changed nothing
    assert not any(seen)


# ----------------------------------------------------------------- what tuning.md says


def test_tuning_report_counts_trials_and_shows_per_fit_scores_and_importances(tmp_path):
    from bench.grid.config import GridConfig
    from bench.tune.config import TuneConfig
    from bench.tune.outputs import render, summarize, tuned_grid

    config = TuneConfig(
        grid=GridConfig(dataset="digits", methods=("siamese",), schemes=("uniform",)), trials=12
    )
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="siamese", direction="maximize")
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)}
    space["margin"] = optuna.distributions.FloatDistribution(0.3, 1.6)
    for i in range(12):
        params = {"lr": 1e-4 * (1 + 2 * i), "margin": 0.3 + 0.1 * i}
        scores = [
            {"seed": 1000, "scheme": "uniform", "score": 0.5 + 0.03 * i},
            {"seed": 1001, "scheme": "uniform", "score": 0.5 + 0.01 * i},
        ]
        attrs = {"params": params, "scores": scores, "steps": 1200, "train_s": 10.0, "defaults": i == 0}
        state = optuna.trial.TrialState.PRUNED if i in (3, 4) else optuna.trial.TrialState.COMPLETE
        value = sum(s["score"] for s in scores) / 2
        trial = optuna.trial.create_trial(
            params=params,
            distributions=space,
            user_attrs=attrs,
            state=state,
            value=value if state.name == "COMPLETE" else None,
            intermediate_values={300: value},
        )
        study.add_trial(trial)
    (summary,) = summarize(storage, config)
    assert summary.counts == {"complete": 10, "pruned": 2, "failed": 0, "interrupted": 0, "counted": 12}
    assert summary.steps == 12 * 1200 and summary.best.number == 11 and summary.default.number == 0
    assert set(summary.importances) == {"lr", "margin"}
    text = render(tmp_path, config, [summary], [])
    assert (
        "| siamese | 12 | 10 | 2 | 0 | 0 | 14,400 | 120 | 0.5000 (0.5000, 0.5000) | 0.7200 (0.8300, 0.6100) | 11 |"
        in text
    )
    row = next(
        line
        for line in text.split("## Parameter importances")[1].splitlines()
        if line.startswith("| siamese |")
    )
    assert "lr 0." in row and "margin 0." in row
    grid = tuned_grid(tmp_path, config, [summary])
    assert grid.method_params == {"siamese": {"lr": 1e-4 * 23, "margin": 0.3 + 0.1 * 11}}
    assert grid.params_source["siamese"].startswith(
        f"tuned in {tmp_path}: trial 11 of 12, validation knn5 accuracy 0.7200"
    )


def test_the_pruner_judges_a_trials_current_score_not_its_best_so_far():
    from bench.tune.pruner import RunningMedianPruner

    study = optuna.create_study(
        direction="maximize", pruner=RunningMedianPruner(n_startup_trials=5, n_warmup_steps=300)
    )
    for value in (0.90, 0.91, 0.92, 0.93, 0.94):
        study.add_trial(
            optuna.trial.create_trial(value=value, intermediate_values={150: value, 300: value, 600: value})
        )

    def prunes(curve: dict[int, float]) -> bool:
        trial = study.ask()
        for step, value in curve.items():
            trial.report(value, step)
        decision = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return decision

    assert prunes({150: 0.99, 300: 0.99, 600: 0.80})  # started well, collapsed: stopped
    assert not prunes({300: 0.95, 600: 0.93})  # above the median (0.92) now
    assert not prunes({150: 0.10})  # still warming up
    study_few = optuna.create_study(pruner=RunningMedianPruner(n_startup_trials=5))
    trial = study_few.ask()
    trial.report(0.0, 300)
    assert not trial.should_prune()  # fewer than five complete trials


# ----------------------------------------------------------------- multi-fidelity pruners


def tiny_config(pruner: str):
    from bench.grid.config import GridConfig
    from bench.sampling.budget import Budget
    from bench.tune.config import TuneConfig

    grid = GridConfig(
        dataset="digits",
        methods=("classifier",),
        schemes=("uniform",),
        budget=Budget(steps=40, batch_images=24),
    )
    return TuneConfig(grid=grid, trials=8, seeds=(1000, 1001), pruner=pruner)  # 2 fits: 80 steps a trial


def stopped_at(study: optuna.Study, curve: dict[int, float]) -> int | None:
    """Report ``curve`` step by step as a trial does; the step it is stopped at, or None."""
    trial = study.ask()
    for step, value in curve.items():
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step
    study.tell(trial, value)
    return None


def test_successive_halving_counts_its_budget_in_training_steps_from_the_middle_of_the_first_fit():
    from bench.tune.outputs import pruner_text
    from bench.tune.study import make_pruner

    config = tiny_config("halving")  # probes every 10 steps; the first fit's middle: step 20
    assert (config.probe_every, config.warmup_steps, config.trial_steps) == (10, 20, 80)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config))
    curve = {step: 0.5 for step in range(10, 90, 10)}
    assert stopped_at(study, curve) is None  # the first trial sets the bar
    assert stopped_at(study, {s: v - 0.1 for s, v in curve.items()}) == 20  # worse: stopped at rung 1
    assert stopped_at(study, {s: v + 0.1 for s, v in curve.items()}) is None  # best at both rungs
    # The best third at step 20 (promoted), not at step 60 = 20 x 3 (stopped there).
    assert stopped_at(study, {s: 0.65 if s < 60 else 0.58 for s in curve}) == 60
    assert "rungs at step 20, 60 of 80" in pruner_text(config)


def test_hyperband_stops_trials_only_at_its_rungs_and_a_tuning_keeps_its_pruner(tmp_path, capsys):
    from bench.tune.study import make_pruner

    config = tiny_config("hyperband")
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config))
    curve = {step: 0.9 for step in range(10, 90, 10)}
    stops = [stopped_at(study, {s: v - 0.05 * i for s, v in curve.items()}) for i in range(8)]
    assert stops[0] is None and any(stops)  # each trial worse than the last: most are stopped
    assert {s for s in stops if s is not None} <= {20, 60}  # at a rung (20 x 3^k), never before 20

    out = tmp_path / "tune"
    args = ["tune", "--method", "classifier", *TINY, "--trials", "3", "--pruner", "hyperband", "--executor"]
    assert main([*args, "local", "--out", str(out)]) == 0
    assert trial_counts(studies(out)["classifier"])["counted"] == 3
    assert "Hyperband pruner" in (out / "tuning.md").read_text()
    capsys.readouterr()
    assert main([*args, "local", "--out", str(out), "--resume", "--pruner", "median"]) == 2
    assert "holds the tuning study of another grid" in capsys.readouterr().err


def test_a_method_with_nothing_to_search_runs_one_trial_and_resumes_beside_the_others(tmp_path):
    out = tmp_path / "tune"
    args = ["tune", "--method", "classifier", "--method", "pca-gaussian", *TINY, "--out", str(out)]
    assert main([*args, "--trials", "3"]) == 0
    counts = {name: trial_counts(study)["counted"] for name, study in studies(out).items()}
    assert counts == {"classifier": 3, "pca-gaussian": 1}
    assert studies(out)["pca-gaussian"].get_trials()[0].user_attrs.get("defaults")
    text = (out / "tuning.md").read_text()
    assert "3 trials each; pca-gaussian: 1 (nothing to search: the defaults)" in text
    assert main([*args, "--trials", "4", "--resume"]) == 0
    counts = {name: trial_counts(study)["counted"] for name, study in studies(out).items()}
    assert counts == {"classifier": 4, "pca-gaussian": 1}
    assert set(load_grid_toml(out / "tuned.toml")["method_params"]) <= {"classifier", "pca-gaussian"}
    # It trains nothing, so its trial consumed no training steps.
    assert studies(out)["pca-gaussian"].get_trials()[0].user_attrs["steps"] == 0
