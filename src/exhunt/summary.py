"""The run summary on stderr: per file, records read, used (per table), skipped and why."""

from __future__ import annotations

import os
from collections import Counter
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exhunt.sources.base import FileReport


def totals(reports: list[FileReport]) -> tuple[int, int, int]:
    return (sum(r.read for r in reports), sum(r.total_used for r in reports),
            sum(r.total_skipped for r in reports))


def problems(reports: list[FileReport]) -> int:
    """Records skipped, values coerced, files refused: anything --strict turns into exit 2."""
    return sum(r.total_skipped + sum(r.coerced.values()) + (1 if r.error else 0) + r.damaged_chunks
               for r in reports)


def render(reports: list[FileReport], out: TextIO, verbose: bool = False) -> None:
    # Not a terminal: wide enough for paths unless COLUMNS says otherwise (logs get grepped).
    width = None if out.isatty() else int(os.environ.get("COLUMNS") or 100)
    console = Console(file=out, highlight=False, width=width)
    table = Table(title="Input", box=None, pad_edge=False)
    table.add_column("file", overflow="fold", ratio=1)
    table.add_column("format")
    for col in ("read", "used", "skipped"):
        table.add_column(col, justify="right")
    table.add_column("tables / notes", ratio=1)
    for r in reports:
        if r.format in ("zip",) and not r.error and not r.read:
            notes = r.note or "archive"
        else:
            parts = [f"{t} {n}" for t, n in sorted(r.used.items())]
            if r.error:
                parts.append(f"[red]{escape(r.error)}[/red]")
            if r.damaged_chunks:
                parts.append(f"[yellow]{r.damaged_chunks} damaged chunk(s)[/yellow]")
            if r.note:
                parts.append(r.note)
            notes = "; ".join(parts)
        table.add_row(escape(r.path), r.format, str(r.read), str(r.total_used), str(r.total_skipped), notes)
    console.print(table)
    read, used, skipped = totals(reports)
    console.print(f"Total: {read} records read, {used} used, {skipped} skipped.")
    reasons: Counter[str] = Counter()
    coerced: Counter[str] = Counter()
    unknown: set[str] = set()
    for r in reports:
        reasons.update(r.skipped)
        coerced.update(r.coerced)
        unknown |= r.unknown_columns
    for reason, n in reasons.most_common():
        console.print(f"  skipped {n}: {escape(reason)}", soft_wrap=True)
    for col, n in coerced.most_common():
        console.print(f"  {n} value(s) of {col} did not fit the column type; rows kept, value emptied")
    if unknown:
        names = ", ".join(sorted(unknown))
        console.print(f"  columns not in the published schema, kept as text: {names}", soft_wrap=True)
    refused = [r for r in reports if r.error]
    if refused:
        console.print(f"  {len(refused)} file(s) not read or not read to the end (see below)")
    # File-level problems first, each naming its file on a line of its own.
    messages = [f"{r.path}: {r.error}" for r in refused] + [m for r in reports for m in r.messages]
    shown = messages if verbose else messages[:10]
    for m in shown:
        console.print(f"  [dim]{escape(m)}[/dim]", soft_wrap=True)
    if len(messages) > len(shown):
        console.print(f"  ... {len(messages) - len(shown)} more (use --verbose)")
