"""The Optuna side of a tuning: the study journal in the tuning directory, one study per method,
and one trial as a task any worker can run.

Every study lives in ``DIR/study.journal`` (Optuna's ``JournalStorage`` with its file backend):
each trial's start, reports and end are appended as they happen, so a killed tuning loses
only its trials in flight. Workers on this machine (processes, a local Dask cluster) open the
journal themselves; its file lock keeps their appends apart.
"""

from __future__ import annotations

import logging
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from bench.core.errors import BenchError
from bench.sampling.budget import LR_PARAM
from bench.tune.config import PRUNER_STARTUP_TRIALS, TuneConfig

if TYPE_CHECKING:
    from methods.base import EmbeddingMethod

STUDY_FILE = "study.journal"
#: Study user attribute listing trials that were running when a tuning was interrupted: they
#: do not count towards the trials of the method.
INTERRUPTED = "interrupted_trials"


def open_storage(path: str | Path) -> optuna.storages.BaseStorage:
    """The journal storage in file ``path`` (created if missing)."""
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def repair_torn_tail(path: Path) -> bool:
    """Cut a last line without its newline (a write killed half-way) from the journal, so new
    entries do not land behind it; return whether anything was cut."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)
    return True


def make_sampler(config: TuneConfig, method: str, slot: int) -> optuna.samplers.BaseSampler:
    """TPE seeded per (sampler seed, method, trial slot): reproducible with one worker, and two
    workers asking at once do not draw the same values. Fixed ``method_params`` stay fixed."""
    seed = zlib.crc32(f"{config.sampler_seed}:{method}:{slot}".encode())
    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    fixed = config.grid.method_params.get(method, {})
    if fixed:
        sampler = optuna.samplers.PartialFixedSampler(fixed, sampler)
    return sampler


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    """The tuning's pruner (``--pruner``; by default median pruning on the running validation
    score), judging from the middle of the first fit on, its budget counted in training steps."""
    from bench.tune.pruner import create_pruner

    return create_pruner(config.pruner, config.warmup_steps, config.trial_steps, PRUNER_STARTUP_TRIALS)


def suggest(trial: Any, name: str, distribution: BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` from ``distribution`` through Optuna's public suggest API
    (a real trial, a ``FixedTrial``, any object with ``suggest_float`` / ``suggest_int`` /
    ``suggest_categorical``).

    Raises:
        BenchError: a distribution of another kind.
    """
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise BenchError(f"search space entry {name!r}: unsupported distribution {distribution!r}")


