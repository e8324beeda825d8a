"""The Windows records as Winlogbeat ships them (ECS NDJSON, `winlog.*`): one `<host>-winlogbeat.ndjson`.

EventData values are text in `winlog.event_data`; unnamed data become `param1`, `param2`, ... as
Winlogbeat names them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._winrec import Record, iso_millis, records

_LEVEL = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}


def document(r: Record) -> dict[str, Any]:
    if r.data_list is not None:
        event_data = {f"param{i}": v for i, v in enumerate(r.data_list, 1)}
    else:
        event_data = dict(r.data or {})
    doc: dict[str, Any] = {
        "@timestamp": iso_millis(r.time),
        "agent": {"type": "winlogbeat", "version": "8.15.0"},
        "ecs": {"version": "8.0.0"},
        "event": {
            "code": str(r.event_id),
            "kind": "event",
            "provider": r.provider,
            "created": iso_millis(r.time),
        },
        "host": {"name": r.computer.lower(), "hostname": r.computer.split(".", 1)[0].lower()},
        "log": {"level": _LEVEL.get(r.level, "information")},
        "winlog": {
            "channel": r.channel,
            "provider_name": r.provider,
            "event_id": str(r.event_id),
            "version": r.version,
            "record_id": r.record_id,
            "computer_name": r.computer,
            "task": str(r.task),
            "process": {"pid": r.pid, "thread": {"id": r.thread}},
            "user": {"identifier": r.user_sid},
            "event_data": event_data,
        },
    }
    if r.message:
        doc["message"] = r.message
    return doc


def write(sim: Simulation, out: Path) -> list[Path]:
    path = out / f"{sim.host.split('.', 1)[0]}-winlogbeat.ndjson"
    path.write_text("".join(json.dumps(document(r)) + "\n" for r in records(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "winlogbeat-ecs", "windows", "Windows event logs as Winlogbeat ECS NDJSON (winlog.event_data.*)", write
)
