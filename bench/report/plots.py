"""Report figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

Each function takes plain numbers already aggregated by ``bench.report`` and writes one PNG
atomically (a temporary file in the target folder, then ``os.replace``), so a reader never
sees a half-written image and a crashed rebuild leaves the previous figure in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from bench.core.atomic import write_bytes_atomic

GOOD_COLOUR = "black"
DPI = 110


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically; returns ``path``."""
    FigureCanvasAgg(fig)
    # No "Software" stamp: the bytes then depend on the data only.
    return write_bytes_atomic(
        Path(path), lambda fh: fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})
    )


def _defect_colours(codes: Sequence[str], good: str | None) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    defects = [c for c in codes if c != good]
    return {c: cmap(i % 20) for i, c in enumerate(defects)}


def plot_confusions(
    path: Path, title: str, matrices: Mapping[str, tuple[Sequence[str], np.ndarray]], good: str | None
) -> Path:
    """Row-normalized confusion matrices side by side, one panel per scheme.

    Rows are true classes, columns predicted; colours show the share of each true class on a
    log scale (errors are small shares, invisible on a linear scale) that starts at the share of
    a single count in the largest row, so the scale spans what the counts can show; cells hold
    raw counts, in black on light colours and white on dark ones.
    """
    n = max(len(matrices), 1)
    size = max(len(labels) for labels, _ in matrices.values()) if matrices else 2
    cell = 0.32 if size > 8 else 0.6
    fig = Figure(figsize=(n * (size * cell + 1.6), size * cell + 1.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    largest_row = max(
        (float(np.asarray(m).sum(axis=1).max(initial=0)) for _, m in matrices.values()), default=1.0
    )
    norm = LogNorm(vmin=1.0 / max(largest_row, 2.0), vmax=1.0)
    cmap = "viridis"
    image = None
    for ax, (scheme, (labels, matrix)) in zip(axes, matrices.items(), strict=False):
        matrix = np.asarray(matrix, dtype=np.float64)
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
        image = ax.imshow(np.where(share > 0, share, np.nan), cmap=cmap, norm=norm)
        ticks = np.arange(len(labels))
        tick_labels = [f"{c}*" if c == good else c for c in labels]
        ax.set_xticks(ticks, tick_labels, rotation=90, fontsize=7)
        ax.set_yticks(ticks, tick_labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(scheme, fontsize=9)
        font = 5 if size > 8 else 8
        colours = image.cmap(norm(np.clip(share, norm.vmin, 1.0)))
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    j,
                    i,
                    f"{int(count)}",
                    ha="center",
                    va="center",
                    fontsize=font,
                    color=text_colour(colours[i, j]),
                )
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of the true class (log scale)")
    fig.suptitle(f"{title} (counts summed over seeds; * = good class)", fontsize=10)
    return save_figure(fig, path)


def confusion_norm(matrices: Mapping[str, tuple[Sequence[str], np.ndarray]]) -> LogNorm:
    """The log colour scale of ``plot_confusions``: from the share of one count in the largest
    row (the smallest share any cell can hold) to 1."""
    rows = [float(np.asarray(m).sum(axis=1).max(initial=0)) for _, m in matrices.values()]
    return LogNorm(vmin=1.0 / max(max(rows, default=2.0), 2.0), vmax=1.0)


def text_colour(rgba: Sequence[float]) -> str:
    """Black on a light background, white on a dark one (by perceived luminance)."""
    red, green, blue = rgba[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def plot_embeddings(path: Path, projections: Mapping[str, Mapping[str, list]], good: str | None) -> Path:
    """One 2-D PCA scatter per method; the good class in large black markers, defects in tab20."""
    n = max(len(projections), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    all_codes = sorted({c for p in projections.values() for c in p.get("label", [])}, key=code_key)
    colours = _defect_colours(all_codes, good)
    for ax, (method, proj) in zip(axes, projections.items(), strict=False):
        x, y = np.asarray(proj.get("x", []), float), np.asarray(proj.get("y", []), float)
        labels = np.asarray(proj.get("label", []), dtype=object)
        is_good = labels == good
        defect = ~is_good
        ax.scatter(x[defect], y[defect], s=9, c=[colours[c] for c in labels[defect]], linewidths=0, alpha=0.8)
        ax.scatter(x[is_good], y[is_good], s=18, c=GOOD_COLOUR, marker="o", linewidths=0, label="good")
        ax.set_title(method, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(projections) :]:
        ax.set_axis_off()
    handles = [
        axes[0].scatter([], [], s=18, c=GOOD_COLOUR, label=f"{good} (good)" if good else "good"),
        *(axes[0].scatter([], [], s=10, color=colours[c], label=c) for c in colours),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=6, title="class", title_fontsize=7)
    fig.suptitle("Test embeddings, first two principal components (uniform scheme, one seed)", fontsize=10)
    return save_figure(fig, path)


def plot_bars(
    path: Path,
    methods: Sequence[str],
    schemes: Sequence[str],
    panels: Mapping[str, Mapping[tuple[str, str], dict]],
) -> Path:
    """Grouped bars (method groups, one bar per scheme) with 95% interval error bars.

    Args:
        path: the PNG to write.
        methods: x-axis groups in order.
        schemes: bars per group in order.
        panels: {panel title: {(method, scheme): summary dict of a rate in % from
            ``bench.report.stats.summarize``}}; the intervals may be asymmetric.
    """
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    fig = Figure(figsize=(max(6.0, 1.6 * len(methods) + 2), 3.2 * len(panels) + 0.4), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    width = 0.8 / max(len(schemes), 1)
    centres = np.arange(len(methods))
    for ax, (title, table) in zip(axes, panels.items(), strict=True):
        for k, scheme in enumerate(schemes):
            means, low_err, high_err = [], [], []
            for m in methods:
                s = table.get((m, scheme)) or {}
                mean = s.get("mean")
                means.append(np.nan if mean is None else mean)
                lo, hi = s.get("ci_low"), s.get("ci_high")
                low_err.append(0.0 if lo is None or mean is None else mean - lo)
                high_err.append(0.0 if hi is None or mean is None else hi - mean)
            ax.bar(
                centres + (k - (len(schemes) - 1) / 2) * width,
                means,
                width,
                yerr=[low_err, high_err],
                capsize=2,
                color=cmap(k % 10),
                label=scheme,
            )
        ax.set_xticks(centres, list(methods), fontsize=8)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, ncols=min(len(schemes), 6), title="scheme", title_fontsize=7)
    intervals = any(s.get("ci_low") is not None for table in panels.values() for s in table.values())
    fig.suptitle(
        "Mean over seeds; bars: 95% Student-t intervals on the logit scale"
        if intervals
        else "One seed per bar: no intervals",
        fontsize=10,
    )
    return save_figure(fig, path)


def plot_good_k(path: Path, series: Mapping[str, Sequence[tuple[float, dict, dict]]]) -> Path:
    """Escape and overkill (in %) as the good-class weight K grows, one line per method.

    Args:
        path: the PNG to write.
        series: {method: [(K, escape summary, overkill summary), ...]} sorted by K.
    """
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    all_k = sorted({p[0] for points in series.values() for p in points})
    for ax, which, label in ((axes[0], 1, "escape rate (%)"), (axes[1], 2, "overkill rate (%)")):
        for method, points in series.items():
            ks = np.array([p[0] for p in points], float)
            s = [p[which] for p in points]
            mean = np.array([np.nan if v.get("mean") is None else v["mean"] for v in s])
            lo = np.array(
                [m if v.get("ci_low") is None else v["ci_low"] for v, m in zip(s, mean, strict=True)]
            )
            hi = np.array(
                [m if v.get("ci_high") is None else v["ci_high"] for v, m in zip(s, mean, strict=True)]
            )
            ax.errorbar(ks, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_k, [f"{k:g}" for k in all_k])
        ax.minorticks_off()
        ax.set_xlabel("K (good-class weight; uniform = 1)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Trading escapes for overkill as the good class gets more anchors", fontsize=10)
    return save_figure(fig, path)


def plot_loss_curves(
    path: Path,
    curves: Mapping[str, Sequence[tuple[str, int, Mapping[str, list], bool]]],
    collapse_values: Mapping[str, Sequence[float]],
    schemes: Sequence[str],
) -> Path:
    """Training loss against step, one panel per method, every seed a thin line.

    Args:
        path: the PNG to write.
        curves: {method: [(scheme, seed, {"step": [...], "loss": [...]}, collapsed), ...]}.
        collapse_values: {method: the loss values a collapsed fit scores}, drawn dashed.
        schemes: the schemes in legend order.

    Lines take their scheme's colour; collapsed seeds are drawn in red on top, so a collapse
    shows at a glance, and so does a loss that never leaves its collapse value.
    """
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    colour = {s: cmap(i % 10) for i, s in enumerate(schemes)}
    n = max(len(curves), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.8 * cols, 3.0 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (method, runs) in zip(axes, curves.items(), strict=False):
        for scheme, _seed, curve, collapsed in sorted(runs, key=lambda r: r[3]):
            ax.plot(
                curve["step"],
                curve["loss"],
                lw=0.8 if collapsed else 0.6,
                alpha=0.9 if collapsed else 0.6,
                color="red" if collapsed else colour[scheme],
            )
        for value in collapse_values.get(method, ()):
            ax.axhline(value, color="grey", ls="--", lw=0.8)
        ax.set_ylim(bottom=0)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(curves) :]:
        ax.set_axis_off()
    handles = [axes[0].plot([], [], color=colour[s], lw=1, label=s)[0] for s in schemes]
    if any(run[3] for runs in curves.values() for run in runs):
        handles.append(axes[0].plot([], [], color="red", lw=1, label="collapsed seed")[0])
    handles.append(axes[0].plot([], [], color="grey", ls="--", lw=0.8, label="collapse value")[0])
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    fig.suptitle("Training loss per seed (mean of each logged window)", fontsize=10)
    return save_figure(fig, path)


def code_key(code: str) -> tuple:
    """Sort key for label codes: numeric codes in numeric order, then the others by name."""
    return (0, int(code), code) if code.isdigit() else (1, 0, code)
