"""Machine-readable output: JSON lines, one JSON array, or CSV (lists as JSON text)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of every row, in order of first appearance, provenance last."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    tail = [k for k in ("source_file", "source_record") if k in seen]
    return [k for k in seen if k not in tail] + tail


def write_jsonl(rows: list[dict[str, Any]], out: TextIO) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def write_json(rows: list[dict[str, Any]], out: TextIO) -> None:
    json.dump(rows, out, ensure_ascii=False, indent=2, default=str)
    out.write("\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    cols = columns_of(rows)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
