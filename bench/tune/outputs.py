"""What a tuning leaves in its directory, rebuilt from the study journal alone: ``tuned.toml``
(the best parameters per method, a grid file for ``bench run``) and ``tuning.md``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bench.core.atomic import write_text_atomic
from bench.grid.config import GridConfig
from bench.sampling.schemes import DEFAULT_SCHEMES
from bench.tune.config import PRUNER_STARTUP_TRIALS, TuneConfig
from bench.tune.study import trial_counts

TUNED_FILE = "tuned.toml"
REPORT_FILE = "tuning.md"
#: Complete trials needed before parameter importances are computed (fANOVA on fewer is noise).
MIN_TRIALS_FOR_IMPORTANCE = 8


@dataclass
class MethodSummary:
    """One method's study in numbers."""

    method: str
    counts: dict[str, int]
    steps: int
    train_s: float
    best: FrozenTrial | None
    default: FrozenTrial | None
    trials: list[FrozenTrial] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)


def summarize(storage: Any, config: TuneConfig) -> list[MethodSummary]:
    """A summary per method of ``config`` that has a study in ``storage``."""
    names = {s.study_name for s in storage.get_all_studies()}
    out = []
    for method in config.grid.methods:
        if method not in names:
            continue
        study = optuna.load_study(study_name=method, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = study.best_trial if complete else None
        default = next((t for t in trials if t.user_attrs.get("defaults")), None)
        importances: dict[str, float] = {}
        if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and len(complete[0].params) > 1:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            try:
                importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
            except (RuntimeError, ValueError):  # e.g. no variance in the scores: nothing to attribute
                importances = {}
        out.append(
            MethodSummary(
                method=method,
                counts=trial_counts(study),
                steps=sum(int(t.user_attrs.get("steps", 0)) for t in trials),
                train_s=sum(float(t.user_attrs.get("train_s", 0.0)) for t in trials),
                best=best,
                default=default if default is not None and default.state == TrialState.COMPLETE else None,
                trials=list(trials),
                importances=importances,
            )
        )
    return out


def source_text(out: Path, config: TuneConfig, summary: MethodSummary) -> str:
    """Where a method's tuned parameters came from, as records and reports show it."""
    best = summary.best
    assert best is not None
    return (
        f"tuned in {out}: trial {best.number} of {summary.counts['counted']}, "
        f"{config.score_name()} {best.value:.4f} (mean of {config.fits_per_trial} fit(s))"
    )


def tuned_grid(out: Path, config: TuneConfig, summaries: list[MethodSummary]) -> GridConfig | None:
    """The grid ``bench run`` should run next: the tuned methods with their best parameters
    (``lr`` included), the run's default schemes and seeds; None when no method has a
    complete trial."""
    tuned = [s for s in summaries if s.best is not None]
    if not tuned:
        return None
    return replace(
        config.grid,
        methods=tuple(s.method for s in tuned),
        schemes=DEFAULT_SCHEMES,
        seeds=(0, 1, 2),
        method_params={s.method: dict(s.best.user_attrs.get("params") or s.best.params) for s in tuned},
        params_source={s.method: source_text(out, config, s) for s in tuned},
    )


def write_tuned(out: Path, config: TuneConfig, summaries: list[MethodSummary]) -> Path | None:
    """Write ``out/tuned.toml``; None when there is nothing tuned yet."""
    grid = tuned_grid(out, config, summaries)
    if grid is None:
        return None
    header = (
        f"# Best parameters per method from `bench tune` into {out} ({config.describe()};\n"
        f"# tuned under scheme(s) {', '.join(config.grid.schemes)}, seeds {', '.join(map(str, config.seeds))}).\n"
        f"# Run them: python -m bench run --config {out / TUNED_FILE}   (or: --params-from {out})\n"
        "# A method's `lr` is its own learning rate; the rest of [budget] is shared.\n\n"
    )
    return write_text_atomic(out / TUNED_FILE, header + grid.to_toml())


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in sorted(params.items())) or "–"


