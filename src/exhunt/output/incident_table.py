"""The terminal view of incidents: one section per incident, one row per piece of evidence.

A section's header says how bad, where, when, which rules and which entities (each kept to
one or two lines of an 80-column terminal; the full lists are in the json output), then the
chain's steps when a chain alert is inside. Each row is one event with every rule that
found it and what its most severe alert says. Every text from the data goes through
`shown` (control and bidi characters escaped).
"""

from __future__ import annotations

import re
from typing import Any, TextIO

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from exhunt import zones
from exhunt.errors import UsageError
from exhunt.incidents import Incident
from exhunt.output.table import MAX_DETAIL, SEVERITY_LABEL, SEVERITY_STYLE, tidy
from exhunt.safetext import console as safe_console
from exhunt.safetext import shown

#: Chain steps shown per incident (the json output has them all).
MAX_STEPS = 25
#: Left margin of a section's header lines.
INDENT = "  "
_STEP_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?Z?\s")


def _label(severity: str) -> Text:
    return Text(SEVERITY_LABEL.get(severity, severity[:4].upper()), style=SEVERITY_STYLE.get(severity, ""))


def _minute(stamp: str) -> str:
    """`2026-11-21T02:04:47.3+01:00` -> `2026-11-21 02:04` (the time as the alerts show it)."""
    return stamp[:16].replace("T", " ")


def _span(incident: Incident) -> str:
    if not incident.start:
        return "no time"
    start, end = _minute(incident.start), _minute(incident.end)
    if start == end:
        return start
    return f"{start} - {end[11:]}" if start[:10] == end[:10] else f"{start} - {end}"


def _leaf(path: str) -> str:
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def _render(parts: list[tuple[str, list[str]]], counts: list[int]) -> str:
    bits = []
    for (kind, items), n in zip(parts, counts, strict=True):
        more = f" +{len(items) - n}" if len(items) > n else ""
        bits.append(f"{kind}: {', '.join(items[:n])}{more}")
    return " · ".join(bits)


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _fit(console: Console, parts: list[tuple[str, list[str]]], width: int, lines: int = 2) -> str:
    """`kind: a, b (+3) · kind: c` in at most `lines` lines of `width`: the first item of each
    kind (long items shortened if they do not fit otherwise), then one more of each kind in
    turn while it fits."""
    parts = [(kind, items) for kind, items in parts if items]
    if not parts:
        return ""

    def fits(text: str) -> bool:
        return len(Text(text).wrap(console, width)) <= lines

    for limit in (None, 40, 32, 24, 16):
        short = [(kind, [_cut(item, limit) for item in items]) for kind, items in parts]
        counts = [1] * len(short)
        if fits(_render(short, counts)):
            break
    else:
        return _cut(_render(short, counts), lines * width - 8)
    grown = True
    while grown:
        grown = False
        for i, (_, items) in enumerate(short):
            if counts[i] < len(items):
                counts[i] += 1
                if fits(_render(short, counts)):
                    grown = True
                else:
                    counts[i] -= 1
    return _render(short, counts)


def _step(step: str, zone: zones.Zone, day: str) -> str:
    """A chain step with its leading UTC time shown in the table's zone, without the date
    when it is `day` (the incident's first)."""
    m = _STEP_TIME.match(step)
    if not m:
        return step
    moved = zones.local(f"{m.group(1)}T{m.group(2)}Z", zone)
    date, time = moved[:10], moved[11:19]
    return f"{time} {step[m.end():]}" if date == day else f"{date} {time} {step[m.end():]}"


def _zone(label: str) -> zones.Zone:
    try:
        return zones.parse_zone(label)
    except UsageError:
        return zones.UTC_ZONE


