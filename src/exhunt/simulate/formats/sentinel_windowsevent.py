"""The Windows records as the Azure Monitor Agent sends them to the Log Analytics `WindowsEvent` table
(a data collection rule's `Microsoft-WindowsEvent` stream, Windows Event Forwarding), exported as JSON
lines: every channel, Security included, in one table.

Columns follow the Azure Monitor table reference: `Channel`, `Provider`, `EventID`, `EventLevel` and
`EventLevelName`, `EventRecordId` and `Opcode` as text, `SystemProcessId`, `SystemThreadId`,
`SystemUserId`, and `EventData` as a dynamic object of the named data. `RawEventData` holds the record's
XML only when the agent could not parse it, so it is null here. Unnamed data (the Exchange cmdlet log)
has no names to key on: it is written as `{"Data": [values in order]}`, the object form of repeated
`<Data>` elements (the reference does not show this case; exhunt reads that form, a bare list, and
RawEventData's XML).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Simulation, fake_hash
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import tenant_id, timestamp
from exhunt.simulate.formats._winrec import LEVEL_NAMES, Record, records


def _guid(text: str) -> str:
    h = fake_hash(text, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def resource_id(host: str) -> str:
    """An Azure Arc machine's resource id: an on-premises Exchange server reaches the agent through Arc."""
    name = host.split(".", 1)[0].lower()
    return (f"/subscriptions/{_guid('subscription:' + host.lower())}/resourcegroups/exchange-servers"
            f"/providers/microsoft.hybridcompute/machines/{name}")


def row(r: Record, tenant: str, resource: str, origin: str) -> dict[str, Any]:
    data: dict[str, Any] = {"Data": list(r.data_list)} if r.data_list is not None else dict(r.data or {})
    return {
        "TenantId": tenant,
        "TimeGenerated": timestamp(r.time),
        "Computer": r.computer,
        "Channel": r.channel,
        "Provider": r.provider,
        "EventID": r.event_id,
        "EventLevel": r.level,
        "EventLevelName": LEVEL_NAMES.get(r.level, "Information"),
        "EventOriginId": origin,
        "EventRecordId": str(r.record_id),
        "Keywords": r.keywords,
        "Opcode": str(r.opcode),
        "Task": r.task,
        "Version": r.version,
        "SystemProcessId": r.pid,
        "SystemThreadId": r.thread,
        "SystemUserId": r.user_sid,
        "Correlation": "",
        "ManagementGroupName": "",
        "EventData": data,
        "RawEventData": None,
        "Type": "WindowsEvent",
        "_ResourceId": resource,
    }


def write(sim: Simulation, out: Path) -> list[Path]:
    tenant, resource = tenant_id(sim), resource_id(sim.host)
    origin = _guid("vm:" + sim.host.lower())
    path = out / f"{sim.host.split('.', 1)[0]}-sentinel-windowsevent.json"
    path.write_text("".join(json.dumps(row(r, tenant, resource, origin)) + "\n" for r in records(sim)),
                    encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "sentinel-windowsevent",
    "windows",
    "Windows event logs as Sentinel WindowsEvent rows (Azure Monitor Agent; JSON lines export)",
    write,
)
