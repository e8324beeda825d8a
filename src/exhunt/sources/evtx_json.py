"""`evtx_dump` output and other JSON renderings of EVTX records (`{"Event": {"System": .., "EventData": ..}}`),
as JSON lines, a JSON array, or evtx_dump's "Record N" + pretty-printed JSON."""

from __future__ import annotations

from typing import Any

from exhunt.sources.winjson import WinJsonReader
from exhunt.winlog.forms import from_evtx_json


class EvtxJson(WinJsonReader):
    name = "evtx-json"
    description = "EVTX records as JSON (evtx_dump -o json/jsonl, Event.System / Event.EventData)"
    what = "EVTX JSON (Event.System)"
    score = 92
    convert = staticmethod(from_evtx_json)
    form = "evtx"

    def matches(self, rec: dict[str, Any]) -> bool:
        event = rec.get("Event")
        return isinstance(event, dict) and isinstance(event.get("System"), dict)

    def sniff_text(self, text: str) -> bool:
        return '"Event"' in text and '"System"' in text

READER = EvtxJson()
