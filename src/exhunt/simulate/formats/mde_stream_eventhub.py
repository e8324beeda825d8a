"""Defender Streaming API to Event Hub: each message `{"records": [...]}` holds a batch of streaming
records of any tables; the messages are saved one per line (as a consumer that dumps a hub does)."""

from __future__ import annotations

import json
from pathlib import Path

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import streaming_records

#: Records per message: small, so a run gives several messages mixing tables.
BATCH = 10


def write(sim: Simulation, out: Path) -> list[Path]:
    recs = streaming_records(sim)
    lines = [json.dumps({"records": recs[i : i + BATCH]}) + "\n" for i in range(0, len(recs), BATCH)]
    path = out / f"{sim.host.split('.', 1)[0]}-eventhub.jsonl"
    path.write_text("".join(lines), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "mde-stream-eventhub",
    "defender",
    'Defender Streaming API to Event Hub: one message {"records": [...]} per line, tables mixed',
    write,
)
