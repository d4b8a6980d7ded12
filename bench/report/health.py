"""The *Training health* section: which cells collapsed, how many dimensions their test
embeddings fill, and every seed's training-loss curve.

Shown only for records that carry a ``health`` entry (runs before it existed rebuild unchanged).
The ``collapsed`` flag is the record's, as ``bench.evaluation.health`` set it when the cell ran;
the section states the rule its records were flagged by (``health["rule"]``, 1 when absent), so
a report rebuilt from older records states their rule, not today's.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import plots
from bench.report.cells import Cells
from bench.report.format import num, table

#: Each version of the ``collapsed`` rule, as the section states it.
RULE_TEXTS = {
    1: (
        "A cell counts as *collapsed* when its test embeddings put more than max(0.5, 2/C) of their"
        " variance on the first principal component, or their effective rank (RankMe: exp of the"
        " entropy of the normalized singular values) is below min(C, d)/4 (C classes, embedding size d),"
        " or its final training loss is at least 90% of the loss's collapse value (the loss of a fit"
        " whose embeddings all sit at one point: a margin loss's margin, the classifier's class-prior"
        " entropy)."
    ),
    2: (
        "A cell counts as *collapsed* when its test embeddings carry no class signal (their class"
        " signal, (P - 1/C) / (1 - 1/C) with P the precision@1 per class against the training split and"
        " C classes, is below 0.2: 0 is chance, 1 every nearest neighbour of the right class), or when"
        " two of three signs show: an effective rank (RankMe: exp of the entropy of the normalized"
        " singular values) below min(C - 1, d)/2 (embedding size d), more than half of the variance on"
        " the first principal component, a final training loss at least 90% of the loss's collapse value"
        " (the loss of a fit whose embeddings all sit at one point: a margin loss's margin, the"
        " classifier's class-prior entropy). docs/health.md: the cases the rule is checked on."
    ),
}


def _rule_text(versions: set[int]) -> str:
    if len(versions) == 1:
        return RULE_TEXTS.get(next(iter(versions)), f"Rule {next(iter(versions))}.")
    return " ".join(f"Rule {v} (records flagged by it): {RULE_TEXTS.get(v, '')}" for v in sorted(versions))


def _range(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    low, high = num(min(values), digits), num(max(values), digits)
    return low if low == high else f"{low}–{high}"


def health_section(cells: Cells, plot_dir: Path, prefix: str) -> list[str]:
    """Collapsed seeds and the spread of the embeddings per method x scheme, and the loss plot;
    nothing when no record of the study carries ``health``."""
    rows = []
    curves: dict[str, list[tuple[str, int, dict, bool]]] = {}
    collapse_values: dict[str, set[float]] = {}
    versions: set[int] = set()
    # Records from before the class signal leave its column out (their reports rebuild unchanged).
    signals = any(
        rec.health is not None and rec.health.class_signal is not None
        for by_seed in cells.by_cell.values()
        for rec in by_seed.values()
    )
    for m, s in cells.cells():
        seeds = {seed: rec.health for seed, rec in cells.by_cell[(m, s)].items() if rec.health is not None}
        if not seeds:
            continue
        collapsed = [seed for seed, h in seeds.items() if h.collapsed]
        finals = [h.final_loss for h in seeds.values() if h.final_loss is not None]
        collapse = {h.collapse_loss for h in seeds.values() if h.collapse_loss is not None}
        versions.update(h.rule or 1 for h in seeds.values())
        signal = [h.class_signal for h in seeds.values() if h.class_signal is not None]
        rows.append(
            {
                "method": m,
                "scheme": s,
                "collapsed": f"{len(collapsed)} of {len(seeds)}",
                "collapsed seeds": ", ".join(str(seed) for seed in sorted(collapsed)) or "–",
                "effective rank": _range([h.effective_rank for h in seeds.values()], 1),
                "PC1 share %": _range([100 * h.pc1_share for h in seeds.values()], 0),
                **({"class signal": _range(signal, 2)} if signals else {}),
                "final loss": _range(finals, 4),
                "collapse value": _range(sorted(collapse), 4),
            }
        )
        for seed, h in sorted(seeds.items()):
            if h.loss_curve is not None and h.loss_curve.step:
                curves.setdefault(m, []).append((s, seed, h.loss_curve.to_json(), bool(h.collapsed)))
        collapse_values.setdefault(m, set()).update(collapse)
    if not rows:
        return []
    out = [
        "### Training health",
        "",
        _rule_text(versions) + " Ranges are over seeds.",
        "",
        table(rows),
    ]
    if curves:
        path = plot_dir / f"{prefix}training-loss.png"
        drawn = {s for runs in curves.values() for s, *_ in runs}
        plots.plot_loss_curves(
            path,
            curves,
            {m: sorted(v) for m, v in collapse_values.items()},
            [s for s in cells.schemes if s in drawn],
        )
        rel = path.relative_to(plot_dir.parent).as_posix()
        out += ["**Training loss, every seed**", "", f"![Training loss, every seed]({rel})", ""]
    return out
