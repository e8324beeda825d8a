"""Defender Advanced Hunting results saved as CSV (portal export, or any tool's CSV).

The header names the columns; the table comes from --table, the file name
(`DeviceFileEvents*.csv`) or the header. Parsing is Arrow's streaming CSV reader,
so a large export never sits whole in memory.

Every row carries the physical line it starts on ("line 4"), which a quoted
value spanning lines (PowerShell command lines do) must not throw off: newlines
inside values are counted per batch. Arrow cannot say where a malformed line is
when values may span lines, so at the first one the reader stops using Arrow
and reads the rest of the file with Python's csv module, which knows its line
numbers: slower, but only damaged files pay for it.

A large export on disk is first offered to DuckDB's parallel CSV reader (`relation`),
several times faster than Arrow's one streaming thread. Its rows are kept only when
the file parsed without an error and no value spans lines, so row i is line i + 2;
anything else is read again by the path above (see `Relation`).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from exhunt.schema import SOURCE_RECORD, find_table
from exhunt.sources.base import (
    BATCH_ROWS,
    MAX_MESSAGES,
    Batch,
    FileReport,
    Relation,
    SourceFile,
    printable,
    resolve_table,
    text_stream,
)
from exhunt.sources.records import foreign_columns
from exhunt.sqltext import literal

#: Log Analytics' portal CSV export suffixes time columns with their zone ("TimeGenerated [UTC]").
_ZONE_SUFFIX = " [UTC]"
#: Bytes per Arrow parse block (tests shrink it to cover batch edges).
BLOCK_SIZE = 8 << 20
#: Files this large are offered to DuckDB's parallel reader first (tests lower it).
DUCKDB_MIN_BYTES = 16 << 20
#: DuckDB's read buffer (None: its default); tests shrink it to split a small file across threads.
DUCKDB_BUFFER_BYTES: int | None = None


def _header(head: bytes) -> list[str]:
    text = head.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    try:
        return next(csv.reader([first]))
    except (StopIteration, csv.Error):
        return []


def _columns(head: bytes) -> list[str]:
    """The header's column names, zone suffixes removed."""
    return [_column_name(c) for c in _header(head)]


