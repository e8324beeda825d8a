"""A query's rows on a terminal: a grid of the query's own columns (not the alert layout).

Every header and value passes through safetext (control and bidi characters shown escaped).
Long values are cut at `CELL` characters, and the columns that do not fit the width are left
out; a note under the grid says what was cut or left out and that -f csv/json has it whole.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from typing import Any, TextIO

from rich.table import Table

from exhunt import safetext

#: The widest a cell is shown; longer values end in an ellipsis.
CELL = 60
#: The width used when the output is not a terminal (a file, a pipe).
PLAIN_WIDTH = 200
_GAP = 2


def cell(value: Any) -> str:
    """A value as one line of inert text: null empty, dynamic as compact JSON, times in ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return safetext.shown(value)


def width_of(out: TextIO) -> int:
    """The terminal's width when `out` is one, else PLAIN_WIDTH."""
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return max(40, shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns)
    return PLAIN_WIDTH


def write_grid(rows: list[dict[str, Any]], columns: list[str], out: TextIO, width: int | None = None) -> None:
    """`rows` as a grid of `columns` (in that order) fitting `width` characters."""
    width = width or width_of(out)
    console = safetext.console(file=out, highlight=False, soft_wrap=False, width=width, markup=False)
    if not columns:
        console.print("No columns.")
        return
    headers = [safetext.shown(c) for c in columns]
    texts = [[cell(r.get(c)) for c in columns] for r in rows]
    cut = sum(1 for line in texts for t in line if len(t) > CELL)
    texts = [[t if len(t) <= CELL else t[:CELL - 1] + "…" for t in line] for line in texts]
    shown: list[int] = []
    used = 0
    for i, header in enumerate(headers):
        need = max([len(header), *(len(line[i]) for line in texts)])
        if shown and used + _GAP + need > width:
            break
        shown.append(i)
        used += need + (_GAP if shown[1:] else 0)
    table = Table(box=None, pad_edge=False, expand=False, show_edge=False, padding=(0, _GAP, 0, 0))
    for i in shown:
        table.add_column(headers[i], no_wrap=True, overflow="ellipsis", header_style="bold")
    for line in texts:
        table.add_row(*(line[i] for i in shown))
    console.print(table)
    if not rows:
        console.print("No rows.")
    notes = []
    hidden = [headers[i] for i in range(len(headers)) if i not in shown]
    if hidden:
        notes.append(f"{len(hidden)} column(s) not shown for width: {', '.join(hidden)}")
    if cut:
        notes.append(f"{cut} value(s) cut at {CELL} characters")
    if notes:
        console.print(f"note: {'; '.join(notes)} (-f csv or -f json has every column whole).", soft_wrap=True)
