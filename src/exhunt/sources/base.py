"""What every reader shares: the file handle it reads, where it reports, what it yields.

A reader turns one file into Arrow batches named after a table of the schema.
It never decides types (schema/normalize.py does) and never drops a record
without saying so: each problem goes to the file's report with its line or
record number.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath
from typing import IO, Any, Protocol

import pyarrow as pa

from exhunt.schema import SOURCE_RECORD, TableSchema, find_table, tables

#: How many individual problem messages a file's report keeps (counts are kept for all).
MAX_MESSAGES = 20
#: Rows per Arrow batch built by the Python readers.
BATCH_ROWS = 20_000


@dataclass
class Fault:
    """Where a stream stopped giving data, and why (see `Guarded`)."""

    offset: int
    message: str
    #: The skip reason of the rest of the file.
    reason: str = "rest of the file unreadable"


@dataclass
class SourceFile:
    """A file to read: on disk, or a member of an archive."""

    display: str
    opener: Callable[[], IO[bytes]]
    size: int
    name: str
    #: The file on disk, when it is one (never derived from `display`, which an archive's
    #: member names make up): only such a file may be read by path (DuckDB, a worker process).
    path: Path | None = None
    #: Why this input cannot be read at all (an unreadable folder, a FIFO); set by `walk`.
    problem: str | None = None
    #: Where its streams ended early (damaged or truncated archive member, bomb limit).
    faults: list[Fault] = field(default_factory=list)
    #: Problems that leave the data readable (a zip member's CRC mismatch).
    warnings: list[str] = field(default_factory=list)

    def open(self) -> IO[bytes]:
        return self.opener()

    def head(self, n: int = 65536) -> bytes:
        with self.open() as fh:
            return fh.read(n)

    @cached_property
    def magic(self) -> bytes:
        """The first 4 bytes (b"" when unreadable), read once: pooling and read-ahead both ask."""
        try:
            return self.head(4)
        except OSError:
            return b""


@dataclass
class FileReport:
    """Everything the run summary says about one file."""

    path: str
    format: str = "?"
    read: int = 0
    used: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    coerced: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    unknown_columns: set[str] = field(default_factory=set)
    damaged_chunks: int = 0
    error: str | None = None
    note: str | None = None

    @property
    def total_used(self) -> int:
        return sum(self.used.values())

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def message(self, text: str) -> None:
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(text)

    def skip(self, where: str, reason: str, detail: str = "", count: int = 1) -> None:
        """A record that will not reach any table: counted by reason, first few quoted."""
        self.skipped[reason] += count
        self.message(f"{self.path}:{where}: skipped: {reason}{': ' + detail if detail else ''}")

    def coerce(self, where: str, column: str, value: str) -> None:
        """A value that did not fit its column type: the row is kept, the value nulled."""
        self.coerced[column] += 1
        self.message(f"{self.path}:{where}: {column} value {shorten(value)!r} is not a valid "
                     f"{column} value; kept the row with {column} empty")


#: Longest value quoted whole in a message (a 5,000-digit number would fill the screen).
QUOTE_CHARS = 200


def shorten(value: str, limit: int = QUOTE_CHARS) -> str:
    """`value`, or its start and its length when longer than `limit`."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def printable(text: str) -> str:
    """A name chosen by whoever wrote the file (an archive member, a column) as inert text:
    control and bidi characters escaped, as every human-facing output shows them
    (exhunt.safetext, imported here only when needed: readers start without rich)."""
    from exhunt.safetext import shown

    return shown(text)


@dataclass
class Batch:
    """Rows for one table. Columns are named as the schema names them, any type."""

    table: str
    data: pa.RecordBatch | pa.Table


