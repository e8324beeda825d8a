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
    return shipped(
        iso_millis(r.time), r.channel, r.provider, r.event_id, r.record_id, r.computer, r.task, r.level,
        r.user_sid, event_data, version=r.version, process=(r.pid, r.thread), message=r.message, agent=True,
    )


def shipped(
    timestamp: str,
    channel: str,
    provider: str,
    event_id: int,
    record_id: int,
    computer: str,
    task: int,
    level: int,
    user_sid: str,
    event_data: dict[str, str],
    *,
    version: int | None = None,
    process: tuple[int, int] | None = None,
    message: str = "",
    agent: bool = False,
) -> dict[str, Any]:
    """One Winlogbeat document. What a given shipper's config adds (its agent and ecs blocks,
    `event.created`, `host.hostname`) comes with `agent`; the record's version and process with
    `version` and `process`: a document without them is still one Winlogbeat can send."""
    doc: dict[str, Any] = {"@timestamp": timestamp}
    if agent:
        doc["agent"] = {"type": "winlogbeat", "version": "8.15.0"}
        doc["ecs"] = {"version": "8.0.0"}
    doc["event"] = {"code": str(event_id), "kind": "event", "provider": provider}
    doc["host"] = {"name": computer.lower()}
    if agent:
        doc["event"]["created"] = timestamp
        doc["host"]["hostname"] = computer.split(".", 1)[0].lower()
    doc["log"] = {"level": _LEVEL.get(level, "information")}
    winlog: dict[str, Any] = {"channel": channel, "provider_name": provider, "event_id": str(event_id)}
    if version is not None:
        winlog["version"] = version
    winlog.update({"record_id": record_id, "computer_name": computer, "task": str(task)})
    if process is not None:
        winlog["process"] = {"pid": process[0], "thread": {"id": process[1]}}
    winlog.update({"user": {"identifier": user_sid}, "event_data": event_data})
    doc["winlog"] = winlog
    if message:
        doc["message"] = message
    return doc


def write(sim: Simulation, out: Path) -> list[Path]:
    path = out / f"{sim.host.split('.', 1)[0]}-winlogbeat.ndjson"
    path.write_text("".join(json.dumps(document(r)) + "\n" for r in records(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "winlogbeat-ecs", "windows", "Windows event logs as Winlogbeat ECS NDJSON (winlog.event_data.*)", write
)
