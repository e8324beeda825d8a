"""The Log Analytics `Event` shape every Windows event also gets (Sentinel rules query it)."""

from __future__ import annotations

from typing import Any

from exhunt.winlog.common import dumps, text
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]

LEVEL_NAMES = {0: "Information", 1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}
_NS = "http://schemas.microsoft.com/win/2004/08/events/event"


def _esc(v: str) -> str:
    if "&" in v or "<" in v or ">" in v or '"' in v:
        return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return v


def _val(v: Any) -> str:
    return dumps(v) if isinstance(v, (dict, list)) else text(v)


def data_values(ev: WinEvent) -> list[tuple[str, str]]:
    """EventData as (name, value) pairs in record order; positional data has empty names."""
    if ev.data_list is not None:
        return [("", v) for v in ev.data_list]
    return [(k, _val(v)) for k, v in ev.data.items()]


def event_data_xml(pairs: list[tuple[str, str]]) -> str:
    """`<EventData><Data Name="X">v</Data>..</EventData>`, as Log Analytics stores EventData."""
    body = "".join(f'<Data Name="{_esc(k)}">{_esc(v)}</Data>' if k else f"<Data>{_esc(v)}</Data>"
                   for k, v in pairs)
    return f'<EventData xmlns="{_NS}">{body}</EventData>'


def event_row(ev: WinEvent, pairs: list[tuple[str, str]], event_data: str) -> Row:
    """One `Event` row. Without a rendered message (EVTX carries none), RenderedDescription
    lists the event's data so text searches still find what the message would show."""
    if ev.extra is not None and text(ev.extra.get("Type")) == "Event":
        row = {k: v for k, v in ev.extra.items() if not k.startswith("_")}
        row.setdefault("EventData", event_data)
        return row
    level = 4 if ev.level == 0 else ev.level  # LogAlways (0) is shown as Information
    message = ev.message or "\n".join(f"{k}: {v}" if k else v for k, v in pairs)
    return {
        "TimeGenerated": ev.time,
        "Source": ev.provider,
        "EventLog": ev.channel,
        "Computer": ev.computer,
        "EventLevel": level,
        "EventLevelName": LEVEL_NAMES.get(level, "") if level is not None else "",
        "EventID": ev.event_id,
        "EventCategory": ev.task,
        "UserName": ev.user_sid,
        "RenderedDescription": message,
        "ParameterXml": "".join(f"<Param>{_esc(v)}</Param>" for _, v in pairs),
        "EventData": event_data,
        "Type": "Event",
    }
