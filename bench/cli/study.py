"""``bench study``: the whole protocol in one command and one directory.

Every method is tuned with the same budget on the validation split (``bench tune`` into
``DIR/tune``), then runs on the test split with the tuned parameters and seeds on demand
(``bench run --params-from DIR/tune`` into ``DIR/final``), whose report ends the study;
``DIR/study.md`` links both and gives each stage's wall time. The stages are those commands
themselves, run with the study's flags, so they keep their locks, grid rules, executors and
resume; the study adds its own lock on ``DIR``, its settings and clocks (``DIR/study.json``) and
the summary.
"""

from __future__ import annotations

import argparse
import shlex
import signal
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.cli.flags import add_execution_arguments, add_grid_arguments, check_execution, quick_help
from bench.cli.tune import PRUNER_HELP
from bench.core.errors import BenchError
from bench.study.state import STAGES, STATE_FILE, StageClock, StudyState
from bench.tune.config import OBJECTIVES, TUNE_SCHEMES
from bench.tune.pruner import PRUNERS

#: The study's own flags with their defaults (None in the parser, so a resume can tell a flag
#: given from one left out), and what ``--quick`` sets unless given.
DEFAULTS: dict[str, Any] = {
    "tune_scheme": list(TUNE_SCHEMES),
    "trials": 20,
    "tune_seeds": 1,
    "objective": "accuracy",
    "sampler_seed": 0,
    "pruner": "halving",
    "seeds": 3,
    "target_ci": 1.5,
    "target_metric": "accuracy",
    "max_seeds": 12,
}
QUICK_STUDY: dict[str, Any] = {"trials": 4, "tune_seeds": 1, "seeds": 2, "max_seeds": 4}

#: Flags that say where the work runs and where it goes: a resume may change them (but --out).
EXECUTION = ("out", "resume", "device", "threads", "executor", "jobs", "address")
_NOT_SETTINGS = {*EXECUTION, "debug", "command"}


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The grid's flags, the tuning's and the final runs', and where the work runs."""
    add_grid_arguments(parser)
    parser.add_argument(
        "--tune-scheme",
        action="append",
        help=f"scheme(s) of the tuning's fits (repeatable; default {', '.join(TUNE_SCHEMES)}); --scheme "
        "sets the final runs' schemes",
    )
    tuning = parser.add_argument_group("tuning (DIR/tune, validation split)")
    tuning.add_argument("--trials", type=int, help="trials per method, the same for each (default 20)")
    tuning.add_argument(
        "--tune-seeds", type=int, help="training seeds per trial; its score is their mean (default 1)"
    )
    tuning.add_argument(
        "--objective", choices=tuple(OBJECTIVES), help="validation score to optimize (default accuracy)"
    )
    tuning.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler (default 0)")
    tuning.add_argument(
        "--pruner",
        choices=tuple(PRUNERS),
        help=PRUNER_HELP.replace("median (default;", "median (")
        + "; a study's default: halving (on inspection it kept a best trial that median stopped, in 12%% fewer"
        " training steps: docs/findings.md)",
    )
    final = parser.add_argument_group("final runs (DIR/final, test split)")
    final.add_argument("--seeds", type=int, help="start seeds 0..N-1 of every method x scheme (default 3)")
    final.add_argument(
        "--target-ci",
        type=float,
        metavar="W",
        help="then add seeds to each method x scheme until the 95%% interval of --target-metric is within "
        "±W points, or it has --max-seeds (default 1.5; 0: the start seeds only)",
    )
    final.add_argument(
        "--target-metric",
        choices=("accuracy", "escape", "overkill"),
        help="metric of the seed target (default accuracy)",
    )
    final.add_argument(
        "--max-seeds",
        type=int,
        metavar="M",
        help="most seeds per group (default 12: at least 9, three quarters of it)",
    )
    # --quick's own help speaks of run's seeds; a study's quick preset sets more.
    parser._option_string_actions["--quick"].help = (
        f"{quick_help()}; a study also sets "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK_STUDY.items())
        + " unless given"
    )
    add_execution_arguments(
        parser,
        "DIR",
        unit="tasks",
        out_default="results/study-<timestamp>",
        resume_help="continue the study in DIR where it stopped (kill -9 included): --resume --out DIR "
        "alone reuses its flags; only where the work runs (--jobs, --executor, --address, --device, "
        "--threads) may change",
    )


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """A new study's settings: its flags (where the work runs aside) with defaults resolved.

    Raises:
        BenchError: a flag out of range.
    """
    settings = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    quick = QUICK_STUDY if args.quick else {}
    for key, default in DEFAULTS.items():
        if settings.get(key) is None:
            settings[key] = quick.get(key, default)
    if not settings.get("method") and not settings.get("config"):
        settings["all"] = True  # a study compares every method unless told otherwise
    if settings["target_ci"] < 0:
        raise BenchError(f"--target-ci must be 0 (no target) or more (got {settings['target_ci']:g})")
    if not settings["target_ci"] and args.max_seeds is not None:
        raise BenchError("--max-seeds only applies with a seed target: --target-ci W above 0")
    return settings


