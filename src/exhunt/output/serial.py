"""Machine-readable output: JSON lines, one JSON array, or CSV (lists as JSON text).

JSON is exact (it escapes control characters itself). CSV is opened by spreadsheets,
which run a cell that starts like a formula: such cells are neutralised as OWASP
describes (see `neutral`), and every text cell is quoted.
"""

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


#: What a spreadsheet takes as the start of a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutral(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a `'` in front."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _cell(value: Any) -> str | int | float:
    """The CSV cell of a value. Numbers stay numbers (written bare: a number cannot be a
    formula); everything else is neutralised text (written quoted)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (list, dict)):
        return neutral(json.dumps(value, ensure_ascii=False))
    return neutral(str(value))


def write_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    cols = columns_of(rows)
    # QUOTE_NONNUMERIC: every text cell in double quotes, as OWASP advises beside the `'`.
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([neutral(c) for c in cols])
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
