"""Binary .evtx files written by the tests themselves, from `winlog_gen.Ev` events.

The layout follows the public EVTX format description (libyal's libevtx documentation):
a 4 KiB file header (`ElfFile\\0`, chunk count, CRC32 of its first 120 bytes), then 64 KiB
chunks (`ElfChnk\\0`, first/last record number and identifier, offsets, CRC32s of the
header and of the records), each holding event records (`**\\0\\0`, size, identifier,
FILETIME, binary XML, size again). The binary XML is written without templates: plain
elements, attributes and typed values, with names inline, which is enough for the parser
and for the mapping. `FileLayout` says where each chunk and record went, so a test can
damage exactly the bytes it means to.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from winlog_gen import Ev

HEADER = 4096
CHUNK = 65536
CHUNK_HEADER = 512
RECORD_HEADER = 24

# binary XML tokens and value types used here
_END_OF_STREAM, _OPEN, _CLOSE_START, _CLOSE_EMPTY, _END, _ATTRIBUTE, _TEMPLATE, _SUBST, _FRAGMENT = (
    0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x0C, 0x0D, 0x0F)
_MORE = 0x40
_STRING, _UINT8, _UINT16, _UINT64, _FILETIME, _HEX64 = 0x01, 0x04, 0x06, 0x0A, 0x11, 0x15
_PACK = {_UINT8: "<B", _UINT16: "<H", _UINT64: "<Q", _FILETIME: "<Q", _HEX64: "<Q"}


def filetime(iso: str) -> int:
    """100 ns intervals since 1601 (what EVTX stores) for an ISO time (7 fraction digits kept)."""
    text = iso.rstrip("Z")
    whole, _, frac = text.partition(".")
    dt = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    epoch = datetime(1601, 1, 1, tzinfo=UTC)
    return int((dt - epoch).total_seconds()) * 10_000_000 + int((frac + "0000000")[:7])


def _name_hash(name: str) -> int:
    h = 0
    for ch in name:
        h = (h * 65599 + ord(ch)) & 0xFFFFFFFF
    return h & 0xFFFF


Value = tuple[int, Any]  # (value type, value)


def _encode(v: Value) -> bytes:
    kind, x = v
    return str(x).encode("utf-16-le") if kind == _STRING else struct.pack(_PACK[kind], x)


@dataclass
class Elem:
    name: str
    attrs: list[tuple[str, Value]] = field(default_factory=list)
    content: list[Elem] | Value | None = None


def event_tree(e: Ev) -> Elem:
    """The XML of a Windows event, as the event log service records it."""
    system = [
        Elem("Provider", [("Name", (_STRING, e.source[1]))]),
        Elem("EventID", content=(_UINT16, e.event_id)),
        Elem("Version", content=(_UINT8, 0)),
        Elem("Level", content=(_UINT8, e.level)),
        Elem("Task", content=(_UINT16, e.task)),
        Elem("Opcode", content=(_UINT8, 0)),
        Elem("Keywords", content=(_HEX64, 0x8000000000000000)),
        Elem("TimeCreated", [("SystemTime", (_FILETIME, filetime(e.time)))]),
        Elem("EventRecordID", content=(_UINT64, e.record_id)),
        Elem("Correlation"),
        Elem("Channel", content=(_STRING, e.source[0])),
        Elem("Computer", content=(_STRING, e.computer)),
        Elem("Security", [("UserID", (_STRING, e.user_sid))]),
    ]
    if isinstance(e.data, list):
        data = [Elem("Data", content=(_STRING, v)) for v in e.data]
    else:
        data = [Elem("Data", [("Name", (_STRING, k))], (_STRING, v)) for k, v in e.data.items()]
    return Elem("Event", [("xmlns", (_STRING, "http://schemas.microsoft.com/win/2004/08/events/event"))],
                [Elem("System", content=system), Elem("EventData", content=data)])


class _ChunkWriter:
    """One chunk's bytes. Each record is a template instance whose template is defined inline
    (names inline too, at chunk-relative offsets) and whose values are its substitutions."""

    def __init__(self) -> None:
        self.buf = bytearray(CHUNK_HEADER)
        self.records: list[tuple[int, int]] = []  # (offset, record id)
        self._values: list[Value] = []

    def _name(self, name: str) -> None:
        offset = len(self.buf) + 4
        self.buf += struct.pack("<IIHH", offset, 0, _name_hash(name), len(name)) + name.encode("utf-16-le") + b"\0\0"

    def _subst(self, value: Value) -> None:
        self.buf += struct.pack("<BHB", _SUBST, len(self._values), value[0])
        self._values.append(value)

    def _elem(self, el: Elem) -> None:
        self.buf.append(_OPEN | (_MORE if el.attrs else 0))
        self.buf += struct.pack("<H", 0xFFFF)
        size_at = len(self.buf)
        self.buf += b"\0\0\0\0"
        self._name(el.name)
        if el.attrs:
            list_at = len(self.buf)
            self.buf += b"\0\0\0\0"
            for i, (name, value) in enumerate(el.attrs):
                self.buf.append(_ATTRIBUTE | (_MORE if i < len(el.attrs) - 1 else 0))
                self._name(name)
                self._subst(value)
            struct.pack_into("<I", self.buf, list_at, len(self.buf) - list_at - 4)
        if el.content is None or el.content == []:
            self.buf.append(_CLOSE_EMPTY)
        else:
            self.buf.append(_CLOSE_START)
            if isinstance(el.content, list):
                for child in el.content:
                    self._elem(child)
            else:
                self._subst(el.content)
            self.buf.append(_END)
        struct.pack_into("<I", self.buf, size_at, len(self.buf) - size_at - 4)

    def _template(self, tree: Elem, template_id: int) -> None:
        self.buf += struct.pack("<BBII", _TEMPLATE, 1, template_id, len(self.buf) + 10)
        head_at = len(self.buf)
        self.buf += struct.pack("<I", 0) + struct.pack("<I", template_id) + b"\x5a" * 12 + b"\0\0\0\0"
        self.buf += bytes([_FRAGMENT, 1, 1, 0])
        self._values = []
        self._elem(tree)
        self.buf.append(_END_OF_STREAM)
        struct.pack_into("<I", self.buf, head_at + 20, len(self.buf) - head_at - 24)
        encoded = [_encode(v) for v in self._values]
        self.buf += struct.pack("<I", len(encoded))
        for (kind, _), raw in zip(self._values, encoded, strict=True):
            self.buf += struct.pack("<HBB", len(raw), kind, 0)
        for raw in encoded:
            self.buf += raw

    def fits(self, e: Ev) -> bool:
        probe = _ChunkWriter()
        probe.buf = bytearray(len(self.buf))
        probe.add(e)
        return len(probe.buf) <= CHUNK

    def add(self, e: Ev) -> None:
        start = len(self.buf)
        self.buf += struct.pack("<IIQQ", 0x2A2A, 0, e.record_id, filetime(e.time))
        self.buf += bytes([_FRAGMENT, 1, 1, 0])
        self._template(event_tree(e), e.record_id)
        self.buf.append(_END_OF_STREAM)
        self.buf += b"\0" * (-(len(self.buf) + 4 - start) % 8)
        size = len(self.buf) + 4 - start
        self.buf += struct.pack("<I", size)
        struct.pack_into("<I", self.buf, start + 4, size)
        self.records.append((start, e.record_id))

    def finish(self) -> bytes:
        ids = [r for _, r in self.records]
        free = len(self.buf)
        head = struct.pack("<8sQQQQIIII", b"ElfChnk\0", ids[0], ids[-1], ids[0], ids[-1], 128,
                           self.records[-1][0], free, zlib.crc32(self.buf[CHUNK_HEADER:free]))
        self.buf[: len(head)] = head
        header_crc = zlib.crc32(bytes(self.buf[:120]) + bytes(self.buf[128:CHUNK_HEADER]))
        struct.pack_into("<I", self.buf, 124, header_crc)
        return bytes(self.buf) + b"\0" * (CHUNK - len(self.buf))


@dataclass
class FileLayout:
    """Where things are in a written file: per chunk, its offset and its records' (offset, id)."""

    chunks: list[tuple[int, list[tuple[int, int]]]]

    def record(self, record_id: int) -> tuple[int, int]:
        """(chunk index, file offset) of a record."""
        for i, (at, records) in enumerate(self.chunks):
            for off, rid in records:
                if rid == record_id:
                    return i, at + off
        raise KeyError(record_id)