def resumed_settings(args: argparse.Namespace, stored: dict[str, Any]) -> dict[str, Any]:
    """The settings of the study being resumed; a flag given now must say what it said then.

    Raises:
        BenchError: a given flag differs from the study's (the message names it).
    """
    for key, value in sorted(vars(args).items()):
        if key in _NOT_SETTINGS or value is None or value is False:
            continue
        if stored.get(key) != value:
            flag = "--" + key.replace("_", "-")
            raise BenchError(
                f"this study was started with {flag} {stored.get(key)!r}, not {value!r}; a study's flags are"
                " fixed when it starts (--resume may change only --jobs, --executor, --address, --device,"
                " --threads): resume without it, or start another study with another --out"
            )
    # A flag added since the study started: the study ran with its default.
    known = {k: DEFAULTS.get(k) for k in vars(args) if k not in _NOT_SETTINGS}
    return {**known, **stored}


def stage_arguments(
    settings: dict[str, Any], args: argparse.Namespace, out: Path
) -> dict[str, argparse.Namespace]:
    """The flags each stage's command gets: the study's grid flags, the stage's own, and where
    the work runs and goes."""
    where = {k: getattr(args, k) for k in EXECUTION} | {"debug": getattr(args, "debug", False)}
    target = settings["target_ci"] or None
    unset = {"seed": None, "target_diff_ci": None, "against": None, "force": False, "dry_run": False}
    tune = {
        **settings,
        **where,
        **unset,
        "scheme": settings["tune_scheme"],
        "seeds": None,
        "target_ci": None,
        "target_metric": None,
        "max_seeds": None,
        "params_from": None,
        "out": str(out / STAGES["tune"]),
    }
    final = {
        **settings,
        **where,
        **unset,
        "target_ci": target,
        "target_metric": settings["target_metric"] if target else None,
        "max_seeds": settings["max_seeds"] if target else None,
        "params_from": str(out / STAGES["tune"]),
        "out": str(out / STAGES["final"]),
    }
    return {"tune": argparse.Namespace(**tune), "final": argparse.Namespace(**final)}


def check_stages(stages: dict[str, argparse.Namespace]) -> str:
    """Resolve both stages' grids now, so a bad flag is one error before any work (the final
    grid without its tuned parameters, which do not exist yet); return the dataset's name."""
    from bench.cli.run import grid_from_args
    from bench.tune.config import TuneConfig, tune_seeds

    tune = stages["tune"]
    grid = grid_from_args(tune, default_schemes=TUNE_SCHEMES)
    TuneConfig(
        grid=grid,
        trials=tune.trials,
        seeds=tune_seeds(tune.tune_seeds),
        objective=tune.objective,
        pruner=tune.pruner,
    )
    grid_from_args(argparse.Namespace(**{**vars(stages["final"]), "params_from": None, "resume": False}))
    return grid.dataset


def _check_directory(out: Path, state: StudyState | None, resume: bool) -> None:
    from bench.grid.lock import HOLDER_FILE, LOCK_FILE

    if state is not None and not resume:
        raise BenchError(
            f"{out} already holds a study; continue it with `python -m bench study --resume --out {out}`, "
            "or choose another --out"
        )
    if state is None and resume:
        raise BenchError(no_study(out))
    if state is None and out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_FILE, HOLDER_FILE))
        if others:
            raise BenchError(
                f"{out} is not empty ({', '.join(others[:3])}) and holds no study; choose another --out"
            )


def no_study(out: Path) -> str:
    return f"{out} holds no study to resume (no {STATE_FILE}); start it without --resume"


#: A stage command's exit code -> how its session ended.
_ENDS = {0: "done", 1: "failures", 130: "interrupted"}


def study_command(args: argparse.Namespace, console: Console, argv: Sequence[str]) -> int:
    """Run the stages the study in ``--out`` still needs; write ``study.md`` however it ends.

    Returns:
        0 (every stage done), 1 (some trial or cell failed) or 130 (interrupted).
    """
    from bench.cli.run import run_command
    from bench.cli.tune import tune_command
    from bench.grid.lock import RunLock
    from bench.study.summary import write_summary

    if args.resume and not args.out:
        raise BenchError("--resume needs --out DIR, the study to continue")
    check_execution(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"results/study-{stamp}")
    commands = {"tune": tune_command, "final": run_command}
    if not (out / STATE_FILE).is_file():  # a new study: check its flags before creating anything
        if args.resume:
            raise BenchError(no_study(out))
        check_stages(stage_arguments(resolve_settings(args), args, out))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with RunLock(out):
        state = StudyState.load(out)
        _check_directory(out, state, args.resume)
        settings = resolve_settings(args) if state is None else resumed_settings(args, state.settings)
        stages = stage_arguments(settings, args, out)
        dataset = check_stages(stages)
        if state is None:
            state = StudyState(out, settings)
        state.begin_session(shlex.join(["python", "-m", "bench", *argv]))
        code = 0
        try:
            for number, (stage, stage_args) in enumerate(stages.items(), start=1):
                if state.done(stage):
                    console.print(
                        f"study {number}/{len(stages)}, {stage}: done already ({out / STAGES[stage]})"
                    )
                    continue
                stage_args.resume = (out / STAGES[stage]).is_dir()
                console.print(
                    f"study {number}/{len(stages)}, {stage} on {dataset}: into {stage_args.out}",
                    highlight=False,
                )
                with StageClock(state, stage) as clock:
                    ended = commands[stage](stage_args, console)
                    clock.end(_ENDS.get(ended, "error"))
                if ended == 130:
                    console.print(  # one line, never wrapped: a command to copy
                        f"continue the study with: python -m bench study --resume --out {out}",
                        soft_wrap=True,
                        highlight=False,
                    )
                    return 130
                code = max(code, ended)
        finally:
            summary = write_summary(state)
            console.print(f"study:  {summary}", soft_wrap=True, highlight=False)
    return code
