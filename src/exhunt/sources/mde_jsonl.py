"""Defender rows as JSON lines, one record per line.

Covers the Streaming API's storage-account blobs (`{time, tenantId, category,
properties}`), Event Hub messages saved one per line (`{"records": [...]}`),
Log Analytics data-export blobs and Sentinel exports (flat rows with `Type`,
`TimeGenerated`), and plain rows. A line that is not valid JSON is skipped and
named; the rest of the file is still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from exhunt.sources.base import (
    NESTED_TOO_DEEP,
    Batch,
    FileReport,
    RowBuffer,
    SourceFile,
    TooDeep,
    loads,
    shorten,
    text_stream,
)
from exhunt.sources.records import Router

#: Keys that mark a line as a Windows event rather than a Defender row.
_WINDOWS_MARKERS = ('"event":', '"winlog"', '"eventid"', '"channel"', '"event_id"')


class MdeJsonl:
    name = "mde-jsonl"
    description = "Streaming API records, Sentinel/Log Analytics exports, rows as JSON lines"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        text = head.lstrip(b"\xef\xbb\xbf \r\n\t")
        if text[:1] != b"{":
            return 0
        first = text.split(b"\n", 1)[0].decode("utf-8", errors="replace").lower()
        if '"category"' in first and "advancedhunting-" in first:
            return 95
        if any(m in first for m in _WINDOWS_MARKERS):
            return 5
        if '"timestamp"' in first or '"timegenerated"' in first:
            return 70
        return 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        buf = RowBuffer()
        router = Router(table, src.name)
        try:
            with src.open() as fh:
                for lineno, line in enumerate(text_stream(fh), 1):
                    if line.strip():
                        yield from self._line(line, f"line {lineno}", router, buf, report)
        except OSError:
            yield from buf.drain()  # the rows before a read error are kept; the error is reported
            raise
        yield from buf.drain()

    @staticmethod
    def _line(line: str, where: str, router: Router, buf: RowBuffer, report: FileReport) -> Iterator[Batch]:
        """One line's records into the buffer; a bad one is skipped and the next line read."""
        report.read += 1
        try:
            rec: Any = loads(line)
        except TooDeep:
            report.skip(where, NESTED_TOO_DEEP)
            return
        except json.JSONDecodeError as exc:
            # The parser ran off the end of the line: the line was cut (a partial write).
            cut = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
            report.skip(where, "truncated JSON line" if cut else "invalid JSON", f"{exc.msg} (column {exc.colno})")
            return
        except ValueError as exc:
            report.skip(where, "invalid JSON", shorten(str(exc)))
            return
        if not isinstance(rec, dict):
            report.skip(where, "line is not a JSON object")
            return
        records = rec.get("records")
        items = records if isinstance(records, list) else [rec]
        report.read += len(items) - 1
        for j, item in enumerate(items, 1):
            here = where if len(items) == 1 else f"{where} record {j}"
            out = router.add(item, here, buf, report, name_columns=True)
            if out is not None:
                yield out


READER = MdeJsonl()
