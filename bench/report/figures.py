"""The plot section of the report: draws the PNGs from the cells and links them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.report import plots
from bench.report.cells import BASELINE_SCHEME, REFERENCE_SCHEME, Cells, good_k, headline


def plot_section(cells: Cells, plot_dir: Path, prefix: str, good: str | None, rule: str) -> list[str]:
    links: list[tuple[str, Path]] = []
    base = cells.shown_as(BASELINE_SCHEME)
    for m in cells.methods:
        matrices = {}
        for s in dict.fromkeys((base, cells.shown_as(REFERENCE_SCHEME))):
            total = None
            labels = None
            for rec in cells.by_cell.get((m, s), {}).values():
                conf = rec.metrics.confusion
                if conf is None or not (conf.labels or conf.matrix):
                    continue
                mat = np.asarray(conf.matrix, dtype=np.int64)
                if total is None:
                    total, labels = mat, list(conf.labels)
                elif mat.shape == total.shape:
                    total = total + mat
            if total is not None:
                matrices[s] = (labels, total)
        if matrices:
            path = plot_dir / f"{prefix}confusion-{slug(m)}.png"
            plots.plot_confusions(path, f"{m}, rule {rule}", matrices, good)
            links.append((f"Confusion matrices, {m}", path))

    projections = {}
    for m in cells.methods:
        seeds = cells.by_cell.get((m, base)) or {}
        for seed in sorted(seeds):
            proj = seeds[seed].embedding_2d
            if proj is not None and proj.x:
                projections[f"{m} (seed {seed})"] = proj.to_json()
                break
    if projections:
        path = plot_dir / f"{prefix}embedding.png"
        plots.plot_embeddings(path, projections, good)
        links.append(("Embedding scatter (uniform)", path))

    if cells.cells():
        panels = {
            "accuracy (%)": {(m, s): cells.rate(m, s, headline("accuracy")) for m, s in cells.cells()},
            "escape rate (%)": {(m, s): cells.rate(m, s, headline("escape")) for m, s in cells.cells()},
        }
        path = plot_dir / f"{prefix}accuracy-escape.png"
        plots.plot_bars(path, cells.methods, cells.schemes, panels)
        links.append(("Accuracy and escape by method and scheme", path))

    k_schemes = [s for s in cells.schemes if good_k(s) is not None]
    if len([s for s in k_schemes if s != base]) >= 2:
        series = {}
        for m in cells.methods:
            points = [
                (
                    good_k(s),
                    cells.rate(m, s, headline("escape")),
                    cells.rate(m, s, headline("overkill")),
                )
                for s in k_schemes
                if (m, s) in cells.by_cell
            ]
            if len(points) >= 2:
                series[m] = sorted(points, key=lambda p: p[0])
        if series:
            path = plot_dir / f"{prefix}good-k.png"
            plots.plot_good_k(path, series)
            links.append(("Escape and overkill as K grows (good-xK)", path))

    out = ["### Plots", ""]
    for title, path in links:
        rel = path.relative_to(plot_dir.parent).as_posix()
        out += [f"**{title}**", "", f"![{title}]({rel})", ""]
    if not links:
        out += ["No finished cells to plot.", ""]
    return out


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
