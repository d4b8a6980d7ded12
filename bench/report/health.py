"""The *Training health* section: which cells collapsed, how many dimensions their test
embeddings fill, and every seed's training-loss curve.

Shown only for records that carry ``health``. The rule behind ``collapsed`` is ``bench.evaluation.health``'s, stated in the section itself.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import plots
from bench.report.cells import Cells
from bench.report.format import num, table

RULE_TEXT = (
    "A cell counts as *collapsed* when its test embeddings put more than max(0.5, 2/C) of their"
    " variance on the first principal component, or their effective rank (RankMe: exp of the"
    " entropy of the normalized singular values) is below min(C, d)/4 (C classes, embedding size d),"
    " or its final training loss is at least 90% of the loss's collapse value (the loss of a fit"
    " whose embeddings all sit at one point: a margin loss's margin, the classifier's class-prior"
    " entropy)."
)


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
    for m, s in cells.cells():
        seeds = {seed: rec.health for seed, rec in cells.by_cell[(m, s)].items() if rec.health is not None}
        if not seeds:
            continue
        collapsed = [seed for seed, h in seeds.items() if h.collapsed]
        finals = [h.final_loss for h in seeds.values() if h.final_loss is not None]
        collapse = {h.collapse_loss for h in seeds.values() if h.collapse_loss is not None}
        rows.append(
            {
                "method": m,
                "scheme": s,
                "collapsed": f"{len(collapsed)} of {len(seeds)}",
                "collapsed seeds": ", ".join(str(seed) for seed in sorted(collapsed)) or "–",
                "effective rank": _range([h.effective_rank for h in seeds.values()], 1),
                "PC1 share %": _range([100 * h.pc1_share for h in seeds.values()], 0),
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
        RULE_TEXT + " Ranges are over seeds.",
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
