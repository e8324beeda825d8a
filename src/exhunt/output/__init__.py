"""Alert and result writers: one function per format, same input (a list of dicts); and the
same formats for alerts grouped into incidents (`write_incidents`, detect's default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from exhunt.output.incident_output import INCIDENT_FORMATS, write_incidents
from exhunt.output.serial import write_csv, write_json, write_jsonl
from exhunt.output.table import write_table

Writer = Callable[[list[dict[str, Any]], TextIO], None]

FORMATS: dict[str, Writer] = {
    "jsonl": write_jsonl,
    "json": write_json,
    "csv": write_csv,
}

__all__ = ["FORMATS", "INCIDENT_FORMATS", "Writer", "write_incidents", "write_table"]