def unique_columns(names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Header names made unique (case-insensitively, as DuckDB compares them): a repeated
    name keeps its first column under the name and the next ones as `Name_2`, `Name_3`...
    Returns the names and the (repeated name, new name) pairs, so nothing is dropped unsaid."""
    taken = {n.lower() for n in names}
    seen: set[str] = set()
    out: list[str] = []
    renamed: list[tuple[str, str]] = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
            continue
        k = 2
        while f"{name}_{k}".lower() in taken:
            k += 1
        new = f"{name}_{k}"
        taken.add(new.lower())
        seen.add(new.lower())
        out.append(new)
        renamed.append((name, new))
    return out, renamed


def _column_name(raw: str) -> str:
    """A header name, zone suffix removed, control characters escaped (a NUL or escape
    sequence in a name is shown as text, and DuckDB cannot bind a name holding a NUL)."""
    name = printable(raw.strip())
    return name[: -len(_ZONE_SUFFIX)] if name.endswith(_ZONE_SUFFIX) else name


def _line_labels(first: int, rb: pa.RecordBatch) -> tuple[pa.Array, int]:
    """`line N` for each row of a batch starting at physical line `first`, and the next free line."""
    n = rb.num_rows
    starts: pa.Array = pa.array(range(first, first + n), pa.int64())
    extra: pa.Array | None = None
    for col in rb.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            counts = pc.count_substring(col, "\n")
            if pc.max(counts).as_py():
                counts = counts.cast(pa.int64()).fill_null(0)
                extra = counts if extra is None else pc.add(extra, counts)
    following = first + n
    if extra is not None and n:
        before = pc.subtract(pc.cumulative_sum(extra), extra)
        starts = pc.add(starts, before)
        following = starts[-1].as_py() + extra[-1].as_py() + 1
    labels = pc.binary_join_element_wise("line", starts.cast(pa.string()), " ")
    return labels, following


def _seek_line(fh: IO[bytes], line: int) -> None:
    """Position `fh` at the start of physical line `line` (1-based), counting LF bytes."""
    fh.seek(0)
    to_skip = line - 1
    offset = 0
    while to_skip > 0:
        chunk = fh.read(1 << 20)
        if not chunk:
            break
        n = chunk.count(b"\n")
        if n < to_skip:
            to_skip -= n
            offset += len(chunk)
            continue
        pos = -1
        for _ in range(to_skip):
            pos = chunk.index(b"\n", pos + 1)
        offset += pos + 1
        to_skip = 0
    fh.seek(offset)


def _trim(table: str, data: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """Drop columns of other tables that are empty in every row (a union export's leftovers)."""
    foreign = foreign_columns(table)
    drop = [name for name in data.schema.names if name.lower() in foreign
            and not pc.any(pc.not_equal(data.column(name), "")).as_py()]
    return data.drop_columns(drop) if drop else data


def physical_records(path: Path) -> int:
    """Records after the header if no value spanned lines: newlines, plus an unterminated last line."""
    count = 0
    last = b"\n"
    buf = bytearray(16 << 20)
    with path.open("rb", buffering=0) as fh:
        while k := fh.readinto(buf):
            count += buf.count(b"\n", 0, k)
            last = bytes(buf[k - 1:k])
    return count - 1 + (last != b"\n")


def blank_lines(path: Path) -> bool:
    """Whether any line is empty (DuckDB skips such lines; the reader counts them): slower than
    counting lines, so only asked when the lines and rows differ. True also for an empty line
    inside a quoted value, which only sends the file to the reader."""
    buf = bytearray(16 << 20)
    tail = b""
    with path.open("rb", buffering=0) as fh:
        while k := fh.readinto(buf):
            chunk = tail + bytes(buf[:k])
            if chunk.find(b"\n\n") >= 0 or chunk.find(b"\n\r\n") >= 0:
                return True
            tail = chunk[-2:]
    return False


def _route(batch: Batch, default: str | None, by_type: bool, report: FileReport) -> Iterator[Batch]:
    """Split a batch by its `Type` column when it has one, else pass it to its table."""
    data = batch.data
    if not by_type:
        yield Batch(batch.table, _trim(batch.table, data))
        return
    types = data.column("Type")
    for value in pc.unique(types).to_pylist():
        part = data.filter(pc.equal(types, value))
        target = find_table(str(value)) if value else None
        name = target.name if target else default
        if name is None:
            for where in part.column(SOURCE_RECORD).to_pylist()[:MAX_MESSAGES]:
                report.skip(where, "no table matches the record's columns", f"Type {value!r}")
            report.skipped["no table matches the record's columns"] += max(0, part.num_rows - MAX_MESSAGES)
            continue
        yield Batch(name, _trim(name, part))


class MdeCsv:
    name = "mde-csv"
    description = "Advanced Hunting results as CSV (header of column names)"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        stripped = head.lstrip(b"\xef\xbb\xbf \r\n\t")
        if not stripped or stripped[:1] in (b"{", b"["):
            return 0
        cols = [c.lower() for c in _columns(head)]
        if len(cols) >= 2 and ("timestamp" in cols or "timegenerated" in cols):
            return 80
        return 10 if src.name.lower().endswith(".csv") else 0

    def relation(self, src: SourceFile, report: FileReport, table: str | None) -> Relation | None:
        """DuckDB's parallel reader over a large, plainly shaped export on disk, else None."""
        path = src.path
        if src.size < DUCKDB_MIN_BYTES or path is None or not path.is_file():
            return None
        head = src.head()
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return None  # UTF-16: Arrow's path decodes it
        header = _columns(head)
        lower = [h.lower() for h in header]
        if (not header or "" in lower or len(set(lower)) != len(lower) or "type" in lower
                or any(h.startswith("_") for h in lower)):
            return None  # unnamed, repeated or routing columns: Arrow's path handles them
        schema = resolve_table(table, None, src.name, header)
        if schema is None or any(h in foreign_columns(schema.name) for h in lower):
            return None  # a union export's leftovers: Arrow's path drops the empty ones
        columns = ", ".join(f"{literal(h)}: 'VARCHAR'" for h in header)
        names = ", ".join(literal(h) for h in header)
        sql = (f"SELECT * FROM read_csv({literal(str(path))}, header = true, auto_detect = false, "
               f"delim = ',', quote = '\"', escape = '\"', columns = {{{columns}}}, "
               f"force_not_null = [{names}], strict_mode = true, null_padding = false, encoding = 'utf-8'"
               + (f", buffer_size = {DUCKDB_BUFFER_BYTES}, max_line_size = {DUCKDB_BUFFER_BYTES}"
                  if DUCKDB_BUFFER_BYTES else "") + ")")
        return Relation(schema.name, sql, fallback=lambda rep: self.read(src, rep, table),
                        physical_records=lambda: physical_records(path), blank_lines=lambda: blank_lines(path))

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        header, renamed = unique_columns(_columns(src.head()))
        for old, new in renamed:
            report.message(f"{report.path}:line 1: column {printable(old)!r} appears more than once; "
                           f"both kept, the later one as {printable(new)!r}")
        if renamed:
            report.note = "repeated column(s) kept as " + ", ".join(printable(new) for _, new in renamed)
        schema = resolve_table(table, None, src.name, header)
        # A Log Analytics export names each row's table in `Type` (a union mixes tables).
        by_type = table is None and "Type" in header
        if schema is None and not by_type:
            report.error = (
                "not Defender telemetry: no table named by --table or the file name, and the "
                f"header ({', '.join(header[:6])}{'...' if len(header) > 6 else ''}) matches no table"
            )
            return
        default = schema.name if schema else None
        state = {"line": 2}  # line 1 is the header
        try:
            for batch in self._fast(src, report, default or "", header, state):
                yield from _route(batch, default, by_type, report)
            return
        except pa.ArrowInvalid:
            pass
        for batch in self._slow(src, report, default or "", header, state["line"]):
            yield from _route(batch, default, by_type, report)

    def _fast(
        self, src: SourceFile, report: FileReport, table: str, header: list[str], state: dict[str, int],
    ) -> Iterator[Batch]:
        # A malformed line makes Arrow raise ArrowInvalid (read() then resumes with the slow
        # reader). Not an invalid_row_handler: pyarrow decodes the bad line's bytes as UTF-8
        # before calling it, and on invalid UTF-8 prints a traceback to stderr instead.
        with src.open() as fh:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, encoding="utf8", skip_rows=1,
                                               column_names=header),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            for rb in reader:
                # A bad line found while parsing this batch (or a later one read ahead) lies after
                # every row yielded so far, so the slow reader can resume at state["line"].
                labels, following = _line_labels(state["line"], rb)
                report.read += rb.num_rows
                yield Batch(table, rb.append_column(SOURCE_RECORD, labels))
                state["line"] = following

    def _slow(self, src: SourceFile, report: FileReport, table: str, header: list[str], first: int) -> Iterator[Batch]:
        csv.field_size_limit(min(sys.maxsize, 1 << 30))
        width = len(header)
        rows: list[list[str]] = []
        where: list[str] = []

        def flush() -> Batch:
            cols: dict[str, Any] = {name: pa.array([r[i] for r in rows], pa.string())
                                    for i, name in enumerate(header)}
            cols[SOURCE_RECORD] = pa.array(where, pa.string())
            batch = Batch(table, pa.table(cols))
            rows.clear()
            where.clear()
            return batch

        with src.open() as fh:
            _seek_line(fh, first)
            reader = csv.reader(text_stream(fh))
            line = first
            while True:
                start = line
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    line = first + reader.line_num
                    report.read += 1
                    report.skip(f"line {start}", "malformed CSV line", str(exc))
                    continue
                line = first + reader.line_num
                if not record or record == [""]:
                    continue  # a blank line is not a record
                report.read += 1
                if len(record) != width:
                    report.skip(f"line {start}", "malformed CSV line",
                                f"expected {width} fields, found {len(record)}")
                    continue
                rows.append(record)
                where.append(f"line {start}")
                if len(rows) >= BATCH_ROWS:
                    yield flush()
        if rows:
            yield flush()


READER = MdeCsv()