def _scores(trial: FrozenTrial | None) -> str:
    if trial is None:
        return "–"
    per_fit = ", ".join(f"{s['score']:.4f}" for s in trial.user_attrs.get("scores", []))
    return f"{trial.value:.4f} ({per_fit})"


def render(
    out: Path, config: TuneConfig, summaries: list[MethodSummary], plots: list[tuple[str, str]]
) -> str:
    """The markdown of ``tuning.md``."""
    grid = config.grid
    budget = {k: v for k, v in grid.budget.to_dict().items() if k != "lr"}
    lines = [
        "# Tuning report",
        "",
        f"Generated from `{out / 'study.journal'}` by `bench tune`. Every trial trains on the training"
        " split and is scored on the validation split only; the test split is never embedded or scored.",
        "",
        f"- **Dataset:** `{grid.dataset}`; **trunk:** `{grid.trunk}`; **shared budget:** "
        + ", ".join(f"{k} {v}" for k, v in sorted(budget.items())),
        f"- **Objective:** {config.describe()}; mean over {config.fits_per_trial} fit(s) per trial: "
        f"seeds {', '.join(map(str, config.seeds))} x scheme(s) {', '.join(grid.schemes)}",
        f"- **Budget per method:** {config.trials} trials (trial 0: the defaults, lr {grid.budget.lr});"
        f" TPE sampler (seed {config.sampler_seed}); {pruner_text(config)}",
        "",
        "## Trials and budget consumed",
        "",
        "| method | complete | pruned | failed | interrupted | training steps | training s |"
        " default score (per fit) | best score (per fit) | best trial |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in summaries:
        c = s.counts
        lines.append(
            f"| {s.method} | {c['complete']} | {c['pruned']} | {c['failed']} | {c['interrupted']} | {s.steps:,}"
            f" | {s.train_s:.0f} | {_scores(s.default)} | {_scores(s.best)} | {s.best.number if s.best else '–'} |"
        )
    lines += ["", "## Best parameters", "", "| method | best | defaults |", "|---|---|---|"]
    for s in summaries:
        best = s.best.user_attrs.get("params", s.best.params) if s.best else {}
        default = s.default.params if s.default else {}
        lines.append(f"| {s.method} | {_params(best)} | {_params(default)} |")
    lines += ["", "## Parameter importances", ""]
    rows = [s for s in summaries if s.importances]
    if rows:
        lines += [
            f"fANOVA (`optuna.importance`, seed 0) over the complete trials; shown from"
            f" {MIN_TRIALS_FOR_IMPORTANCE} complete trials on.",
            "",
            "| method | importances |",
            "|---|---|",
        ]
        lines += [
            f"| {s.method} | {', '.join(f'{k} {v:.2f}' for k, v in s.importances.items())} |" for s in rows
        ]
    else:
        lines.append(f"Not computed: fewer than {MIN_TRIALS_FOR_IMPORTANCE} complete trials per method.")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{title}]({path})" for title, path in plots]
    lines += [
        "",
        "## Next",
        "",
        f"`python -m bench run --all --params-from {out} --seeds 5` (or `--config {out / TUNED_FILE}`) runs"
        " the tuned methods on fresh seeds and reports on the test split.",
        "",
    ]
    return "\n".join(lines)


def write_report(
    out: Path, config: TuneConfig, summaries: list[MethodSummary], plots: list[tuple[str, str]]
) -> Path:
    return write_text_atomic(out / REPORT_FILE, render(out, config, summaries, plots))


def pruner_text(config: TuneConfig) -> str:
    """The tuning's pruner in one phrase."""
    from bench.tune.pruner import describe_pruner

    return describe_pruner(
        config.pruner, config.probe_every, config.warmup_steps, config.trial_steps, PRUNER_STARTUP_TRIALS
    )
