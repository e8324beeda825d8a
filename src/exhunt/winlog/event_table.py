"""The Log Analytics `Event` shape every Windows event also gets (Sentinel rules query it).

Every record gets three text columns, so they are built with C-level joins
rather than per-field Python code: the `EventData` XML as Log
Analytics stores it, `ParameterXml` (`<Param>v</Param>` per value) and, when the
record has no rendered message, a `RenderedDescription` listing its data.
"""

from __future__ import annotations

from typing import Any

from exhunt.winlog.common import dumps, text
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]

LEVEL_NAMES = {0: "Information", 1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}
_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
_OPEN = f'<EventData xmlns="{_NS}">'
_CLOSE = "</EventData>"
_NAMED = '<Data Name="{}">{}</Data>'.format
_UNNAMED = "<Data>{}</Data>".format
_FIELD = "{}: {}".format
_NAME_VALUE = '">'.join
_NAME_COLON_VALUE = ": ".join


def _esc(v: str) -> str:
    if "&" in v or "<" in v or ">" in v or '"' in v:
        return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return v


def _val(v: Any) -> str:
    return dumps(v) if isinstance(v, (dict, list)) else text(v)


def event_texts(ev: WinEvent) -> tuple[str, str, str]:
    """(EventData XML, ParameterXml, data listing) of one event, values in record order.

    Named data gives `<Data Name="X">v</Data>` and `X: v` lines; positional data
    (`data_list`) gives `<Data>v</Data>` and bare lines. The listing holds every name
    and value, so one scan of it tells whether anything needs XML escaping.
    """
    if ev.data_list is not None:
        values = ev.data_list
        try:
            listing = "\n".join(values)
        except TypeError:
            values = [v if v.__class__ is str else _val(v) for v in values]
            listing = "\n".join(values)
        if "&" in listing or "<" in listing or ">" in listing or '"' in listing:
            values = [_esc(v) for v in values]
        body = "<Data>" + "</Data><Data>".join(values) + "</Data>" if values else ""
    elif ev.data:
        d = ev.data
        if "" in d:
            return _pair_texts(d)
        values = [v if v.__class__ is str else _val(v) for v in d.values()]
        pairs = list(zip(d, values, strict=True))
        listing = "\n".join(map(_NAME_COLON_VALUE, pairs))
        if "&" in listing or "<" in listing or ">" in listing or '"' in listing:
            values = [_esc(v) for v in values]
            pairs = list(zip(map(_esc, d), values, strict=True))
        body = '<Data Name="' + '</Data><Data Name="'.join(map(_NAME_VALUE, pairs)) + "</Data>"
    else:
        return _OPEN + _CLOSE, "", ""
    params = "<Param>" + "</Param><Param>".join(values) + "</Param>" if values else ""
    return _OPEN + body + _CLOSE, params, listing


def _pair_texts(d: dict[str, Any]) -> tuple[str, str, str]:
    """The same texts, field by field, for the rare data with an unnamed ("") key."""
    pairs = [(k, _val(v)) for k, v in d.items()]
    body = "".join(_NAMED(_esc(k), _esc(v)) if k else _UNNAMED(_esc(v)) for k, v in pairs)
    return (_OPEN + body + _CLOSE, "".join(f"<Param>{_esc(v)}</Param>" for _, v in pairs),
            "\n".join(_FIELD(k, v) if k else v for k, v in pairs))


def event_row(ev: WinEvent, texts: tuple[str, str, str]) -> Row:
    """One `Event` row. Without a rendered message (EVTX carries none), RenderedDescription
    lists the event's data so text searches still find what the message would show."""
    if ev.extra is not None and text(ev.extra.get("Type")) == "Event":
        row = {k: v for k, v in ev.extra.items() if not k.startswith("_")}
        row.setdefault("EventData", texts[0])
        return row
    level = ev.level
    if level == 0:
        level = 4  # LogAlways (0) is shown as Information
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
        "RenderedDescription": ev.message or texts[2],
        "ParameterXml": texts[1],
        "EventData": texts[0],
        "Type": "Event",
    }
