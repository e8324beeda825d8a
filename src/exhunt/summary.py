"""The run summary on stderr: per file, records read, used (per table), skipped and why."""

from __future__ import annotations

import os
from collections import Counter
from typing import TextIO

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from exhunt.safetext import console as safe_console
from exhunt.safetext import markup, shown
from exhunt.sources.base import FileReport
from exhunt.timerange import OUTSIDE


def totals(reports: list[FileReport]) -> tuple[int, int, int]:
    return (sum(r.read for r in reports), sum(r.total_used for r in reports),
            sum(r.total_skipped for r in reports))


def problems(reports: list[FileReport]) -> int:
    """Records skipped, values coerced, files refused: anything --strict turns into exit 2.
    Rows left out by --from/--to are the user's choice, not a problem."""
    return sum(r.total_skipped - r.skipped.get(OUTSIDE, 0) + sum(r.coerced.values()) + (1 if r.error else 0)
               + r.damaged_chunks for r in reports)


#: Said under the table when a file made more table rows than it had records.
ROWS_MADE = ("* used counts the table rows made, which can exceed the records read: a Windows event "
             "becomes an Event row and a row of each other table it maps to (tables / notes), and a "
             "PowerShell script block or pipeline event one DeviceEvents row per command it ran.")
#: Columns of the input table other than the file: their least width, padding included.
_OTHER_COLUMNS = 48


def middle(name: str, width: int) -> str:
    """`name` in at most `width` characters: the middle replaced by `…`, the end (the file's
    own name) kept whole when it fits."""
    if len(name) <= width:
        return name
    cut = max(name.rfind("/"), name.rfind("\\"), name.rfind("!"))
    base = len(name) - cut  # the last component and its separator (more than all when none)
    tail = min(max(base, width * 2 // 3), width - 2)
    return name[: width - 1 - tail] + "…" + name[len(name) - tail:]


def _file_cells(reports: list[FileReport], width: int | None) -> list[str]:
    """Each file's name as the table shows it: whole when not a terminal (`width` None: logs
    get grepped and names copied), else ellipsised in the middle to fit; never folded."""
    names = [shown(r.path) for r in reports]
    if width is None:
        return names
    room = max(24, width - _OTHER_COLUMNS)
    return [middle(n, room) for n in names]


def _width(table: Table) -> int:
    """The width for a table written to a file or pipe: COLUMNS (default 100), or wider when
    the table needs it (file names are never wrapped), up to a notes column of 60."""
    base = int(os.environ.get("COLUMNS") or 100)
    probe = Console(width=100_000)
    natural = Measurement.get(probe, probe.options, table).maximum
    file_width = max((cell.cell_len for cell in table.columns[0].cells if isinstance(cell, Text)), default=4)
    return max(base, min(natural, file_width + _OTHER_COLUMNS + 60))


#: The archive formats (their rows say how many members, the members' rows the rest).
CONTAINERS = ("zip", "gzip", "tar", "7z")
#: Files named when a run read nothing usable (the summary above lists them all).
UNUSABLE_SHOWN = 20


def nothing_usable(reports: list[FileReport], paths: list[str]) -> str | None:
    """Why the run has nothing to hunt in, when no input was in a format exhunt reads (None
    when one was, even if it held no records): a run over notes, configs or an empty folder
    must not end with "No alerts." as if it had looked."""
    from exhunt.sources import readers

    formats = set(readers())
    if any(r.read > 0 or (r.format in formats and r.error is None) for r in reports):
        return None
    if not reports:
        return f"no input was in a format exhunt reads: no files in {', '.join(shown(p) for p in paths)}"
    lines = ([f"{shown(r.path)}: {shown(r.error)}" for r in reports if r.error]
             or [f"{shown(r.path)}: no records" for r in reports])
    more = len(lines) - UNUSABLE_SHOWN
    listed = lines[:UNUSABLE_SHOWN] + ([f"... {more} more"] if more > 0 else [])
    # One line (errors are printed on one line): the files are separated by "; ".
    return "no input was in a format exhunt reads (see `exhunt formats`): " + "; ".join(listed)


def render(reports: list[FileReport], out: TextIO, verbose: bool = False) -> None:
    terminal = out.isatty()
    console = safe_console(file=out, highlight=False)
    table = Table(title="Input", box=None, pad_edge=False)
    table.add_column("file", no_wrap=True)
    table.add_column("format")
    for col in ("read", "used", "skipped"):
        table.add_column(col, justify="right")
    table.add_column("tables / notes", ratio=1)
    more_rows = False
    for r, name in zip(reports, _file_cells(reports, console.width if terminal else None), strict=True):
        if r.format in CONTAINERS and not r.error and not r.read:
            notes = markup(r.note or "archive")
        else:
            parts = [f"{t} {n}" for t, n in sorted(r.used.items())]
            if r.error:
                parts.append(f"[red]{markup(r.error)}[/red]")
            if r.damaged_chunks:
                parts.append(f"[yellow]{r.damaged_chunks} damaged chunk(s)[/yellow]")
            if r.note:
                parts.append(markup(r.note))
            notes = "; ".join(parts)
        used = str(r.total_used)
        if r.total_used > r.read:
            used += "*"
            more_rows = True
        table.add_row(Text(name), markup(r.format), str(r.read), used, str(r.total_skipped), notes)
    if not terminal:
        # Not a terminal: wide enough for paths unless COLUMNS says otherwise (logs get grepped);
        # wider still when a file's name needs it, as names are never wrapped.
        console = safe_console(file=out, highlight=False, width=_width(table))
    console.print(table)
    if more_rows:
        console.print(ROWS_MADE)
    read, used_total, skipped = totals(reports)
    console.print(f"Total: {read} records read, {used_total} used, {skipped} skipped.")
    reasons: Counter[str] = Counter()
    coerced: Counter[str] = Counter()
    unknown: set[str] = set()
    for r in reports:
        reasons.update(r.skipped)
        coerced.update(r.coerced)
        unknown |= r.unknown_columns
    for reason, n in reasons.most_common():
        console.print(f"  skipped {n}: {markup(reason)}", soft_wrap=True)
    for col, n in coerced.most_common():
        console.print(f"  {n} value(s) of {markup(col)} did not fit the column type; rows kept, value emptied")
    if unknown:
        names = ", ".join(sorted(unknown))
        console.print(f"  columns not in the published schema, kept as text: {markup(names)}", soft_wrap=True)
    refused = [r for r in reports if r.error]
    if refused:
        console.print(f"  {len(refused)} file(s) not read or not read to the end (see below)")
    # File-level problems first, each naming its file on a line of its own.
    messages = [f"{r.path}: {r.error}" for r in refused] + [m for r in reports for m in r.messages]
    shown_messages = messages if verbose else messages[:10]
    for m in shown_messages:
        console.print(f"  [dim]{markup(m)}[/dim]", soft_wrap=True)
    if len(messages) > len(shown_messages):
        console.print(f"  ... {len(messages) - len(shown_messages)} more (use --verbose)")
