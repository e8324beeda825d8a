"""Defender Advanced Hunting API JSON: `{"Schema": [...], "Results": [...]}`, one file per table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import columns, rows


def _type(column: str, value: Any) -> str:
    if column == "Timestamp" or column.endswith("CreationTime"):
        return "DateTime"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Int64"
    return "String"


def write(sim: Simulation, out: Path) -> list[Path]:
    paths = []
    for table, table_rows in rows(sim).items():
        cols = columns(table_rows)
        sample = {c: next((r[c] for r in table_rows if r.get(c) is not None), "") for c in cols}
        schema = [{"Name": c, "Type": _type(c, sample[c])} for c in cols]
        results = [{c: r.get(c) for c in cols} for r in table_rows]
        path = out / f"{table}-api.json"
        path.write_text(
            json.dumps({"Schema": schema, "Results": results}, indent=1) + "\n", encoding="utf-8", newline=""
        )
        paths.append(path)
    return paths


WRITER = Writer(
    "mde-api", "defender", "Defender Advanced Hunting API JSON {Schema, Results}, one file per table", write
)
