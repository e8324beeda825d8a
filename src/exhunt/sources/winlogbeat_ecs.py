"""Winlogbeat / Elastic Agent documents (ECS with `winlog.*`), one per line, as an array,
or as Elasticsearch search results (`hits.hits[]._source`)."""

from __future__ import annotations

from typing import Any

from exhunt.sources.winjson import WinJsonReader
from exhunt.winlog.forms import from_ecs


class WinlogbeatEcs(WinJsonReader):
    name = "winlogbeat-ecs"
    description = "Winlogbeat / Elastic Agent Windows events (ECS, winlog.event_data.*)"
    what = "Winlogbeat (winlog.*)"
    score = 91
    form = "ecs"
    convert = staticmethod(from_ecs)

    def matches(self, rec: dict[str, Any]) -> bool:
        if isinstance(rec.get("_source"), dict):
            rec = rec["_source"]
        return isinstance(rec.get("winlog"), dict) or any(k.startswith("winlog.") for k in rec)

    def sniff_text(self, text: str) -> bool:
        return '"winlog"' in text or '"winlog.' in text


READER = WinlogbeatEcs()
