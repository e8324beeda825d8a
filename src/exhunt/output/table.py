"""The terminal view: one line per alert that fits an 80-column terminal.

Time, severity, device and the rule name get narrow fixed columns; the rest of
the width goes to what happened (the rule's alert description, or its key
columns), wrapped rather than cut.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Longest description shown per alert; the full text is in the json/jsonl/csv output.
MAX_DETAIL = 240

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "informational": "dim",
}


def write_table(
    alerts: list[dict[str, Any]], out: TextIO, details: list[str], title: str | None = None,
    width: int | None = None,
) -> None:
    """Render alerts; `details[i]` is the one-line description of alert i."""
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    if not alerts:
        console.print("No alerts.")
        return
    table = Table(title=title, expand=False, show_lines=False, pad_edge=False, box=None)
    table.add_column("Time (UTC)", no_wrap=True, min_width=16, max_width=16)
    table.add_column("Sev", no_wrap=True, max_width=4)
    table.add_column("Device", overflow="fold", max_width=14)
    table.add_column("Rule / what happened", overflow="fold", ratio=1)
    for alert, detail in zip(alerts, details, strict=True):
        sev = str(alert.get("severity", ""))
        when = str(alert.get("Timestamp") or "")[:16].replace("T", " ")
        text = Text(str(alert.get("rule_name", "")), style="bold")
        if detail:
            short = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"
            text.append("\n" + short)
        table.add_row(when, Text(sev[:4].upper(), style=SEVERITY_STYLE.get(sev, "")),
                      str(alert.get("DeviceName", "")), text)
    console.print(table)
