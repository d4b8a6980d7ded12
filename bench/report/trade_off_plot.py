"""The escape-vs-overkill figure of the *Operating points* section (matplotlib's object API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.report.plots import save_figure

#: Rates below this (in %) are drawn at it on the log axes (a log axis has no 0).
FLOOR_PCT = 0.05


def plot_trade_off(path: Path, series: Mapping[str, Mapping[str, tuple[Sequence, Sequence]]]) -> Path:
    """One panel per scheme, one line per method: test overkill (%) against test escape (%).

    Args:
        path: the PNG to write.
        series: {scheme: {method: (curves, points)}}: each seed's ``EscapeCurve`` and the
            (test escape, test overkill) of each seed's validation-chosen operating points.
    """
    schemes = list(series)
    fig = Figure(figsize=(4.2 * len(schemes), 3.8), layout="constrained")
    axes = fig.subplots(1, len(schemes), squeeze=False)[0]
    for ax, scheme in zip(axes, schemes, strict=True):
        for index, (method, (curves, points)) in enumerate(series[scheme].items()):
            colour = f"C{index % 10}"
            levels = np.asarray(curves[0].escape, float) * 100
            values = np.array(
                [
                    [np.nan if v is None else 100 * v for v in c.overkill]
                    for c in curves
                    if len(c.overkill) == len(levels)
                ]
            )
            keep = levels > 0
            x = levels[keep]
            y = np.clip(values[:, keep], FLOOR_PCT, None)
            ax.plot(x, np.nanmedian(y, axis=0), color=colour, marker=".", label=method)
            ax.fill_between(x, np.nanmin(y, axis=0), np.nanmax(y, axis=0), color=colour, alpha=0.15)
            if points:
                px = np.clip([100 * e for e, _ in points], FLOOR_PCT, None)
                py = np.clip([100 * o for _, o in points], FLOOR_PCT, None)
                ax.scatter(px, py, color=colour, marker="x", s=18)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("test escape (%)")
        ax.set_ylabel("test overkill (%)")
        ax.set_title(scheme, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Escape vs overkill (rates below {FLOOR_PCT}% drawn at it)", fontsize=10)
    return save_figure(fig, path)