def file_header(chunk_count: int, next_record_id: int, flags: int = 0) -> bytes:
    head = struct.pack("<8sQQQIHHHH", b"ElfFile\0", 0, max(chunk_count - 1, 0), next_record_id, 128, 1, 3,
                       HEADER, chunk_count)
    head += b"\0" * (120 - len(head))
    head += struct.pack("<II", flags, zlib.crc32(head))
    return head + b"\0" * (HEADER - len(head))


def evtx_bytes(events: list[Ev], per_chunk: int = 40) -> tuple[bytes, FileLayout]:
    """A valid .evtx holding `events` in order, at most `per_chunk` records per chunk."""
    chunks: list[bytes] = []
    layout: list[tuple[int, list[tuple[int, int]]]] = []
    writer = _ChunkWriter()
    for e in events:
        if writer.records and (len(writer.records) >= per_chunk or not writer.fits(e)):
            layout.append((HEADER + CHUNK * len(chunks), writer.records))
            chunks.append(writer.finish())
            writer = _ChunkWriter()
        writer.add(e)
    if writer.records:
        layout.append((HEADER + CHUNK * len(chunks), writer.records))
        chunks.append(writer.finish())
    next_id = max((e.record_id for e in events), default=0) + 1
    return file_header(len(chunks), next_id) + b"".join(chunks), FileLayout(layout)


def numbered(template: Ev, n: int, first: int = 1) -> list[Ev]:
    """`n` copies of an event with record ids first, first+1, ... and times a second apart."""
    base = datetime.fromisoformat(template.time.rstrip("Z").split(".")[0]).replace(tzinfo=UTC)
    out = []
    for i in range(n):
        iso = datetime.fromtimestamp(base.timestamp() + i, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(Ev(template.source, template.event_id, first + i, iso, template.data, template.computer,
                      template.level, template.task, template.user_sid))
    return out
