"""`evtx_dump` output and other JSON renderings of EVTX records (`{"Event": {"System": .., "EventData": ..}}`),
as JSON lines, a JSON array, or evtx_dump's "Record N" + pretty-printed JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exhunt.sources.base import Batch, FileReport, SourceFile, text_stream
from exhunt.sources.winjson import WinJsonReader, is_json_lines
from exhunt.winlog.forms import from_evtx_json
from exhunt.winlog.sql import RawBatches


class EvtxJson(WinJsonReader):
    name = "evtx-json"
    description = "EVTX records as JSON (evtx_dump -o json/jsonl, Event.System / Event.EventData)"
    what = "EVTX JSON (Event.System)"
    score = 92
    convert = staticmethod(from_evtx_json)

    def matches(self, rec: dict[str, Any]) -> bool:
        event = rec.get("Event")
        return isinstance(event, dict) and isinstance(event.get("System"), dict)

    def sniff_text(self, text: str) -> bool:
        return '"Event"' in text and '"System"' in text

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        """JSON lines go to DuckDB as text, mapped there like .evtx records (exhunt.winlog.sql);
        the document forms (an array, evtx_dump's "Record N" + pretty JSON) through Python."""
        if not is_json_lines(src.head()):
            yield from super().read(src, report, table)
            return
        raw = RawBatches(src.name, self.what)
        with src.open() as fh:
            for lineno, line in enumerate(text_stream(fh), 1):
                if not line.strip():
                    continue
                report.read += 1
                full = raw.add(f"line {lineno}", line)
                if full is not None:
                    yield full
        last = raw.done()
        if last is not None:
            yield last


READER = EvtxJson()
