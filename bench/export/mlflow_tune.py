"""A tuning directory (``bench tune``) as MLflow runs, read from its study journal.

The tuning is one experiment, ``PREFIX: tuning`` (the prefix is the directory's name unless
given). A top run carries ``tuning.md``, ``tuned.toml`` and the tuning's plots as artifacts; under
it, one run per Optuna study (one per method: its settings as parameters, its best value as a
metric), and under each, one run per trial: the trial's parameters, its value (``value``), its
scores per seed, the intermediate values it reported (the validation curve) as the step metric
``intermediate_value``, and its state as the run's status (complete: finished, failed: failed,
pruned: killed, running: left open) and the tag ``bench.state``. Trials are keyed by study and
number (``bench.export.mlflow_store``): exporting again, or after the tuning went on, leaves one
run per trial, and a trial that finished since is replaced by its finished run.

Exporting from the journal, rather than through optuna-integration's ``MLflowCallback`` during
the tuning, works on any finished or interrupted tuning, committed ones included, and is
idempotent; the callback logs each trial once, as it ends, and would log it again on a rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.export.mlflow_store import (
    KIND_TAG,
    ExportCount,
    RunContent,
    existing_runs,
    experiment_id,
    log_files,
    millis,
    sync_run,
)
from bench.tune.outputs import REPORT_FILE, TUNED_FILE
from bench.tune.plots import PLOTS_DIR
from bench.tune.study import STUDY_FILE, open_storage

#: A trial's state -> the status of its MLflow run.
STATUS = {
    "COMPLETE": "FINISHED",
    "FAIL": "FAILED",
    "PRUNED": "KILLED",
    "RUNNING": "RUNNING",
    "WAITING": "RUNNING",
}


def is_tuning(path: Path) -> bool:
    """Whether ``path`` is a tuning directory (it holds the study journal)."""
    return (Path(path) / STUDY_FILE).is_file()


def tunings(path: Path) -> list[Path]:
    """The tuning directories at ``path``: itself, or every folder below it with a study journal."""
    path = Path(path)
    if is_tuning(path):
        return [path]
    return sorted(p.parent for p in path.rglob(STUDY_FILE) if p.is_file()) if path.is_dir() else []


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(item, f"{prefix}{key}.", out)
    elif value is not None:
        out[prefix.rstrip(".")] = value
    return out


def trial_content(study: str, trial: Any) -> RunContent:
    """The MLflow run of one Optuna trial (a ``FrozenTrial``) of the study ``study``."""
    attrs = trial.user_attrs
    metrics: dict[str, float] = {}
    values = trial.values or []
    if len(values) == 1:
        metrics["value"] = values[0]
    else:
        metrics.update({f"value_{i}": v for i, v in enumerate(values)})
    for name in ("steps", "train_s"):
        if isinstance(attrs.get(name), int | float):
            metrics[name] = attrs[name]
    for score in attrs.get("scores") or []:
        if isinstance(score, dict) and isinstance(score.get("score"), int | float):
            metrics[f"score.{score.get('scheme', 'scheme')}.seed_{score.get('seed')}"] = score["score"]
    tags = {
        KIND_TAG: "trial",
        "bench.method": study,
        "bench.state": trial.state.name,
        "bench.trial_number": str(trial.number),
        "bench.defaults": "true" if attrs.get("defaults") else "false",
    }
    if attrs.get("note"):
        tags["bench.note"] = str(attrs["note"])
    if attrs.get("traceback"):
        tags["bench.error"] = str(attrs["traceback"]).strip().splitlines()[-1]
    return RunContent(
        key=f"{study}#{trial.number}",
        name=f"{study} · trial {trial.number}",
        params=dict(trial.params),
        metrics=metrics,
        curves={"intermediate_value": sorted(trial.intermediate_values.items())},
        tags=tags,
        start=millis(trial.datetime_start),
        end=millis(trial.datetime_complete),
        status=STATUS.get(trial.state.name, "RUNNING"),
    )


def export_tuning(client: Any, uri: str, tune_dir: Path, prefix: str | None = None) -> list[ExportCount]:
    """Export the tuning in ``tune_dir`` (its ``study.journal``) to the MLflow store of ``client``.

    Returns:
        What the export did per Optuna study (its trials; the top and study runs are not counted).

    Raises:
        BenchError: ``tune_dir`` holds no study journal.
    """
    import optuna

    tune_dir = Path(tune_dir)
    if not is_tuning(tune_dir):
        raise BenchError(f"{tune_dir} holds no {STUDY_FILE} (not a bench tune directory)")
    name = f"{prefix or tune_dir.resolve().name}: tuning"
    experiment = experiment_id(client, uri, name, {"bench.tune_dir": str(tune_dir)})
    existing = existing_runs(client, experiment)
    top = RunContent(key="tuning", name="tuning", tags={KIND_TAG: "tuning", "bench.tune_dir": str(tune_dir)})
    top_id, _ = sync_run(client, experiment, top, existing)
    plots = sorted((tune_dir / PLOTS_DIR).glob("*.png"))
    log_files(
        client,
        top_id,
        [(tune_dir / REPORT_FILE, None), (tune_dir / TUNED_FILE, None)] + [(p, PLOTS_DIR) for p in plots],
    )
    storage = open_storage(tune_dir / STUDY_FILE)
    counts = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        study = optuna.load_study(study_name=frozen.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        content = RunContent(
            key=f"study:{frozen.study_name}",
            name=frozen.study_name,
            params=_flat(frozen.user_attrs.get("settings") or {}, "", {}),
            metrics={"best_value": study.best_value} if complete and len(study.directions) == 1 else {},
            tags={KIND_TAG: "study", "bench.method": frozen.study_name},
        )
        study_id, _ = sync_run(client, experiment, content, existing, top_id)
        count = ExportCount(f"{name} / {frozen.study_name}")
        for trial in trials:
            _, what = sync_run(
                client, experiment, trial_content(frozen.study_name, trial), existing, study_id
            )
            count.add(what)
        counts.append(count)
    return counts
