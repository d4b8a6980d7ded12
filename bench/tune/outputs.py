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
from bench.tune.ranges import RangeEdge, parameter_limits, range_edges
from bench.tune.selection import is_default, tied_best
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
    #: Complete trials that share the best score (1: no tie); the tie rule picked ``best``.
    tied: int = 0
    #: The best trial's values at an edge of their range (``bench.tune.ranges``).
    edges: list[RangeEdge] = field(default_factory=list)


def summarize(storage: Any, config: TuneConfig) -> list[MethodSummary]:
    """A summary per method of ``config`` that has a study in ``storage``."""
    from methods import get_method_class

    names = {s.study_name for s in storage.get_all_studies()}
    out = []
    for method in config.grid.methods:
        if method not in names:
            continue
        study = optuna.load_study(study_name=method, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        tied = tied_best(trials, config.direction)
        best = tied[0] if tied else None
        # A default trial interrupted by a kill is queued again: the one that completed counts.
        defaults = [t for t in trials if is_default(t)]
        default = next(
            (t for t in defaults if t.state == TrialState.COMPLETE), defaults[-1] if defaults else None
        )
        fixed = frozenset(config.grid.method_params.get(method, {}))
        edges = range_edges(best, parameter_limits(get_method_class(method)), fixed) if best else []
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
                tied=len(tied),
                edges=edges,
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


def next_commands(out: Path, config: TuneConfig, summaries: list[MethodSummary]) -> list[str]:
    """The commands that run the tuned methods next, exactly as ``tuning.md`` and ``tuned.toml``
    print them: ``--params-from`` takes the data, inputs, trunk, budget, split seed, headline rule
    and costs from the tuning, so each runs as printed from the directory the tuning ran in."""
    from methods import list_methods

    tuned = [s.method for s in summaries if s.best is not None]
    if not tuned:
        return []
    which = "--all" if set(tuned) == set(list_methods()) else " ".join(f"--method {m}" for m in tuned)
    commands = [f"python -m bench run {which} --params-from {out} --seeds 5"]
    if config.grid.split_seed is not None:  # a file without split_seed reads as today's default
        commands.append(f"python -m bench run --config {out / TUNED_FILE}")
    return commands


def write_tuned(out: Path, config: TuneConfig, summaries: list[MethodSummary]) -> Path | None:
    """Write ``out/tuned.toml``; None when there is nothing tuned yet."""
    grid = tuned_grid(out, config, summaries)
    if grid is None:
        return None
    header = (
        f"# Best parameters per method from `bench tune` into {out} ({config.describe()};\n"
        f"# tuned under scheme(s) {', '.join(config.grid.schemes)}, seeds {', '.join(map(str, config.seeds))}).\n"
        + "".join(f"# Run them: {command}\n" for command in next_commands(out, config, summaries))
        + "# A method's `lr` is its own learning rate; the rest of [budget] is shared.\n\n"
    )
    return write_text_atomic(out / TUNED_FILE, header + grid.to_toml())


def split_text(config: TuneConfig) -> str:
    """Which images a tuning scores, against which test images."""
    split = config.grid.split_seed
    if split is None:
        return (
            "- **Test split:** varied with the seed (older protocol): every tuning seed drew its own"
            " train / validation / test split, so some validation images scored here are test images"
            " of final seeds; tune again for a fixed test split"
        )
    return (
        f"- **Test split:** fixed by split seed {split}: the tuning seeds draw their validation images"
        " from the other images only, so no test image of a final run with this split seed is ever"
        " scored here"
    )


def trials_text(config: TuneConfig, summaries: list[MethodSummary]) -> str:
    """The trials each method actually has: one number when they are equal; a method with
    nothing to search and its one trial (its defaults) named apart."""
    counted = {s.method: s.counts["counted"] for s in summaries}
    once = [m for m, n in counted.items() if n == 1 and not config.searches(m)]
    budgeted = {m: n for m, n in counted.items() if m not in once}
    aside = f"; {', '.join(once)}: 1 (nothing to search: the defaults)" if once else ""
    if not budgeted:
        return "1 trial each (nothing to search: the defaults)"
    if len(set(budgeted.values())) <= 1:
        each = next(iter(budgeted.values()))
        of = f" (of --trials {config.trials})" if each != config.trials else ""
        return f"{each} trials each{of}{aside}"
    return (
        ", ".join(f"{m} {n}" for m, n in budgeted.items())
        + f" trials: not yet equal (of --trials {config.trials}; resume to finish){aside}"
    )


def edge_lines(summaries: list[MethodSummary]) -> list[str]:
    """One line per best value at an edge of its range, flagged first (``bench.tune.ranges``)."""
    edges = [(s.method, e) for s in summaries for e in s.edges]
    edges.sort(key=lambda item: item[1].own_limit)
    return [f"{'note' if e.own_limit else 'warning'}: {method}: {e.text()}" for method, e in edges]


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
    default_lr_text = "each method's default_lr" if grid.budget.lr is None else grid.budget.lr
    lines = [
        "# Tuning report",
        "",
        f"Generated from `{out / 'study.journal'}` by `bench tune`. Every trial trains on the training"
        " split and is scored on the validation split only; the test split is never embedded or scored.",
        "",
        f"- **Dataset:** `{grid.dataset}`; **trunk:** `{grid.trunk}`; **inputs:** `{grid.inputs}`;"
        " **shared budget:** " + ", ".join(f"{k} {v}" for k, v in sorted(budget.items())),
        split_text(config),
        f"- **Objective:** {config.describe()}; mean over {config.fits_per_trial} fit(s) per trial: "
        f"seeds {', '.join(map(str, config.seeds))} x scheme(s) {', '.join(grid.schemes)}",
        f"- **Trials per method:** {trials_text(config, summaries)} (trial 0: the defaults, lr"
        f" {default_lr_text}); TPE sampler (seed {config.sampler_seed}); {pruner_text(config)}",
        "- **Best trial:** the best mean score; a tie goes to the default trial, then to the better"
        " mean of the validation probes, then to the parameters first in canonical JSON (never to the"
        " trial number, which depends on scheduling)",
        "",
        "## Trials and budget consumed",
        "",
        "| method | trials | complete | pruned | failed | interrupted | training steps | training s |"
        " default score (per fit) | best score (per fit) | best trial |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in summaries:
        c = s.counts
        best = "–" if s.best is None else f"{s.best.number}" + (f" ({s.tied} tied)" if s.tied > 1 else "")
        lines.append(
            f"| {s.method} | {c['counted']} | {c['complete']} | {c['pruned']} | {c['failed']} | {c['interrupted']}"
            f" | {s.steps:,} | {s.train_s:.0f} | {_scores(s.default)} | {_scores(s.best)} | {best} |"
        )
    lines += ["", "## Best parameters", "", "| method | best | defaults |", "|---|---|---|"]
    for s in summaries:
        best = s.best.user_attrs.get("params", s.best.params) if s.best else {}
        default = s.default.params if s.default else {}
        lines.append(f"| {s.method} | {_params(best)} | {_params(default)} |")
    edges = edge_lines(summaries)
    lines += ["", "## Range edges", ""]
    lines += [f"- {line}" for line in edges] or ["No best value lies within 5% of an edge of its range."]
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
    commands = next_commands(out, config, summaries)
    if commands:
        lines += ["", "## Next", "", "Run the tuned methods on fresh seeds and report on the test split:", ""]
        lines += ["```bash", *commands, "```"]
    return "\n".join([*lines, ""])


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
