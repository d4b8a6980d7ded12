"""Seeds on demand, as the records tell it: which groups reached the seed target, which hit the
cap. The grid's rule (``bench.grid.adaptive``) decided when to stop from the same intervals
(``bench.core.intervals``); this module only reads the outcome back from the records, for the
report's section and the terminal summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from bench.grid.record import Record, SeedTarget
from bench.report.cells import Cells, headline
from bench.report.format import half, interval, num, rate_ci, seeds_text, table
from bench.report.paired import paired


def study_target(records: Sequence[Record]) -> SeedTarget | None:
    """The seed target the study's records were run under (the latest record's), or None."""
    tagged = [r for r in records if r.seed_target is not None]
    if not tagged:
        return None
    return max(tagged, key=lambda r: (r.finished_at or "", r.hash)).seed_target


def _tried(cells: Cells, records: Sequence[Record]) -> dict[tuple[str, str], int]:
    """Seeds each group was given, failed cells included (what ``max_seeds`` counts)."""
    seeds: dict[tuple[str, str], set] = defaultdict(set)
    for rec in records:
        cfg = rec.config
        group = (cells.labels.get(rec.hash, cfg.method), cells.scheme_labels.get(rec.hash, cfg.scheme))
        seeds[group].add(cfg.seed)
    return {group: len(s) for group, s in seeds.items()}


def status(width: float | None, tried: int, goal: float, cap: int) -> tuple[str, str]:
    """(short, long) wording of where a group stands against a target half-width ``goal``."""
    if width is not None and width <= goal:
        if tried >= cap:
            return "met at cap", f"within ±{goal:g} at the cap of {cap} seeds"
        return "met early", f"within ±{goal:g} after {seeds_text(tried)}: stopped before the cap of {cap}"
    if tried >= cap:
        return "hit cap", f"still above ±{goal:g}: hit the cap of {cap} seeds"
    return (
        "open",
        f"above ±{goal:g} with {tried} of {cap} seeds: the run ended before the rule did (resume it)",
    )


def _targeted(cells: Cells) -> list[tuple[str, str]]:
    """The groups a seed target applies to: not the label-free baselines, which have none of
    its metrics (no class rule) and so keep their start seeds."""
    from bench.report.operating import label_free

    return [(m, s) for m, s in cells.cells() if not label_free(cells, m, s)]


def mean_rows(cells: Cells, records: Sequence[Record], target: SeedTarget, short: bool = False) -> list[dict]:
    value, goal, cap = headline(target.metric), target.ci, target.max_seeds
    tried = _tried(cells, records)
    rows = []
    for m, s in _targeted(cells):
        summary = cells.rate(m, s, value)
        width = half(summary)
        rows.append(
            {
                "method": m,
                "scheme": s,
                "seeds": str(tried.get((m, s), 0)),
                f"{target.metric} %": rate_ci(summary),
                "half-width": num(width, 1),
                "target": status(width, tried.get((m, s), 0), goal, cap)[0 if short else 1],
            }
        )
    return rows


def diff_rows(cells: Cells, records: Sequence[Record], target: SeedTarget, short: bool = False) -> list[dict]:
    value, goal, cap = headline(target.metric), target.diff_ci, target.max_seeds
    base = cells.shown_as(target.against)
    tried = _tried(cells, records)
    rows = []
    for m, s in _targeted(cells):
        if s == base or (m, base) not in cells.by_cell:
            continue
        cmp = paired(cells, m, s, value, baseline=base)
        width = half(cmp)
        both = min(tried.get((m, s), 0), tried.get((m, base), 0))
        rows.append(
            {
                "method": m,
                "scheme": f"{s} - {base}",
                "paired seeds": str(cmp["n"]),
                "Δ pp": num(cmp["mean_diff"], 1),
                "95% CI": interval(cmp, 1),
                "half-width": num(width, 1),
                "target": status(width, both, goal, cap)[0 if short else 1],
            }
        )
    return rows


def _minimum_text(target: SeedTarget) -> str:
    """Why no group stopped before ``min_seeds`` (records since issue 24), or what the rule that
    could stop at the start seeds did to the means (older records)."""
    if target.min_seeds is not None:
        return (
            f"No group stopped before {target.min_seeds} seeds (`min_seeds`): a rate's spread grows"
            " with its mean, so on fewer seeds the groups whose first seeds happen to show a low rate"
            " would stop first, pulling the means down and leaving their intervals too narrow"
            " (docs/seed-rule.md)."
        )
    return (
        "The rule that made these records could stop a group at its start seeds. A rate's spread"
        " grows with its mean, so it stopped first the groups whose first seeds happened to show a"
        " low rate: the means of groups that stopped early may be low and their intervals too narrow"
        " (docs/seed-rule.md; runs since keep every group to `min_seeds`)."
    )


def seed_target_section(cells: Cells, records: Sequence[Record]) -> list[str]:
    """The report's account of a seed-target run; nothing for a run with fixed seeds."""
    target = study_target(records)
    if target is None:
        return []
    metric = target.metric
    out = [
        "### Seeds: target and stopping",
        "",
        "This study ran its start seeds for every method x scheme, then added seeds in rounds only"
        f" where an interval of the {metric} was still too wide, up to {target.max_seeds} seeds"
        f" (`--max-seeds`). {_minimum_text(target)}",
        "",
    ]
    for key, rows_of, what in (
        ("ci", mean_rows, f"each group's mean {metric} (`--target-ci`)"),
        (
            "diff_ci",
            diff_rows,
            f"each scheme's paired {metric} difference against `{target.against}` (`--target-diff-ci`)",
        ),
    ):
        goal = getattr(target, key)
        if goal is None:
            continue
        rows = rows_of(cells, records, target)
        met = sum(r["target"].startswith("within") for r in rows)
        capped = sum(r["target"].startswith("still above") for r in rows)
        out += [
            f"Target: 95% interval half-width at most ±{goal:g} point{'' if goal == 1 else 's'}"
            f" for {what}. {met} of"
            f" {len(rows)} stopped within it, {capped} hit the cap.",
            "",
            table(rows),
        ]
    return out
