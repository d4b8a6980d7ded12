"""Number and table formatting shared by every report section: fixed formats, so a rebuild is
byte-identical."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd


def num(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0"


def mean_ci(s: dict, digits: int = 1, grouped: bool = False) -> str:
    """``mean ± half-width`` of a 95% interval (just the mean when n = 1); ``grouped`` puts
    thousands separators in."""
    if s.get("mean") is None:
        return "–"

    def fmt(value: float) -> str:
        return f"{value:,.{digits}f}" if grouped else num(value, digits)

    if s.get("ci_low") is None:
        return fmt(s["mean"])
    return f"{fmt(s['mean'])} ± {fmt((s['ci_high'] - s['ci_low']) / 2)}"


def rate_ci(s: dict, digits: int = 1) -> str:
    """``mean (low–high)`` of a rate's 95% interval, which need not be symmetric (just the mean
    when n = 1)."""
    if s.get("mean") is None:
        return "–"
    if s.get("ci_low") is None:
        return num(s["mean"], digits)
    return f"{num(s['mean'], digits)} ({num(s['ci_low'], digits)}–{num(s['ci_high'], digits)})"


def half(s: dict) -> float | None:
    """Half the width of a summary's interval, None without one."""
    return None if s.get("ci_low") is None else (s["ci_high"] - s["ci_low"]) / 2


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def count(n: int | None) -> str:
    """A whole number with thousands separators; ``–`` for None."""
    return "–" if n is None else f"{n:,}"


def interval(s: dict, digits: int = 1) -> str:
    if s.get("ci_low") is None:
        return "n/a"
    return f"{num(s['ci_low'], digits)} to {num(s['ci_high'], digits)}"


def p_text(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_(none)_\n"
    frame = pd.DataFrame(rows, columns=list(columns) if columns else None).fillna("–")
    # Every cell is preformatted text: stop tabulate from re-parsing "91.2 ± 1.3" or codes.
    return frame.astype(str).to_markdown(index=False, disable_numparse=True) + "\n"


def cell_text(text) -> str:
    """One table-safe line: pipes escaped, newlines folded, long messages cut."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= 300 else text[:297] + "..."
