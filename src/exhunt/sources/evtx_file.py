"""Windows event log files (.evtx), parsed by the Rust `evtx` package.

Records stream out of the parser and go to DuckDB in bounded batches of their JSON
text, mapped there (exhunt.winlog.sql), so memory stays flat however large the log
and no Python runs per field. A damaged chunk is counted and skipped; the rest of
the file is still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evtx import PyEvtxParser

from exhunt.sources.base import Batch, FileReport, SourceFile
from exhunt.winlog.sql import RawBatches

MAGIC = b"ElfFile\x00"
#: An EVTX file is a 4 KiB header followed by 64 KiB chunks.
HEADER = 4096
CHUNK = 65536
#: Give up on a file after this many parser errors in a row (nothing readable is left).
MAX_CONSECUTIVE_ERRORS = 10_000


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
            yield from self._batches(parser, src, report)
        if src.size > HEADER and (src.size - HEADER) % CHUNK:
            report.damaged_chunks += 1
            report.message(f"{report.path}: the file ends inside a chunk (a truncated copy?); "
                           "the records of that last chunk are lost")

    @staticmethod
    def _batches(parser: Any, src: SourceFile, report: FileReport) -> Iterator[Batch]:
        """The parser's records as they come, in bounded batches: their JSON text goes to DuckDB
        untouched (exhunt.winlog.sql maps it), so nothing here runs per field."""
        records = parser.records_json()
        errors = 0
        raw = RawBatches(src.name, "Windows event")
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
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
                    break
                continue
            errors = 0
            report.read += 1
            full = raw.add(f"record {rec['event_record_id']}", rec["data"], rec["timestamp"])
            if full is not None:
                yield full
        last = raw.done()
        if last is not None:
            yield last


READER = EvtxFile()
