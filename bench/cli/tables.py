"""Tables on the terminal that never cut a name or a number short.

On a terminal wide enough for every name and number in full, a rich table (free-text columns
wrap); anywhere else (a pipe, a file, CI, a narrow terminal) a plain markdown table, which a
pipe keeps whole and ``grep`` can read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text
from tabulate import tabulate

#: ``(name, justify)`` per column; justify is ``"left"`` or ``"right"``.
Columns = Sequence[tuple[str, str]]
#: Narrowest a free-text column may get on a terminal before the table turns to markdown.
MIN_TEXT_WIDTH = 16


def plain(text: str) -> str:
    """reStructuredText inline markup as plain text: ``literal`` and :role:`name` lose their marks."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``(.+?)``", r"\1", text)


def summary_line(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring as one line of plain text."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return plain(" ".join(doc.split("\n\n", 1)[0].split()))


def cell(value: object) -> str:
    """A table cell: nothing for a missing value (never ``None``)."""
    return "-" if value is None or value == "" else str(value)


def print_table(
    console: Console,
    title: str,
    columns: Columns,
    rows: Sequence[Sequence[object]],
    wrap: Sequence[str] = (),
    show_header: bool = True,
) -> None:
    """Print ``rows`` under ``title``: rich when it fits the terminal, markdown otherwise.

    Args:
        console: where to print; ``console.is_terminal`` and ``console.width`` decide the form.
        title: the table's title.
        columns: ``(name, justify)`` per column.
        rows: cell values (``None`` prints as ``-``).
        wrap: columns of free text that may wrap on a terminal; every other column is kept
            on one line, and when they do not all fit the table is printed as markdown.
        show_header: whether a terminal table shows the column names (markdown always does).
    """
    texts = [[cell(v) for v in row] for row in rows]
    table = Table(title=title, show_header=show_header)
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name not in wrap, overflow="fold")  # type: ignore[arg-type]
    for row in texts:
        table.add_row(*(Text(v) for v in row))
    if console.is_terminal and _least_width(columns, texts, wrap, show_header) <= console.width:
        console.print(table)
        return
    align = ["right" if justify == "right" else "left" for _, justify in columns]
    body = tabulate(
        texts, headers=[name for name, _ in columns], tablefmt="pipe", colalign=align, disable_numparse=True
    )
    console.print(f"{title}\n\n{body}\n", markup=False, highlight=False, emoji=False, soft_wrap=True)


def _least_width(columns: Columns, texts: list[list[str]], wrap: Sequence[str], show_header: bool) -> int:
    """Terminal width a rich table needs to show every one-line column whole."""
    from rich.cells import cell_len

    total = 1  # the left border; each column adds its padding (2) and a border (1)
    for i, (name, _) in enumerate(columns):
        widest = max([cell_len(row[i]) for row in texts] + [cell_len(name) if show_header else 0])
        total += 3 + (min(widest, MIN_TEXT_WIDTH) if name in wrap else widest)
    return total
