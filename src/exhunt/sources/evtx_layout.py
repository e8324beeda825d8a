"""What an .evtx file's own headers say it holds, so that what the parser could not read is counted.

An EVTX file is a 4 KiB file header (`ElfFile\\0`, the chunk count, the next record id, a CRC32
of its first 120 bytes) followed by 64 KiB chunks, each starting with a 512-byte header
(`ElfChnk\\0`, first and last event record number and identifier, the free-space offset, a
CRC32 of bytes 0-120 and 128-512). Reading those headers costs 512 bytes per chunk beside the
parser, and tells how many records each chunk holds.

The parser yields a chunk's records together and in order, so each record is attributed to a
chunk by its record id as it passes (`Ledger`), and each parser error to the chunk it names or,
failing that, to the chunk being read. At the end (`account`) every record a chunk header lists
that the parser did not yield is counted as skipped, with the reason (a damaged record, a
damaged chunk, a truncated file), the chunk and the first record lost. Chunks whose header is
unusable are counted from their neighbours' record ids; missing chunks from the file header.
A file whose header is unusable is read through `CarvedFile`: a new header in front of the
chunks found at their places.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from exhunt.sources.base import FileReport

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER = 4096
CHUNK = 65536
CHUNK_HEADER = 512
#: A record takes at least 28 bytes: a chunk header listing more records than fit is not believed.
MAX_RECORDS = (CHUNK - CHUNK_HEADER) // 28
#: How many chunks ahead a record id is looked for when it leaves the current chunk's range.
LOOKAHEAD = 64

CHUNK_KIND, EMPTY, DAMAGED = "chunk", "empty", "damaged"


@dataclass
class FileHeader:
    chunk_count: int
    next_record_id: int
    #: Signature and checksum right: its chunk count and next record id can be believed.
    trusted: bool
    #: Not closed cleanly: the next record id may be older than the chunks (a lower bound).
    dirty: bool = False


def read_file_header(raw: bytes) -> FileHeader | None:
    """The file header's facts, or None when it does not start with the EVTX signature."""
    if len(raw) < 128 or raw[:8] != FILE_MAGIC:
        return None
    (next_id,) = struct.unpack_from("<Q", raw, 24)
    (count,) = struct.unpack_from("<H", raw, 42)
    flags, crc = struct.unpack_from("<II", raw, 120)
    return FileHeader(count, next_id, zlib.crc32(raw[:120]) == crc, bool(flags & 1))


@dataclass(eq=False)
class Slot:
    """One 64 KiB place for a chunk, what its header says and what the parser made of it."""

    number: int
    offset: int
    kind: str
    partial: bool = False
    first: int = 0
    last: int = -1
    #: The header's record range is plausible (used to attribute records).
    ranged: bool = False
    #: ... and its checksum is right: it holds exactly `last - first + 1` records.
    trusted: bool = False
    seen: int = 0
    error: str | None = None
    error_kind: str = ""
    failed_at: int | None = None

    @property
    def where(self) -> str:
        return f"chunk {self.number} (offset {self.offset:#x})"

    @property
    def expected(self) -> int:
        return self.last - self.first + 1 if self.trusted else 0


def _slot(number: int, offset: int, head: bytes, partial: bool) -> Slot:
    if len(head) < CHUNK_HEADER or head[:8] != CHUNK_MAGIC:
        kind = EMPTY if not head.strip(b"\0") else DAMAGED
        return Slot(number, offset, kind, partial)
    _, _, first, last = struct.unpack_from("<QQQQ", head, 8)
    (crc,) = struct.unpack_from("<I", head, 124)
    ranged = 1 <= first <= last < first + MAX_RECORDS
    trusted = ranged and zlib.crc32(head[:120] + head[128:CHUNK_HEADER]) == crc
    return Slot(number, offset, CHUNK_KIND, partial, first, last, ranged, trusted)


def scan(fh: IO[bytes], size: int, base: int = HEADER) -> tuple[list[Slot], bool]:
    """Every chunk place from `base` to the end of the file, from its header alone (a blank
    header is checked to be a blank chunk: a chunk with its header wiped is damaged); and
    whether the file could be read to its end (an archive member may fail partway)."""
    slots: list[Slot] = []
    offset = base
    try:
        while offset < size:
            fh.seek(offset)
            head = fh.read(CHUNK_HEADER)
            partial = offset + CHUNK > size
            slot = _slot(len(slots), offset, head, partial)
            if slot.kind == EMPTY and not partial and fh.read(CHUNK - CHUNK_HEADER).strip(b"\0"):
                slot.kind = DAMAGED
            slots.append(slot)
            offset += CHUNK
    except OSError:
        return slots, False
    return slots, True


