"""Schemes that gave the same per-class weights in a study, found from its records, so the
report shows them once, named together (``natural = good-x5``), and counts them once in every
family of paired tests.

Two schemes are one when the records of each carry one balance plan, the two plans' weights are
the same (``bench.sampling.same_weights``, the rule by which the grid trains such a group once),
and every method and seed both ran measured the same test metrics. The grid writes the second
scheme's records as copies of the first's (``same_weights_as``); records made before it did were
trained twice and are bit-identical, so the same rule finds them. A study where equal weights
measured different numbers keeps the schemes apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from bench.grid.record import Record
from bench.sampling.same_weights import Weights, same_plan

#: Joins the schemes of one group in its label.
SEPARATOR = " = "


def members(label: str) -> list[str]:
    """The scheme labels a (possibly merged) label stands for: ``natural = good-x5`` -> both."""
    return label.split(SEPARATOR)


def plan_weights(rec: Record) -> tuple[tuple[str, ...], Weights] | None:
    """A record's plan as (class codes, (first-step weights, last-step weights)); None without one."""
    start = (rec.plan or {}).get("start")
    if not isinstance(start, Mapping) or not start:
        return None
    end = rec.plan.get("end") or start
    if not isinstance(end, Mapping) or list(end) != list(start):
        return None
    return tuple(start), (list(start.values()), list(end.values()))


def _one_plan(records: Sequence[Record]) -> tuple[tuple[str, ...], Weights] | None:
    """The plan every record of one scheme label carries; None if one lacks it or they differ."""
    plans = [plan_weights(r) for r in records]
    first = plans[0] if plans else None
    if first is None or any(p is None or p[0] != first[0] or not same_plan(p[1], first[1]) for p in plans):
        return None
    return first


def merged_labels(
    records: Sequence[Record],
    scheme_labels: Mapping[str, str],
    method_labels: Mapping[str, str],
    order: Callable[[str], tuple],
) -> dict[str, str]:
    """Each scheme label of ``scheme_labels`` (by record hash) -> the label it is shown under:
    itself, or its group's labels in ``order`` joined by ``SEPARATOR``."""
    by_label: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        by_label[scheme_labels[rec.hash]].append(rec)
    measured: dict[str, dict[tuple[str, int], Record]] = {
        label: {(method_labels[r.hash], r.config.seed): r for r in recs if r.ok}
        for label, recs in by_label.items()
    }
    plans = {label: _one_plan(recs) for label, recs in by_label.items()}

    def same(a: str, b: str) -> bool:
        pa, pb = plans[a], plans[b]
        if pa is None or pb is None or pa[0] != pb[0] or not same_plan(pa[1], pb[1]):
            return False
        shared = measured[a].keys() & measured[b].keys()
        return all(
            measured[a][k].metrics == measured[b][k].metrics
            and measured[a][k].metrics_by_rule == measured[b][k].metrics_by_rule
            for k in shared
        )

    groups: list[list[str]] = []
    for label in sorted(by_label, key=order):
        group = next((g for g in groups if same(g[0], label)), None)
        if group is None:
            groups.append([label])
        else:
            group.append(label)
    return {label: SEPARATOR.join(g) for g in groups for label in g}


def named(label: str, scheme: str) -> str:
    """``scheme`` as a sentence names it inside its group's ``label``: ``good-x5 (= natural,
    identical weights)``; just ``scheme`` when it is alone."""
    others = [m for m in members(label) if m != scheme]
    return f"{scheme} (= {', '.join(others)}, identical weights)" if others else scheme


def setup_lines(records: Sequence[Record], shown: Mapping[str, str]) -> list[str]:
    """The set-up's line naming each group of schemes with the same weights (none without one)."""
    groups = sorted({label for label in shown.values() if SEPARATOR in label})
    if not groups:
        return []
    copied = sum(r.same_weights_as is not None for r in records)
    how = (
        f"{copied} of their records are the trained scheme's, copied (`same_weights_as`): the grid trained each group once"
        if copied
        else "each was trained, and measured the same on every seed"
    )
    return [
        "- **Same weights:** "
        + "; ".join(" and ".join(f"`{m}`" for m in members(g)) for g in groups)
        + f" give the same per-class weights on this data, so they draw the same batches ({how});"
        " each is shown once, named together (" + ", ".join(f"`{g}`" for g in groups) + "), and"
        " counted once in every family of paired tests."
    ]
