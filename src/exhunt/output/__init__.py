"""Alert and result writers: one function per format, same input (a list of dicts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from exhunt.output.serial import write_csv, write_json, write_jsonl
from exhunt.output.table import write_table

Writer = Callable[[list[dict[str, Any]], TextIO], None]

FORMATS: dict[str, Writer] = {
    "jsonl": write_jsonl,
    "json": write_json,
    "csv": write_csv,
}

__all__ = ["FORMATS", "Writer", "write_table"]
