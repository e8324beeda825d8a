"""Windows event logs (.evtx), parsed by the Rust `evtx` package.

Records stream out of the parser and go to DuckDB in bounded batches of their JSON
text, mapped there (exhunt.winlog.sql), so memory stays flat however large the log
and no Python runs per field. Nothing the file held is lost uncounted: the chunk
headers say how many records each chunk holds (exhunt.sources.evtx_layout), so the
records a damaged record, a damaged chunk or a truncated file took are counted as
skipped, by chunk and record. A file whose header is damaged has its chunks carved
and read; a file cut inside a chunk has that chunk's whole records read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from evtx import PyEvtxParser

from exhunt.sources import evtx_layout as layout
from exhunt.sources.base import Batch, FileReport, SourceFile
from exhunt.winlog.sql import RawBatches

MAGIC = layout.FILE_MAGIC
HEADER = layout.HEADER
CHUNK = layout.CHUNK
#: Give up on a file after this many parser errors in a row (nothing readable is left).
MAX_CONSECUTIVE_ERRORS = 10_000
#: The exceptions the parser raises for bad input.
PARSE_ERRORS = (RuntimeError, OSError, ValueError)


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0]


class EvtxFile:
    name = "evtx"
    description = "Windows event logs (.evtx): Sysmon, Security, PowerShell, MSExchange Management, ..."

    def sniff(self, src: SourceFile, head: bytes) -> int:
        if head[:8] == MAGIC:
            return 100
        if layout.CHUNK_MAGIC in (head[:8], head[HEADER:HEADER + 8]):
            return 90  # a damaged file header, or chunks without one: carved
        return 10 if src.name.lower().endswith(".evtx") else 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        raw = RawBatches(src.name, "Windows event")
        with src.open() as fh:
            head = fh.read(HEADER)
            header = layout.read_file_header(head)
            slots, complete = layout.scan(fh, src.size)
            fh.seek(0)
            try:
                parser = PyEvtxParser(fh, number_of_threads=0)
            except PARSE_ERRORS as exc:
                yield from self._carve(fh, src, report, raw, header, _first_line(exc))
                return
            if header is not None and not header.trusted:
                report.message(f"{report.path}: the file header's checksum is wrong; its chunk count is not used")
            full = [s for s in slots if not s.partial]
            yield from self._batches(parser, report, raw, layout.Ledger(full))
            if slots and slots[-1].partial and slots[-1].kind == layout.CHUNK_KIND:
                # The parser skips a chunk the file ends inside: its whole records are read on their own.
                yield from self._batches(self._parser(fh, slots[-1:]), report, raw, layout.Ledger(slots[-1:]))
        # Past a part of the file that could not be read, the file header's counts cannot be checked.
        layout.account(report, slots, header if complete else None)
        last = raw.done()
        if last is not None:
            yield last

    def _carve(self, fh: IO[bytes], src: SourceFile, report: FileReport, raw: RawBatches,
               header: layout.FileHeader | None, why: str) -> Iterator[Batch]:
        """The parser refused the file (its header, mostly): read the chunks found at their places
        behind a new header."""
        fh.seek(0)
        slots, _ = layout.scan(fh, src.size, layout.chunk_base(fh.read(HEADER + 8)))
        carved = [s for s in slots if s.kind == layout.CHUNK_KIND]
        damaged = header is None or not header.trusted or src.size < HEADER
        if not carved:
            report.error = f"{'damaged EVTX file header' if damaged else 'unreadable EVTX file'} " \
                           "and no chunk found to carve"
            report.message(f"{report.path}: {why[:160]}")
            return
        report.note = f"{'header damaged' if damaged else 'file refused by the parser'}: {len(carved)} chunks carved"
        report.message(f"{report.path}: {report.note} ({why[:160]})")
        yield from self._batches(self._parser(fh, carved), report, raw, layout.Ledger(carved))
        layout.account(report, slots, None)
        last = raw.done()
        if last is not None:
            yield last

    @staticmethod
    def _parser(fh: IO[bytes], slots: list[layout.Slot]) -> Any:
        return PyEvtxParser(layout.CarvedFile(fh, slots), number_of_threads=0)

    @staticmethod
    def _batches(parser: Any, report: FileReport, raw: RawBatches, ledger: layout.Ledger) -> Iterator[Batch]:
        """The parser's records as they come, in bounded batches: their JSON text goes to DuckDB
        untouched (exhunt.winlog.sql maps it), so nothing here runs per field. Each record and
        error is noted against its chunk (`ledger`) for the count of what was lost."""
        records = parser.records_json()
        errors = 0
        rid: int | None = None
        unexplained: list[str] = []
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except PARSE_ERRORS as exc:
                errors += 1
                msg = _first_line(exc)
                if ledger.error(msg, rid) is None:
                    unexplained.append(msg)
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    report.note = f"stopped after {errors} parser errors in a row"
                    break
                continue
            errors = 0
            report.read += 1
            rid = rec["event_record_id"]
            if ledger.lo <= rid <= ledger.hi:
                ledger.run += 1
            else:
                ledger.move(rid)
            full = raw.add(f"record {rid}", rec["data"], rec["timestamp"])
            if full is not None:
                yield full
        ledger.flush()
        layout.lost_to_errors(report, unexplained)


READER = EvtxFile()