def suggest_params(cls: type[EmbeddingMethod], trial: Any, fixed: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters: one suggestion per entry of the method's ``search_space``, in its
    order, with ``fixed`` on top."""
    params = {name: suggest(trial, name, dist) for name, dist in cls.search_space().items()}
    return {**params, **fixed}


def default_params(cls: type[EmbeddingMethod], config: TuneConfig, method: str) -> dict[str, Any]:
    """The values the method runs with untuned, for the parameters its space searches: the
    first trial of every study, so the tuned result is compared with the defaults."""
    defaults = {
        **cls().get_params(),
        LR_PARAM: cls.default_lr if config.grid.budget.lr is None else config.grid.budget.lr,
        **config.grid.method_params.get(method, {}),
    }
    return {name: defaults[name] for name in cls.search_space() if name in defaults}


def prepare_studies(
    storage: optuna.storages.BaseStorage, config: TuneConfig, resume: bool, out: Path
) -> None:
    """Create each method's study (its first trial: the defaults), or check the existing ones.

    Trials left running by an interrupted tuning are closed as failed and listed in the
    study's ``interrupted_trials``: they do not count towards the method's trials (an
    interrupted default trial is queued again).

    Raises:
        BenchError: ``out`` holds a study and ``resume`` is off, or holds a study of another
            grid (data, trunk, budget, split seed, schemes, seeds, objective, fixed parameters or
            search space differ), or the session would leave the methods with unequal trial
            counts (``check_equal_trials``).
    """
    from methods import get_method_class

    existing = {s.study_name: s for s in storage.get_all_studies()}
    if existing and not resume:
        raise BenchError(
            f"{out} already holds a tuning study; pass --resume to continue it, or choose another --out"
        )
    grid_hash = config.fingerprint_hash("")
    for name, summary in sorted(existing.items()):
        attrs = summary.user_attrs
        other_grid = attrs.get("grid_fingerprint") != grid_hash
        if other_grid or (
            name in config.grid.methods and attrs.get("fingerprint") != config.fingerprint_hash(name)
        ):
            raise BenchError(
                f"{out} holds the tuning study of another grid (study {name!r}: {attrs.get('describe', '?')}); "
                "choose another --out"
            )
    check_equal_trials(storage, config, out)  # before anything is written
    for method in config.grid.methods:
        if method in existing:
            _close_interrupted(optuna.load_study(study_name=method, storage=storage))
            continue
        study = optuna.create_study(storage=storage, study_name=method, direction=config.direction)
        study.set_user_attr("grid_fingerprint", grid_hash)
        study.set_user_attr("fingerprint", config.fingerprint_hash(method))
        study.set_user_attr("settings", config.fingerprint(method))
        study.set_user_attr(
            "describe", f"{config.grid.dataset}, trunk {config.grid.trunk}, {config.describe()}"
        )
        study.enqueue_trial(
            default_params(get_method_class(method), config, method), user_attrs={"defaults": True}
        )


def _close_interrupted(study: optuna.Study) -> None:
    """Close the trials an interrupted tuning left running as failed, list them in the study's
    ``interrupted_trials`` (not counted), and queue an interrupted default trial again with its
    own values: every study keeps its comparison with the defaults."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not stale:
        return
    numbers = [t.number for t in stale]
    study.set_user_attr(INTERRUPTED, sorted(set(study.user_attrs.get(INTERRUPTED, [])) | set(numbers)))
    for number in numbers:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    for trial in stale:
        if trial.user_attrs.get("defaults"):
            values = trial.system_attrs.get("fixed_params") or trial.params
            study.enqueue_trial(dict(values), user_attrs={"defaults": True})


def check_equal_trials(storage: optuna.storages.BaseStorage, config: TuneConfig, out: Path) -> None:
    """Refuse a session that would leave the methods of ``out`` with unequal trial counts.

    Every study in ``out`` must end with ``config.trials`` counted trials (one for a method with
    nothing to search): none that searches may already have more, and a study of a method this
    command does not tune may not have fewer.

    Raises:
        BenchError: naming the methods and the ``--trials`` or ``--method`` that would keep them equal.
    """
    counted = {
        s.study_name: trial_counts(optuna.load_study(study_name=s.study_name, storage=storage))["counted"]
        for s in storage.get_all_studies()
    }
    # A method with nothing to search may hold more trials (made before it got one): they repeat its defaults.
    ahead = {m: n for m, n in sorted(counted.items()) if n > config.trials and config.searches(m)}
    if ahead:
        most = max(ahead.values())
        raise BenchError(
            f"{out} already holds {', '.join(f'{n} trials of {m}' for m, n in ahead.items())}; --trials"
            f" {config.trials} would leave its methods with unequal budgets: resume with --trials {most}"
            " (or more) to bring every method to the same count"
        )
    behind = {
        m: n for m, n in sorted(counted.items()) if m not in config.grid.methods and n < config.trials_for(m)
    }
    if behind:
        raise BenchError(
            f"{out} also tunes {', '.join(f'{m} ({n} trials)' for m, n in behind.items())}, which --trials"
            f" {config.trials} would leave behind: add {' '.join(f'--method {m}' for m in behind)} so every"
            f" method ends with {config.trials}"
        )


def stored_grid_settings(path: Path) -> dict[str, Any] | None:
    """The grid settings the first study of the journal at ``path`` was made with (what its
    fingerprint covers), or None when there is no study."""
    if not Path(path).is_file():
        return None
    storage = open_storage(path)
    for summary in storage.get_all_studies():
        settings = summary.user_attrs.get("settings") or {}
        return dict(settings.get("grid") or {})
    return None


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: complete, pruned, failed (counted), interrupted (not counted), and
    ``counted``, what the equal budget counts."""
    interrupted = set(study.user_attrs.get(INTERRUPTED, []))
    trials = study.get_trials(deepcopy=False)
    counts = {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL and t.number not in interrupted for t in trials),
        "interrupted": sum(t.state == TrialState.FAIL and t.number in interrupted for t in trials),
    }
    counts["counted"] = counts["complete"] + counts["pruned"] + counts["failed"]
    return counts


@dataclass(frozen=True)
class TrialTask:
    """One trial of one method's study, as any worker runs it.

    Attributes:
        config: the tuning.
        method: whose study.
        slot: which of the method's trials this is (seeds the sampler).
        storage: the journal's path, or a storage object every worker reaches (Dask).
        device: ``cpu`` or ``cuda``.
    """

    config: TuneConfig
    method: str
    slot: int
    storage: Any
    device: str = "cpu"


def run_one_trial(task: TrialTask) -> dict[str, Any]:
    """Ask the method's study for a trial, run it, tell the outcome; return a summary.

    A trial ends ``COMPLETE`` (its mean validation score), ``PRUNED`` (by the pruner, or its
    training diverged) or ``FAIL`` (an error, kept in its ``error`` attribute). Its user
    attributes keep the per-fit scores, the training steps consumed and the training time.
    """
    from bench.tune.objective import Pruned, TrialRun, run_trial
    from methods import get_method_class

    storage = open_storage(task.storage) if isinstance(task.storage, str | Path) else task.storage
    config = task.config
    study = optuna.load_study(
        study_name=task.method,
        storage=storage,
        sampler=make_sampler(config, task.method, task.slot),
        pruner=make_pruner(config),
    )
    trial = study.ask()
    run = TrialRun()
    value, state, note, params = None, TrialState.COMPLETE, "", {}
    try:
        params = suggest_params(
            get_method_class(task.method), trial, config.grid.method_params.get(task.method, {})
        )
        value = run_trial(trial, config, task.method, params, task.device, run)
    except Pruned as exc:
        state, note = TrialState.PRUNED, exc.reason
    except Exception as exc:  # a failing trial is recorded; the study goes on
        state, note = TrialState.FAIL, f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("traceback", traceback.format_exc(limit=8))
    for key, attr in (
        ("params", params),
        ("scores", run.scores),
        ("steps", run.steps),
        ("train_s", round(run.train_s, 3)),
    ):
        trial.set_user_attr(key, attr)
    if note:
        trial.set_user_attr("note", note)
    study.tell(trial, value, state=state)
    return {
        "method": task.method,
        "number": trial.number,
        "state": state.name.lower(),
        "value": value,
        "params": params,
        "steps": run.steps,
        "note": note,
    }
