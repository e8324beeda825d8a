"""Windows event log files (.evtx), parsed by the Rust `evtx` package.

Records stream out of the parser one chunk at a time and are mapped as they
come (see exhunt.winlog), so memory stays flat however large the log. A damaged
chunk is counted and skipped; the rest of the file is still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from evtx import PyEvtxParser

from exhunt.sources.base import Batch, FileReport, SourceFile
from exhunt.sources.winjson import map_events
from exhunt.winlog.event import WinEvent
from exhunt.winlog.forms import from_evtx_json

MAGIC = b"ElfFile\x00"
#: An EVTX file is a 4 KiB header followed by 64 KiB chunks.
HEADER = 4096
CHUNK = 65536
#: Give up on a file after this many parser errors in a row (nothing readable is left).
MAX_CONSECUTIVE_ERRORS = 10_000
_ZERO_TIME = "1601-01-01"


class EvtxFile:
    name = "evtx"
    description = "Windows event logs (.evtx): Sysmon, Security, PowerShell, MSExchange Management, ..."

    def sniff(self, src: SourceFile, head: bytes) -> int:
        return 100 if head[:8] == MAGIC else 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        with src.open() as fh:
            try:
                parser = PyEvtxParser(fh, number_of_threads=0)
            except (RuntimeError, OSError, ValueError) as exc:
                report.error = f"damaged EVTX file header: {exc}"
                return
            yield from map_events(self._events(parser, report), src, report, table, "Windows event")
        if src.size > HEADER and (src.size - HEADER) % CHUNK:
            report.damaged_chunks += 1
            report.message(f"{report.path}: the file ends inside a chunk (a truncated copy?); "
                           "the records of that last chunk are lost")

    @staticmethod
    def _events(parser: Any, report: FileReport) -> Iterator[tuple[str, WinEvent | None]]:
        records = parser.records_json()
        loads = orjson.loads
        errors = 0
        while True:
            try:
                rec = next(records)
            except StopIteration:
                return
            except RuntimeError as exc:
                errors += 1
                msg = str(exc).split("\n", 1)[0]
                if "chunk" in msg.lower():
                    report.damaged_chunks += 1
                    report.message(f"{report.path}: skipped a damaged chunk: {msg[:160]}")
                else:
                    report.skip("?", "damaged record", msg[:160])
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    report.note = f"stopped after {errors} parser errors in a row"
                    return
                continue
            errors = 0
            where = f"record {rec['event_record_id']}"
            try:
                ev = from_evtx_json(loads(rec["data"]))
            except ValueError:  # orjson.JSONDecodeError is a ValueError
                ev = None
            if ev is not None and not ev.time:
                header = str(rec.get("timestamp") or "").removesuffix(" UTC")
                if header and not header.startswith(_ZERO_TIME):
                    ev.time = header
            yield where, ev


READER = EvtxFile()
