"""What every reader shares: the file handle it reads, where it reports, what it yields.

A reader turns one file into Arrow batches named after a table of the schema.
It never decides types (schema/normalize.py does) and never drops a record
without saying so: each problem goes to the file's report with its line or
record number.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import IO, Any, Protocol

import pyarrow as pa

from exhunt.schema import SOURCE_RECORD, TableSchema, find_table, tables

#: How many individual problem messages a file's report keeps (counts are kept for all).
MAX_MESSAGES = 20
#: Rows per Arrow batch built by the Python readers.
BATCH_ROWS = 20_000


@dataclass
class SourceFile:
    """A file to read: on disk, or a member of an archive."""

    display: str
    opener: Callable[[], IO[bytes]]
    size: int
    name: str

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
        self.message(f"{self.path}:{where}: {column} value {value!r} is not a valid "
                     f"{column} value; kept the row with {column} empty")


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
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


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
