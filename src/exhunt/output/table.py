"""The terminal view: one line per alert that fits an 80-column terminal.

Time, severity, device and the rule name get narrow fixed columns; the rest of
the width goes to what happened (the rule's alert description, or its key
columns), wrapped rather than cut.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

from rich.table import Table
from rich.text import Text

from exhunt.safetext import console as safe_console
from exhunt.safetext import shown

#: Longest description shown per alert; the full text is in the json/jsonl/csv output.
MAX_DETAIL = 240

SEVERITY_LABEL = {"critical": "CRIT", "high": "HIGH", "medium": "MED", "low": "LOW", "informational": "INFO"}

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "informational": "dim",
}


#: Template leftovers when a placeholder's column is empty: `''`, `()`, `[x: ]`, doubled blanks.
_EMPTY_BITS = [
    (re.compile(r"(?<![\w'])''(?![\w'])|(?<![\w\"])\"\"(?![\w\"])"), ""),
    (re.compile(r"\(\s*\)|\[\s*\]"), ""),
    (re.compile(r":\s*([\])])"), r"\1"),
    (re.compile(r"\s{2,}"), " "),
    (re.compile(r"\s+([,;:)\]])"), r"\1"),
]


def tidy(detail: str) -> str:
    """Drop what an alert template leaves behind when some of its columns are empty."""
    for pattern, repl in _EMPTY_BITS:
        detail = pattern.sub(repl, detail)
    return detail.strip()


def short_host(name: str) -> str:
    """`exch01.contoso.local` -> `exch01` for the narrow column (the full name is in json/csv)."""
    return name if not name or name.replace(".", "").isdigit() else name.split(".", 1)[0]


def write_table(
    alerts: list[dict[str, Any]], out: TextIO, details: list[str], title: str | None = None,
    width: int | None = None, zone: str = "UTC",
) -> None:
    """Render alerts; `details[i]` is the one-line description of alert i. Times are shown as
    they are in the alerts, which are in `zone` (see exhunt.zones); every text from the data
    is shown with its control characters escaped."""
    console = safe_console(file=out, width=width, highlight=False, soft_wrap=False)
    if not alerts:
        console.print("No alerts.")
        return
    # The zone names the column when it fits its 16 characters, else a caption says it.
    header = f"Time ({shown(zone)})" if len(shown(zone)) <= 9 else "Time"
    timed = any(alert.get("Timestamp") for alert in alerts)  # `exhunt audit`'s findings have no time
    caption = None if header.endswith(")") or not timed else Text(f"times in {shown(zone)}")
    table = Table(title=Text(shown(title)) if title else None, caption=caption, expand=False,
                  show_lines=False, pad_edge=False, box=None)
    if timed:
        table.add_column(header, no_wrap=True, min_width=16, max_width=16)
    table.add_column("Sev", no_wrap=True, max_width=4)
    table.add_column("Device", overflow="fold", max_width=15)
    table.add_column("Rule / what happened", overflow="fold", ratio=1)
    for alert, detail in zip(alerts, details, strict=True):
        sev = str(alert.get("severity", ""))
        when = str(alert.get("Timestamp") or "")[:16].replace("T", " ")
        text = Text(shown(alert.get("rule_name", "")), style="bold")
        detail = shown(tidy(detail))
        if detail:
            short = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"
            text.append("\n" + short)
        label = shown(SEVERITY_LABEL.get(sev, sev[:4].upper()))
        cells = [Text(shown(when))] if timed else []
        table.add_row(*cells, Text(label, style=SEVERITY_STYLE.get(sev, "")),
                      Text(shown(short_host(str(alert.get("DeviceName", ""))))), text)
    console.print(table)