@dataclass
class Relation:
    """A file DuckDB reads itself: the table and the query reading it.

    For a text file DuckDB parses (CSV), `fallback` is set: the engine stores DuckDB's rows
    only when every one parsed and normalized cleanly and `physical_records()` (the
    records the file would hold if no value spanned lines; it may be slow, the engine runs
    it beside the parse) equals the rows parsed, so row i is on line `first_line + i`.
    Otherwise the rows come from `fallback(report)`, the reader's own batches, which
    name each problem exactly.
    """

    table: str
    sql: str
    fallback: Callable[[FileReport], Iterator[Batch]] | None = None
    physical_records: Callable[[], int] | None = None
    #: Whether any line is empty (see mde_csv.blank_lines); asked only when lines and rows differ.
    blank_lines: Callable[[], bool] | None = None
    first_line: int = 2
    #: For a file DuckDB reads itself (Parquet): the reader's batches, should DuckDB refuse
    #: the file (a damaged row group), so the readable parts are kept and the rest counted.
    recover: Callable[[FileReport], Iterator[Batch]] | None = None


class Reader(Protocol):
    """One input format. Modules in this package expose one as `READER`."""

    name: str
    description: str

    def sniff(self, src: SourceFile, head: bytes) -> int:
        """0 when the file is not this format; higher is more certain (100 = certain)."""

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        """Yield batches; `table` is the user's --table override, if any."""


# ---------------------------------------------------------------------------
# helpers shared by readers


def table_from_name(name: str) -> TableSchema | None:
    """`DeviceProcessEvents_2026-01-01.csv` -> DeviceProcessEvents (longest match wins)."""
    stem = PurePath(name).name.lower()
    best: TableSchema | None = None
    for t in tables().values():
        if stem.startswith(t.name.lower()) and (best is None or len(t.name) > len(best.name)):
            best = t
    if best is None:
        for t in sorted(tables().values(), key=lambda t: -len(t.name)):
            if re.search(rf"(^|[^a-z]){t.name.lower()}([^a-z]|$)", stem):
                return t
    return best


def table_from_columns(columns: list[str]) -> TableSchema | None:
    """Pick the table whose columns best explain the header (None when nothing fits).

    Each table scores the share of header columns it knows; columns that only one
    table has (RegistryKey, RemoteIP, RequestProtocol...) decide close calls.
    """
    cols = {c.lower() for c in columns}
    if not any(c in cols for c in ("timestamp", "timegenerated")):
        return None
    best: tuple[float, int, str] | None = None
    for t in tables().values():
        names = {n.lower() for n in t.names}
        known = len(cols & names)
        if known < 3:
            continue
        score = known / len(cols) - 0.001 * len(names - cols) / max(len(names), 1)
        key = (score, -len(names), t.name)
        if best is None or key > best:
            best = key
    return tables()[best[2]] if best else None


def resolve_table(
    override: str | None, category: str | None, name: str, columns: list[str]
) -> TableSchema | None:
    """The table for a file: --table, then a `category`, then the file name, then the header."""
    for candidate in (override, (category or "").removeprefix("AdvancedHunting-") or None):
        if candidate:
            t = find_table(candidate)
            if t is not None:
                return t
    return table_from_name(name) or table_from_columns(columns)


def flatten_value(value: Any) -> Any:
    """JSON objects and arrays become JSON text (dynamic columns are stored as text)."""
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            raise TooDeep from None
    return value


class TooDeep(ValueError):
    """A JSON value nested deeper than Python's parser and writer can follow."""

    def __init__(self) -> None:
        super().__init__(NESTED_TOO_DEEP)


#: The skip reason of a record nested too deep to read.
NESTED_TOO_DEEP = "nested too deep"


def _int(text: str) -> int | str:
    """A JSON integer; one too long for Python's int conversion (thousands of digits) stays
    text, so its record is kept and the column's type decides (a long column empties it)."""
    try:
        return int(text)
    except ValueError:
        return text


#: A JSON parser for attacker-controlled text: huge integers stay text (see `_int`).
DECODER = json.JSONDecoder(parse_int=_int)


def loads(text: str) -> Any:
    """`json.loads`, but a value nested too deep raises `TooDeep` (a ValueError), not
    RecursionError, and a 5,000-digit integer is kept as text instead of failing."""
    try:
        return DECODER.decode(text)
    except RecursionError:
        raise TooDeep from None