def _header(console: Console, number: int, total: int, incident: Incident, zone: str) -> None:
    room = console.width - len(INDENT)

    def indented(text: str, style: str = "") -> None:
        console.print(Padding(Text(text, style=style), (0, 0, 0, len(INDENT)), expand=False), overflow="fold")

    line = Text(f"Incident {number}/{total} ", style="bold")
    line.append_text(_label(incident.severity))
    line.append(f" {shown(incident.device) or '(no server)'}", style="bold")
    line.append(f"  {_span(incident)}" + (f" {shown(zone)}" if incident.start else ""))
    console.print(line, overflow="fold")
    n_alerts = sum(len(ev.alerts) for ev in incident.evidence)
    indented(f"{len(incident.evidence)} evidence, {n_alerts} alert(s), id {shown(incident.incident_id)}", "dim")
    rules = [shown(r) for r in incident.rules]
    indented(_fit(console, [(f"rules ({len(rules)})", rules)], room))
    ents = incident.entities
    others = [h for h in ents.get("hosts", []) if h.lower() != incident.device.lower()]
    parts = [("accounts", ents.get("accounts", [])), ("agents", ents.get("agents", [])),
             ("processes", ents.get("processes", [])),
             ("files", list(dict.fromkeys(_leaf(f) for f in ents.get("files", [])))),
             ("hosts", others)]
    entities = _fit(console, [(kind, [shown(v) for v in values]) for kind, values in parts], room)
    if entities:
        indented(entities)
    if incident.chain:
        indented(f"chain ({len(incident.chain)} steps):")
        tz, day = _zone(zone), incident.start[:10]
        room -= len(INDENT)
        for step in incident.chain[:MAX_STEPS]:
            text = shown(_step(step, tz, day))
            console.print(Text(INDENT * 2 + (text if len(text) <= room else text[: room - 1] + "…")),
                          no_wrap=True, overflow="ellipsis")
        if len(incident.chain) > MAX_STEPS:
            indented(f"{INDENT}... {len(incident.chain) - MAX_STEPS} more (see -f json)")


def write_incident_table(
    incidents: list[Incident], out: TextIO, details: dict[int, str], title: str | None = None,
    width: int | None = None, zone: str = "UTC",
) -> None:
    """Render incidents; `details[id(alert)]` is the one-line description of an alert. Times are
    shown as they are in the alerts (already in `zone`, see exhunt.zones)."""
    console = safe_console(file=out, width=width, highlight=False, soft_wrap=False)
    if not incidents:
        console.print("No alerts.")
        return
    n_evidence = sum(len(inc.evidence) for inc in incidents)
    n_alerts = sum(len(ev.alerts) for inc in incidents for ev in inc.evidence)
    if title:
        console.print(Text(shown(title), style="bold"))
    console.print(Text(f"{len(incidents)} incident(s), {n_evidence} evidence, {n_alerts} alert(s)"))
    header = f"Time ({shown(zone)})" if len(shown(zone)) <= 9 else "Time"
    # Findings without times (`exhunt audit`) get no empty time column.
    timed = any(ev.timestamp for inc in incidents for ev in inc.evidence)
    for number, incident in enumerate(incidents, 1):
        console.print()
        _header(console, number, len(incidents), incident, zone)
        table = Table(expand=False, show_lines=False, pad_edge=False, box=None,
                      caption=None if header.endswith(")") or not timed else Text(f"times in {shown(zone)}"))
        if timed:
            table.add_column(header, no_wrap=True, min_width=16, max_width=16)
        table.add_column("Sev", no_wrap=True, max_width=4)
        table.add_column("Found by / what happened", overflow="fold", ratio=1)
        for ev in incident.evidence:
            text = Text("; ".join(shown(r) for r in ev.rule_names), style="bold")
            if len(ev.alerts) > len(ev.rule_names):
                text.append(f" ({len(ev.alerts)} alerts)")
            detail = shown(tidy(details.get(id(ev.alerts[0]), "")))
            if detail:
                text.append("\n" + (detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 1] + "…"))
            # Short ids, enough for `--explain ID` and `exhunt alerts ack ID`.
            ids = " ".join(shown(str(a.get("alert_id") or ""))[:8] for a in ev.alerts if a.get("alert_id"))
            if ids:
                text.append("\nid " + ids, style="dim")
            cells = [Text(shown(_minute(ev.timestamp or "")))] if timed else []
            table.add_row(*cells, _label(ev.severity), text)
        console.print(table)


def detail_map(alerts: list[dict[str, Any]], details: list[str]) -> dict[int, str]:
    """`details[i]` describes `alerts[i]`: keyed by the alert dict itself (group keeps them)."""
    return {id(alert): detail for alert, detail in zip(alerts, details, strict=True)}
