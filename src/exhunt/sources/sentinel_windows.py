"""Sentinel / Log Analytics exports of Windows events: rows of the `SecurityEvent`, `Event`
or `WindowsEvent` tables (as JSON lines or a JSON array). The rows keep their own columns
and are also mapped onto the Defender tables like any other Windows event."""

from __future__ import annotations

from typing import Any

from exhunt.sources.winjson import WinJsonReader
from exhunt.winlog.forms import SENTINEL_TYPES, from_sentinel


class SentinelWindows(WinJsonReader):
    name = "sentinel-windows"
    description = "Sentinel / Log Analytics SecurityEvent, Event and WindowsEvent exports"
    what = "SecurityEvent / Event / WindowsEvent row"
    score = 90
    convert = staticmethod(from_sentinel)

    def matches(self, rec: dict[str, Any]) -> bool:
        typ = rec.get("Type")
        if typ in SENTINEL_TYPES:
            return True
        return (typ is None and "TimeGenerated" in rec and "EventID" in rec and "Computer" in rec
                and ("EventSourceName" in rec or "EventLog" in rec) and "Event" not in rec)

    def sniff_text(self, text: str) -> bool:
        return any(f'"Type":"{t}"' in text.replace(" ", "") for t in SENTINEL_TYPES) and '"EventID"' in text


READER = SentinelWindows()
