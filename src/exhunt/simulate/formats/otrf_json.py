"""The Windows records as the OTRF Security-Datasets (Mordor) hold them: NXLog `im_msvistalog` events
shipped through Logstash, System and EventData fields side by side at the top level, one per line
(`<host>-otrf.json`). Unnamed EventData (the Exchange cmdlet log) has no field names to flatten
under: it stays in `EventData` as its XML text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._winrec import Record, iso_millis, records

#: Level -> NXLog's (EventType, Severity, SeverityValue)
_SEVERITY = {
    1: ("CRITICAL", "CRITICAL", 5),
    2: ("ERROR", "ERROR", 4),
    3: ("WARNING", "WARNING", 3),
    5: ("VERBOSE", "DEBUG", 1),
}


def document(r: Record) -> dict[str, Any]:
    etype, severity, value = _SEVERITY.get(r.level, ("INFO", "INFO", 2))
    doc: dict[str, Any] = {
        "@version": "1",
        "@timestamp": iso_millis(r.time),
        "EventTime": r.time.strftime("%Y-%m-%d %H:%M:%S"),
        "Hostname": r.computer,
        "Keywords": -9223372036854775808,
        "EventType": "AUDIT_SUCCESS" if r.channel == "Security" else etype,
        "SeverityValue": value,
        "Severity": severity,
        "EventID": r.event_id,
        "SourceName": r.provider,
        "Channel": r.channel,
        "Version": r.version,
        "Task": r.task,
        "OpcodeValue": 0,
        "RecordNumber": r.record_id,
        "ExecutionProcessID": r.pid,
        "ThreadID": r.thread,
        "UserID": r.user_sid,
        "SourceModuleName": "eventlog",
        "SourceModuleType": "im_msvistalog",
    }
    if r.data_list is not None:
        doc["EventData"] = "<EventData>" + "".join(f"<Data>{escape(v)}</Data>" for v in r.data_list) + "</EventData>"
    else:
        doc.update(r.data or {})
    return doc


def write(sim: Simulation, out: Path) -> list[Path]:
    path = out / f"{sim.host.split('.', 1)[0]}-otrf.json"
    path.write_text("".join(json.dumps(document(r)) + "\n" for r in records(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "otrf-json",
    "windows",
    "Windows event logs as OTRF Security-Datasets (Mordor) JSON lines: NXLog fields flattened",
    write,
)