def chunk_base(head: bytes) -> int:
    """Where the chunks of a file with an unusable header start: after the 4 KiB header,
    unless the file starts with a chunk (chunks saved without their file)."""
    return 0 if head[:8] == CHUNK_MAGIC and head[HEADER:HEADER + 8] != CHUNK_MAGIC else HEADER


def file_header(chunks: int, next_record_id: int) -> bytes:
    """A clean EVTX file header (version 3.1) for `chunks` chunks."""
    head = struct.pack("<8sQQQIHHHH", FILE_MAGIC, 0, max(chunks - 1, 0), next_record_id, 128, 1, 3, HEADER,
                       chunks)
    head += bytes(120 - len(head))
    head += struct.pack("<II", 0, zlib.crc32(head))
    return head + bytes(HEADER - len(head))


def whole_records_end(chunk: bytes) -> int:
    """The offset after the last record lying wholly in `chunk` (the part a file ends inside)."""
    off = CHUNK_HEADER
    while off + 24 <= len(chunk) and chunk[off:off + 4] == b"**\0\0":
        (size,) = struct.unpack_from("<I", chunk, off + 4)
        if size < 28 or off + size > len(chunk):
            break
        off += size
    return off


def trimmed_chunk(part: bytes) -> bytes:
    """A chunk the file ends inside, made whole: zeros after its last whole record, where its
    free-space offset now points (the parser reads records up to it), so no record is read with
    a made-up end."""
    end = whole_records_end(part)
    buf = bytearray(part[:end] + bytes(CHUNK - end))
    (free,) = struct.unpack_from("<I", buf, 48)
    struct.pack_into("<I", buf, 48, min(free, end))
    struct.pack_into("<I", buf, 124, zlib.crc32(bytes(buf[:120]) + bytes(buf[128:CHUNK_HEADER])))
    return bytes(buf)