def raw_decode(text: str, pos: int) -> tuple[Any, int]:
    """`JSONDecoder.raw_decode` with the same guards as `loads`."""
    try:
        return DECODER.raw_decode(text, pos)
    except RecursionError:
        raise TooDeep from None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def value_end(text: str, pos: int) -> int | None:
    """The offset just past the JSON array or object starting at `pos`, found without
    recursion (so a 10,000-deep value can be stepped over); None if it never closes."""
    depth = 0
    for m in _TOKEN.finditer(text, pos):
        tok = m.group()
        if tok == "[" or tok == "{":
            depth += 1
        elif tok == "]" or tok == "}":
            depth -= 1
            if depth <= 0:
                return m.end()
    return None


class RowBuffer:
    """Collect dict rows per table and flush them as Arrow batches of bounded size.

    Values are stringified per column when types disagree between rows, so one
    odd record cannot make Arrow reject a whole batch; normalization re-types.
    """

    def __init__(self, rows_per_batch: int = BATCH_ROWS) -> None:
        self.rows_per_batch = rows_per_batch
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: str, row: dict[str, Any], where: str) -> Batch | None:
        row = {k: flatten_value(v) for k, v in row.items()}
        row[SOURCE_RECORD] = where
        bucket = self._rows.setdefault(table, [])
        bucket.append(row)
        if len(bucket) >= self.rows_per_batch:
            return self._flush(table)
        return None

    def _flush(self, table: str) -> Batch:
        rows = self._rows.pop(table)
        return Batch(table, rows_to_arrow(rows))

    def drain(self) -> Iterator[Batch]:
        for table in list(self._rows):
            if self._rows[table]:
                yield self._flush(table)


