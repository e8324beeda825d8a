"""A query's rows on a terminal: a grid of the query's own columns (not the alert layout).

Every header and value passes through safetext (control and bidi characters shown escaped).
Long values are cut at `CELL` characters, and the columns that do not fit the width are left
out; a note under the grid says what was cut or left out and that -f csv/json has it whole.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from typing import Any, TextIO

from rich.table import Table

from exhunt import safetext

#: The widest a cell is shown; longer values end in an ellipsis.
CELL = 60
#: The width used when the output is not a terminal (a file, a pipe) and $COLUMNS is not set:
#: the 80 columns of exhunt's other tables.
PLAIN_WIDTH = 80
_GAP = 2
#: A column that does not fit is still shown, cut, when this much room is left for it.
_NARROWEST = 12


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
    """The terminal's width when `out` is one, else $COLUMNS, else PLAIN_WIDTH."""
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return max(40, shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns)
    columns = os.environ.get("COLUMNS", "")
    return max(40, int(columns)) if columns.isdigit() else PLAIN_WIDTH


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
    limit: dict[int, int] = {}  # a last column narrowed to the room left
    used = 0
    for i, header in enumerate(headers):
        need = max([len(header), *(len(line[i]) for line in texts)])
        room = width - used - (_GAP if shown else 0)
        if shown and need > room:
            if room >= _NARROWEST:
                shown.append(i)
                limit[i] = room
                cut += sum(1 for line in texts if len(line[i]) > room)
            break
        shown.append(i)
        used += need + (_GAP if shown[1:] else 0)
    table = Table(box=None, pad_edge=False, expand=False, show_edge=False, show_header=True,
                  padding=(0, 0, 0, 0), collapse_padding=True)
    for n, i in enumerate(shown):
        table.add_column(headers[i], no_wrap=True, overflow="ellipsis", header_style="bold",
                         max_width=limit.get(i))
        if n < len(shown) - 1:
            table.add_column("", no_wrap=True, width=_GAP)  # the gap, so the last column ends the line
    for line in texts:
        cells = []
        for n, i in enumerate(shown):
            cells += [line[i]] if n == len(shown) - 1 else [line[i], ""]
        table.add_row(*cells)
    console.print(table)
    if not rows:
        console.print("No rows.")
    notes = []
    hidden = [headers[i] for i in range(len(headers)) if i not in shown]
    if hidden:
        notes.append(f"{len(hidden)} column(s) not shown for width: {', '.join(hidden)}")
    if cut:
        notes.append(f"{cut} value(s) cut to fit (at most {CELL} characters)")
    if notes:
        console.print(f"note: {'; '.join(notes)} (-f csv or -f json has every column whole).")
