"""``DIR/study.md``: the study at a glance, rebuilt from ``study.json`` and the final records.

It gives the command, each stage with its status, wall time (summed over the sessions that
worked on it) and a link to what it wrote (``tune/tuning.md``, ``final/report.md``), the seeds
each method x scheme of the final runs got, and the sessions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.atomic import write_text_atomic
from bench.grid.store import latest_by_hash, load_records
from bench.study.state import FINAL_DIR, STAGES, SUMMARY_FILE, TUNE_DIR, StudyState

#: What each stage links to, under its directory.
OUTPUTS = {"tune": (TUNE_DIR, "tuning.md", "tuning"), "final": (FINAL_DIR, "report.md", "report")}


def duration(seconds: float) -> str:
    """``42 s``, ``13 min 2 s``, ``1 h 4 min``."""
    total = int(round(seconds))
    if total < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def seed_counts(final_dir: Path) -> dict[tuple[str, str], list[int]]:
    """The seeds of every method x scheme with an ``ok`` record in ``final_dir``, sorted."""
    groups: dict[tuple[str, str], list[int]] = {}
    for record in latest_by_hash(load_records(final_dir)).values():
        if record.status == "ok":
            cell = record.config
            groups.setdefault((cell.method, cell.scheme), []).append(cell.seed)
    return {group: sorted(seeds) for group, seeds in groups.items()}


def seed_list(seeds: list[int]) -> str:
    """``0 to 8`` for a run of whole numbers, else ``0, 2, 5``."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]} to {seeds[-1]}"
    return ", ".join(map(str, seeds))


def stage_descriptions(settings: dict[str, Any]) -> dict[str, str]:
    """What each stage does, in a few words, from the study's settings."""
    fits = settings["tune_seeds"] * len(settings["tune_scheme"])
    tune = (
        f"{settings['trials']} trials per method, {fits} fit(s) each "
        f"({', '.join(settings['tune_scheme'])}), validation split"
    )
    if settings.get("target_ci"):
        final = (
            f"test split, seeds on demand: {settings['seeds']} to start, then more per method x scheme until"
            f" the 95% interval of {settings['target_metric']} is within ±{settings['target_ci']:g} points"
            f" (at most {settings['max_seeds']})"
        )
    else:
        final = f"test split, {settings['seeds']} seeds"
    return {"tune": tune, "final": final + "; then the report"}


def render(state: StudyState) -> str:
    """The text of ``study.md``."""
    directory = state.directory
    what = stage_descriptions(state.settings)
    command = state.sessions[0]["command"] if state.sessions else "?"
    lines = [
        "# Study",
        "",
        f"`{command}`",
        "",
        "Every method tuned with the same budget on the validation split, then final runs with the tuned",
        "parameters on the test split, in this directory: `tune/` (a `bench tune` directory) and",
        "`final/` (a `bench run` directory, `--params-from tune`). Wall times are summed over the",
        "sessions that worked on a stage (a killed session counts to its last clock write).",
        "",
        "| stage | what | status | wall time | sessions | output |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        sub, name, label = OUTPUTS[stage]
        link = f"[{label}]({sub}/{name})" if (directory / sub / name).is_file() else "not yet"
        sessions = state.stages.get(stage, [])
        wall = duration(state.wall_s(stage)) if sessions else ""
        lines.append(
            f"| {stage} | {what[stage]} | {state.status(stage)} | {wall} | {len(sessions)} | {link} |"
        )
    total = sum(state.wall_s(stage) for stage in STAGES)
    lines += [f"| total | | | {duration(total)} | | |", ""]
    lines += _seed_section(directory / FINAL_DIR)
    lines += ["## Sessions", ""]
    for number, session in enumerate(state.sessions, start=1):
        lines.append(f"{number}. {session['started_at']}: `{session['command']}`")
    return "\n".join(lines) + "\n"


def _seed_section(final_dir: Path) -> list[str]:
    counts = seed_counts(final_dir)
    if not counts:
        return []
    schemes = list(dict.fromkeys(scheme for _, scheme in counts))
    methods = list(dict.fromkeys(method for method, _ in counts))
    used = sorted({seed for seeds in counts.values() for seed in seeds})
    lines = [
        "## Seeds of the final runs",
        "",
        f"Seeds {seed_list(used)}; finished seeds per method x scheme:",
        "",
        "| method | " + " | ".join(schemes) + " |",
        "|---|" + "---|" * len(schemes),
    ]
    for method in methods:
        row = [str(len(counts.get((method, scheme), []))) for scheme in schemes]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return [*lines, ""]


def write_summary(state: StudyState) -> Path:
    """Write ``DIR/study.md``; returns its path."""
    return write_text_atomic(state.directory / SUMMARY_FILE, render(state))