class CarvedFile(io.RawIOBase):
    """A valid EVTX file made of a new file header and chunks of a damaged file, read from it
    on demand (nothing is copied whole but a chunk the file ends inside, see trimmed_chunk)."""

    def __init__(self, fh: IO[bytes], slots: list[Slot]) -> None:
        super().__init__()
        self._fh = fh
        self._offsets = [s.offset for s in slots]
        self._held: dict[int, bytes] = {}
        for k, s in enumerate(slots):
            if s.partial:
                fh.seek(s.offset)
                self._held[k] = trimmed_chunk(fh.read(CHUNK))
        next_id = max((s.last for s in slots if s.ranged), default=0) + 1
        self._head = file_header(len(slots), next_id)
        self._size = HEADER + CHUNK * len(slots)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            piece = self._piece(len(view) - done)
            view[done:done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def _piece(self, want: int) -> bytes:
        if self._pos < HEADER:
            return self._head[self._pos:self._pos + want]
        k, within = divmod(self._pos - HEADER, CHUNK)
        n = min(want, CHUNK - within)
        if k in self._held:
            return self._held[k][within:within + n]
        self._fh.seek(self._offsets[k] + within)
        data = self._fh.read(n)
        return data + bytes(n - len(data))


_CHUNK_NO = re.compile(r"chunk number (\d+)")
_CHUNK_IDS = re.compile(r"record IDs (\d+)\.\.(\d+)")
_RECORD_NO = re.compile(r"record number (\d+)")


class Ledger:
    """Which of the chunks given to the parser (in its order: its "chunk number" is the index)
    each record and each error came from.

    The reader's loop counts records of the current chunk's id range itself (`lo`..`hi`, `run`)
    and calls `move` only when a record leaves it, so an intact file costs a comparison a record.
    """

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.cur = -1
        self.lo, self.hi = 1, 0
        self.run = 0
        self._ranges: dict[tuple[int, int], int] | None = None

    def flush(self) -> None:
        if self.run and self.cur >= 0:
            self.slots[self.cur].seen += self.run
        self.run = 0

    def _by_range(self) -> dict[tuple[int, int], int]:
        if self._ranges is None:
            self._ranges = {}
            for k, s in enumerate(self.slots):
                if s.ranged:
                    self._ranges.setdefault((s.first, s.last), k)
        return self._ranges

    def _find(self, rid: int, start: int) -> int | None:
        for j in range(start, min(start + LOOKAHEAD, len(self.slots))):
            s = self.slots[j]
            if s.ranged and s.first <= rid <= s.last:
                return j
        return None

    def _enter(self, j: int) -> None:
        self.cur = j
        s = self.slots[j]
        self.lo, self.hi = (s.first, s.last) if s.ranged else (1, 0)

    def move(self, rid: int) -> None:
        """A record outside the current chunk's range: the chunk ahead holding it, else this one."""
        self.flush()
        self.run = 1
        j = self._find(rid, self.cur + 1)
        if j is not None:
            self._enter(j)
            return
        if self.cur < 0:
            self.cur = next((k for k, s in enumerate(self.slots) if s.kind != EMPTY), -1)
        # Later records of the same unlisted run stay here without another search.
        nxt = next((s.first for s in self.slots[self.cur + 1:self.cur + 1 + LOOKAHEAD] if s.ranged), None)
        self.lo, self.hi = rid, (nxt - 1 if nxt is not None and nxt > rid else rid)

    def _open_chunk(self, kind: str) -> int | None:
        """The chunk an error that names none belongs to: for a record, the current chunk if it is
        not complete; else (and for a chunk error) the next one that is not blank."""
        if kind == "record" and self.cur >= 0:
            s = self.slots[self.cur]
            if s.kind == CHUNK_KIND and (not s.trusted or s.seen < s.expected):
                return self.cur
        return next((k for k in range(self.cur + 1, len(self.slots)) if self.slots[k].kind != EMPTY), None)

    def error(self, msg: str, last_rid: int | None) -> Slot | None:
        """Attribute a parser error; None when it fits no chunk given to the parser."""
        self.flush()
        failed: int | None = None
        j: int | None = None
        if m := _CHUNK_NO.search(msg):
            kind, j = "chunk", int(m.group(1))
        elif m := _CHUNK_IDS.search(msg):
            kind = "chunk"
            j = self._by_range().get((int(m.group(1)), int(m.group(2))))
        elif m := _RECORD_NO.search(msg):
            kind, failed = "record", int(m.group(1))
            j = self._find(failed, max(self.cur, 0))
        else:
            kind = "chunk" if "chunk" in msg.lower() else "record"
        if j is None or not 0 <= j < len(self.slots):
            j = self._open_chunk(kind)
        if j is None:
            return None
        s = self.slots[j]
        if failed is None and kind == "record":
            failed = last_rid + 1 if j == self.cur and last_rid is not None and s.ranged and \
                s.first <= last_rid < s.last else s.first
        if s.error is None:
            s.error, s.error_kind, s.failed_at = msg, kind, failed
        if j > self.cur:
            self._enter(j)
        return s


def _span(first: int, last: int) -> str:
    return f"{first}..{last}" if last > first else str(first)


def _lose(report: FileReport, where: str, reason: str, detail: str, n: int) -> None:
    """Records the file held that no table gets: read and skipped, so read = used + skipped."""
    report.read += n
    report.skip(where, reason, detail, count=n)


def _account_chunk(report: FileReport, s: Slot) -> bool:
    """Count what a chunk with a trusted header lost; True when the chunk counts as damaged."""
    if s.partial:
        report.message(f"{report.path}: the file ends inside a chunk: {s.where} is cut short (a truncated copy?); "
                       f"{s.seen} whole records read from it")
    lost = max(s.expected - s.seen, 1 if s.error_kind == "record" else 0)
    if not lost:
        if s.error:
            report.message(f"{report.path}:{s.where}: damaged chunk: {s.error[:160]}")
        return s.partial or bool(s.error)
    first = (s.failed_at or s.first) if s.error_kind == "record" else s.first + s.seen
    span = f" ({_span(first, s.last)})" if lost == s.last - first + 1 else ""
    if s.partial:
        reason, why = "file truncated", "the file ends inside the chunk"
    elif s.error_kind == "record":
        reason, why = "damaged record", (s.error or "")[:160]
    else:
        reason = "damaged chunk"
        why = s.error[:160] if s.error else f"the chunk header lists records {_span(s.first, s.last)}"
    where = f"{s.where}, record {first}" if s.error_kind == "record" else s.where
    _lose(report, where, reason, f"{why}; {lost} records lost{span}", lost)
    return reason != "damaged record"


def _describe(s: Slot) -> str:
    if s.error:
        return s.error[:160]
    if s.kind == EMPTY:
        return "the chunk is blank (all zero)"
    if s.kind == DAMAGED:
        return "no chunk signature" + ("; the file ends inside it" if s.partial else "")
    return "its header's checksum or record range is wrong"


def _account_group(report: FileReport, group: list[Slot], before: Slot | None, after: Slot | None) -> int:
    """Chunks with no trusted header between two trusted ones: their records are the gap in
    record ids between their neighbours. Returns how many of them count as damaged."""
    gap = after.first - before.last - 1 if before is not None and after is not None else 0
    if gap > len(group) * MAX_RECORDS:  # more than the chunks could hold: the ids are not consecutive
        gap = 0
    lost = max(0, gap - sum(s.seen for s in group))
    bad = [s for s in group if s.kind != EMPTY or lost]
    if not bad:
        return 0
    where = bad[0].where if len(bad) == 1 else f"chunks {bad[0].number}..{bad[-1].number} (offset {bad[0].offset:#x})"
    if lost:
        assert before is not None
        span = f" ({_span(before.last + 1, before.last + gap)})" if lost == gap else ""
        _lose(report, where, "damaged chunk", f"{_describe(bad[0])}; {lost} records lost{span}", lost)
    else:
        for s in bad:
            report.message(f"{report.path}:{s.where}: damaged chunk: {_describe(s)}; "
                           "how many records it held is unknown")
    return len(bad)


def account(report: FileReport, slots: list[Slot], header: FileHeader | None) -> None:
    """Count every record the headers say the file held and the parser did not yield."""
    damaged = 0
    group: list[Slot] = []
    before: Slot | None = None
    for s in slots:
        if s.trusted:
            if group:
                damaged += _account_group(report, group, before, s)
                group = []
            damaged += _account_chunk(report, s)
            before = s
        else:
            group.append(s)
    if slots and slots[-1].partial and not slots[-1].trusted and slots[-1].kind != EMPTY:
        report.message(f"{report.path}: the file ends inside a chunk: {slots[-1].where} is cut short "
                       "(a truncated copy?)")
    damaged += _account_end(report, slots, group, header)
    report.damaged_chunks += damaged


def _account_end(report: FileReport, slots: list[Slot], tail: list[Slot], header: FileHeader | None) -> int:
    """Chunks missing at the end (the file header counts more) or damaged after the last good one:
    their records are those the file header's next record id says were written after it."""
    if header is None or not header.trusted:
        return _account_group(report, tail, None, None)
    present = sum(1 for s in slots if not s.partial)
    truncated = header.chunk_count > present
    if truncated:
        report.error = f"file truncated: {present} of {header.chunk_count} chunks present"
    bad = [s for s in tail if s.kind != EMPTY]
    known = max((s.last for s in slots if s.trusted), default=0)
    missing = header.next_record_id - 1 - known
    if missing > (max(header.chunk_count - present, 0) + len(bad)) * MAX_RECORDS:
        missing = 0  # more than the missing chunks could hold: the header's record number is not believed
    if missing <= 0 or not (truncated or bad):
        if truncated:
            report.message(f"{report.path}: how many records the missing chunks held is unknown "
                           "(the file header's next record number does not tell)")
        return _account_group(report, tail, None, None)
    where = f"chunks {present}..{header.chunk_count - 1}" if truncated else bad[0].where
    reason = "file truncated" if truncated or (slots and slots[-1].partial) else "damaged chunk"
    least = "at least " if header.dirty else ""
    _lose(report, where, reason, f"{least}{missing} records lost ({_span(known + 1, known + missing)})", missing)
    return len(bad)


def lost_to_errors(report: FileReport, errors: Iterable[str]) -> None:
    """Parser errors no chunk explains (counted one record each)."""
    for msg in errors:
        _lose(report, "?", "damaged record", msg[:160], 1)
