"""The Windows records as Microsoft Sentinel holds them, exported as JSON lines: the Security channel as
`SecurityEvent` rows (its EventData fields as columns), every other log as `Event` rows (`EventLog`,
`Source`, the EventData as the agent's `DataItem` XML, unnamed data also as `ParameterXml`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import tenant_id, timestamp
from exhunt.simulate.formats._winrec import LEVEL_NAMES, Record, records

_NS = "http://schemas.microsoft.com/win/2004/08/events/event"


def _event_data(r: Record) -> str:
    if r.data_list is not None:
        items = "".join(f"<Data>{escape(v)}</Data>" for v in r.data_list)
    else:
        items = "".join(f"<Data Name={quoteattr(k)}>{escape(v)}</Data>" for k, v in (r.data or {}).items())
    return (
        f'<DataItem type="System.XmlData" time="{timestamp(r.time)}" sourceHealthServiceId="">'
        f'<EventData xmlns="{_NS}">{items}</EventData></DataItem>'
    )


def row(r: Record, tenant: str) -> dict[str, Any]:
    common = {"TenantId": tenant, "TimeGenerated": timestamp(r.time), "Computer": r.computer, "EventID": r.event_id}
    if r.channel == "Security":
        return {
            **common,
            "SourceSystem": "OpsManager",
            "Channel": "Security",
            "EventSourceName": r.provider,
            "Task": r.task,
            "Level": str(r.level),
            "EventData": _event_data(r),
            **(r.data or {}),
            "Type": "SecurityEvent",
        }
    return {
        **common,
        "SourceSystem": "OpsManager",
        "EventLog": r.channel,
        "Source": r.provider,
        "EventLevel": r.level,
        "EventLevelName": LEVEL_NAMES.get(r.level, "Information"),
        "EventCategory": r.task,
        "UserName": "",
        "RenderedDescription": "",
        "EventData": _event_data(r),
        "ParameterXml": "".join(f"<Param>{escape(v)}</Param>" for v in r.data_list) if r.data_list else "",
        "Type": "Event",
    }


def write(sim: Simulation, out: Path) -> list[Path]:
    tenant = tenant_id(sim)
    path = out / f"{sim.host.split('.', 1)[0]}-sentinel-events.json"
    path.write_text("".join(json.dumps(row(r, tenant)) + "\n" for r in records(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "sentinel-windows",
    "windows",
    "Windows event logs as Sentinel SecurityEvent / Event rows (JSON lines export)",
    write,
)
