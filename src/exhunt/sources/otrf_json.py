"""OTRF Security-Datasets (Mordor) Windows events: System and EventData fields flattened side
by side at the top level (`Channel`, `EventID`, `Hostname`, `Image`, ...), one per line or as an array."""

from __future__ import annotations

from typing import Any

from exhunt.sources.winjson import WinJsonReader
from exhunt.winlog.forms import from_otrf


class OtrfJson(WinJsonReader):
    name = "otrf-json"
    description = "OTRF Security-Datasets / NXLog flat Windows events (Channel, EventID, Hostname, ...)"
    what = "flat Windows event (Channel, EventID)"
    score = 88
    form = "otrf"
    convert = staticmethod(from_otrf)

    def matches(self, rec: dict[str, Any]) -> bool:
        return ("Channel" in rec and "EventID" in rec and "Event" not in rec and "winlog" not in rec
                and "Type" not in rec and ("Hostname" in rec or "SourceName" in rec or "Computer" in rec))

    def sniff_text(self, text: str) -> bool:
        return '"Channel"' in text and '"EventID"' in text and '"Hostname"' in text


READER = OtrfJson()
