"""The simulated Windows records (evtx_json.documents) taken apart, for the writers of other Windows
forms: each renders the same records, so every form carries the same events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats.evtx_json import logged

#: Level -> the name Log Analytics shows (`EventLevelName`).
LEVEL_NAMES = {0: "Information", 1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}


@dataclass(frozen=True)
class Record:
    channel: str
    provider: str
    event_id: int
    version: int
    level: int
    task: int
    record_id: int
    time: datetime
    computer: str
    user_sid: str
    pid: int
    thread: int
    #: named EventData as the text a collector gives (booleans lower-case)
    data: dict[str, str] | None
    #: unnamed, positional EventData
    data_list: list[str] | None
    opcode: int = 0
    keywords: str = ""
    #: the rendered message, when the collector renders one ("" if the scenario gives none)
    message: str = ""


def text(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return "" if v is None else str(v)


def records(sim: Simulation) -> list[Record]:
    out = []
    for doc, message in logged(sim):
        ev = doc["Event"]
        s = ev["System"]
        raw = ev["EventData"]
        positional = isinstance(raw.get("Data"), dict) and len(raw) == 1
        execution = s["Execution"]["#attributes"]
        out.append(
            Record(
                channel=s["Channel"],
                provider=s["Provider"]["#attributes"]["Name"],
                event_id=s["EventID"],
                version=s["Version"],
                level=s["Level"],
                task=s["Task"],
                record_id=s["EventRecordID"],
                time=datetime.fromisoformat(s["TimeCreated"]["#attributes"]["SystemTime"].replace("Z", "+00:00")),
                computer=s["Computer"],
                user_sid=s["Security"]["#attributes"]["UserID"],
                pid=execution["ProcessID"],
                thread=execution["ThreadID"],
                data=None if positional else {k: text(v) for k, v in raw.items()},
                data_list=[text(v) for v in raw["Data"]["#text"]] if positional else None,
                opcode=s["Opcode"],
                keywords=s["Keywords"],
                message=message,
            )
        )
    return out


def iso_millis(t: datetime) -> str:
    """`2026-11-20T08:14:03.123Z`: the millisecond form of Beats' and Logstash's @timestamp."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