def rows_to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an Arrow table from dict rows; a column of mixed types becomes text."""
    names: dict[str, None] = {}
    for r in rows:
        for k in r:
            names.setdefault(k, None)
    arrays = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays)


#: A whole JSON document is parsed at once (API results are capped near 124 MB by Defender).
MAX_DOCUMENT = 2 << 30


def read_document(src: SourceFile, report: FileReport) -> str | None:
    """The file as text for a whole-document JSON parse; None (and the reason reported) when too big."""
    with src.open() as fh:
        raw = fh.read(MAX_DOCUMENT + 1)
    if len(raw) > MAX_DOCUMENT:
        report.error = f"JSON document larger than {MAX_DOCUMENT >> 20} MB; save it as JSON lines"
        return None
    return raw.decode("utf-8-sig", errors="replace")


def text_stream(fh: IO[bytes]) -> IO[str]:
    """UTF-8 text (BOM tolerated); undecodable bytes are replaced, not fatal."""
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")


# ---------------------------------------------------------------------------
# streams


#: A binary stream of any kind (a file, a decompressor, an archive member).
Stream = IO[bytes] | io.RawIOBase | io.BufferedIOBase


class RawReader(io.RawIOBase):
    """A readable raw stream: each subclass gives `_read(n)` (at most n bytes, b"" at the end)
    and `_seek(offset, whence)` (the new position); the position, buffer filling and closing
    of the underlying stream `_raw` (if any) are kept here once."""

    _raw: Stream | None = None
    _pos = 0

    def _read(self, n: int) -> bytes:
        raise NotImplementedError

    def _seek(self, offset: int, whence: int) -> int:
        raise io.UnsupportedOperation("seek")

    def _target(self, offset: int, whence: int, end: int) -> int:
        """Where `offset` from `whence` (start, position or `end`) lands, never before 0."""
        return max(0, {0: 0, 1: self._pos, 2: end}[whence] + offset)

    def readinto(self, b: Any) -> int:
        data = self._read(len(b))
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        try:
            if self._raw is not None:
                self._raw.close()
        finally:
            super().close()


class Guarded(RawReader):
    """A stream that ends where its data cannot be read, instead of raising.

    A damaged or truncated archive member, or a decompression stream past its bomb limit,
    would otherwise make the reader raise halfway and lose the records it had buffered.
    Ended here, the reader sees a shorter file: it keeps every record before the damage
    (a record cut in two is skipped as truncated) and the fault, with its byte offset, is
    put in the file's report (see readpool.iter_source).
    """

    _raw: Stream

    def __init__(self, raw: Stream, faults: list[Fault], errors: tuple[type[BaseException], ...],
                 limit: int | None = None, limit_reason: str = "") -> None:
        super().__init__()
        self._raw = raw
        self._faults = faults
        self._errors = errors
        self._limit = limit
        self._limit_reason = limit_reason
        self._pos = 0
        self._done = False

    def _fault(self, message: str, reason: str = Fault.reason) -> None:
        self._done = True
        if not any(f.offset == self._pos and f.message == message for f in self._faults):
            self._faults.append(Fault(self._pos, message, reason))

    def _read(self, n: int) -> bytes:
        if self._done or not n:
            return b""
        if self._limit is not None:
            if self._pos >= self._limit:
                # One byte more tells a stream that ends exactly at the limit from one that goes on.
                try:
                    more = self._raw.read(1)
                except self._errors as exc:
                    self._fault(describe(exc))
                    return b""
                if more:
                    self._fault(self._limit_reason, "rest of the file refused (decompression bomb limit)")
                else:
                    self._done = True
                return b""
            n = min(n, self._limit - self._pos)
        try:
            return self._raw.read(n)
        except self._errors as exc:
            self._fault(describe(exc))
            return b""

    def seekable(self) -> bool:
        return bool(self._raw.seekable())

    def _seek(self, offset: int, whence: int) -> int:
        try:
            pos = self._raw.seek(offset, whence)
        except self._errors as exc:
            raise OSError(describe(exc)) from None
        self._done = False
        return pos


def describe(exc: BaseException) -> str:
    """An exception as a short, inert message: its text (control characters escaped), else its type."""
    text = str(exc).strip()
    return printable(shorten(text)) if text else type(exc).__name__


def guarded(raw: Stream, faults: list[Fault], errors: tuple[type[BaseException], ...],
            limit: int | None = None, limit_reason: str = "") -> IO[bytes]:
    """`Guarded`, buffered (readers read lines and small blocks)."""
    return io.BufferedReader(Guarded(raw, faults, errors, limit, limit_reason), 1 << 16)


#: Byte-order marks of the UTF-16 text some export tools write (PowerShell's Export-Csv
#: -Encoding Unicode, Excel's "Unicode text"), and the codec reading each.
UTF16_BOMS = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}


def utf16_codec(head: bytes) -> str | None:
    """The codec of UTF-16 text with a byte-order mark, else None."""
    if head[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
        return None
    return UTF16_BOMS.get(head[:2])


class _Transcoded(RawReader):
    """UTF-16 text as UTF-8 bytes, decoded as it is read (BOM dropped; a broken code unit
    becomes U+FFFD, as the readers' own UTF-8 decoding does). Seeking re-reads from the start."""

    _raw: IO[bytes]

    def __init__(self, src: SourceFile, codec: str) -> None:
        super().__init__()
        self._src = src
        self._codec = codec
        self._start()

    def _start(self) -> None:
        self._raw = self._src.open()
        self._raw.read(2)  # the BOM
        self._decoder = codecs.getincrementaldecoder(self._codec)(errors="replace")
        self._pending = b""
        self._eof = False
        self._pos = 0

    def _read(self, n: int) -> bytes:
        while not self._pending and not self._eof:
            chunk = self._raw.read(1 << 16)
            self._eof = not chunk
            self._pending = self._decoder.decode(chunk, final=self._eof).encode("utf-8", "replace")
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def _seek(self, offset: int, whence: int) -> int:
        if whence != 0:
            raise OSError("a transcoded stream seeks from its start only")
        self._raw.close()
        self._start()
        while self._pos < offset:
            if not self.read(min(1 << 16, offset - self._pos)):
                break
        return self._pos


def transcoded(src: SourceFile, codec: str) -> SourceFile:
    """`src` as UTF-8: a UTF-16 CSV or JSON export is then read like any other."""
    def opener() -> IO[bytes]:
        return io.BufferedReader(_Transcoded(src, codec), 1 << 16)

    return SourceFile(src.display, opener, src.size, src.name, None, src.problem, src.faults, src.warnings)
