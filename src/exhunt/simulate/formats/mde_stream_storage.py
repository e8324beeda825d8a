"""Defender Streaming API to a storage account: JSON lines `{time, tenantId, operationName, category,
properties}`, one blob per table (Defender writes each category to its own container, as `PT1H.json`
blobs; here `<Table>-PT1H.json`, side by side)."""

from __future__ import annotations

import json
from pathlib import Path

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import streaming_records


def write(sim: Simulation, out: Path) -> list[Path]:
    blobs: dict[str, list[str]] = {}
    for rec in streaming_records(sim):
        table = rec["category"].removeprefix("AdvancedHunting-")
        blobs.setdefault(table, []).append(json.dumps(rec) + "\n")
    paths = []
    for table, lines in blobs.items():
        path = out / f"{table}-PT1H.json"
        path.write_text("".join(lines), encoding="utf-8", newline="")
        paths.append(path)
    return paths


WRITER = Writer(
    "mde-stream-storage",
    "defender",
    "Defender Streaming API to Storage: JSON lines {time, tenantId, category, properties}, one blob per table",
    write,
)
