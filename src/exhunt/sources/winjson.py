"""What the Windows-event readers share (not a format of its own).

Record iteration for JSON inputs (JSON lines, a JSON array, `evtx_dump`'s
"Record N" + pretty JSON, or concatenated documents), sniffing on the first
record, and the loop that sends each event through the shared mapping
(exhunt.winlog) and yields bounded Arrow batches. JSON lines of the forms DuckDB
maps (a reader's `form`: evtx, ecs, otrf) skip that loop: their text goes to DuckDB
(exhunt.winlog.sql.raw_lines).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
import pyarrow as pa

from exhunt.schema import SOURCE_RECORD, tables
from exhunt.sources.base import (
    BATCH_ROWS,
    NESTED_TOO_DEEP,
    Batch,
    FileReport,
    SourceFile,
    TooDeep,
    loads,
    raw_decode,
    read_document,
    shorten,
    text_stream,
    value_end,
)
from exhunt.winlog import Mapper, WinEvent

_RECORD_HEADER = re.compile(r"Record \d+\s*")
_SKIP = " \t\r\n,"


def head_text(head: bytes) -> str:
    return head.decode("utf-8-sig", errors="replace").lstrip()


def first_record(head: bytes) -> dict[str, Any] | None:
    """The first JSON object of the file, when the sniffed bytes hold it whole."""
    text = head_text(head)
    m = _RECORD_HEADER.match(text)
    if m:
        text = text[m.end():]
    if text.startswith("["):
        text = text[1:].lstrip()
    if not text.startswith("{"):
        return None
    try:
        obj, _ = raw_decode(text, 0)
    except ValueError:  # incomplete in the sniffed bytes, invalid, or nested too deep
        return None
    if isinstance(obj, dict):
        for wrapper in ("hits",):
            inner = obj.get(wrapper)
            if isinstance(inner, dict) and isinstance(inner.get("hits"), list) and inner["hits"]:
                first = inner["hits"][0]
                return first if isinstance(first, dict) else None
        return obj
    return None


def is_json_lines(head: bytes) -> bool:
    text = head_text(head)
    if not text.startswith("{"):
        return False
    line = text.split("\n", 1)[0]
    try:
        return isinstance(loads(line), dict)
    except TooDeep:
        return True  # a whole object on the line, too deep to read: the reader skips it
    except ValueError:
        return False


def iter_records(src: SourceFile, report: FileReport) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record; bad lines and truncation are reported, never fatal."""
    if is_json_lines(src.head()):
        fast = orjson.loads
        with src.open() as fh:
            for lineno, line in enumerate(text_stream(fh), 1):
                if not line.strip():
                    continue
                try:
                    rec = fast(line)
                except ValueError:
                    try:  # what orjson refuses but Python reads (NaN, huge integers), or a clear message
                        rec = loads(line)
                    except TooDeep:
                        report.read += 1
                        report.skip(f"line {lineno}", NESTED_TOO_DEEP)
                        continue
                    except ValueError as exc:
                        report.read += 1
                        report.skip(f"line {lineno}", "invalid JSON", shorten(str(exc).split(":")[0]))
                        continue
                yield f"line {lineno}", rec
        return
    text = read_document(src, report)
    if text is not None:
        yield from _documents(text, report)


def _documents(text: str, report: FileReport) -> Iterator[tuple[str, Any]]:
    pos = 0
    n = 0
    stripped = text.lstrip()
    if stripped.startswith("["):
        pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in _SKIP:
            pos += 1
        m = _RECORD_HEADER.match(text, pos)
        if m:
            pos = m.end()
            continue
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            obj, pos = raw_decode(text, pos)
        except TooDeep:
            end = value_end(text, pos) if text[pos] in "[{" else None
            if end is not None:  # stepped over: the next document is read
                n += 1
                report.read += 1
                report.skip(f"record {n} (line {text.count(chr(10), 0, pos) + 1})", NESTED_TOO_DEEP)
                pos = end
                continue
            line = text.count("\n", 0, pos) + 1
            report.read += 1
            report.damaged_chunks += 1
            report.skip(f"line {line}", NESTED_TOO_DEEP, "and never closed")
            return
        except ValueError as exc:
            line = text.count("\n", 0, pos) + 1
            report.read += 1
            report.damaged_chunks += 1
            report.skip(f"line {line}", "truncated or invalid JSON", shorten(str(exc).split(":")[0]))
            nxt = min((i for i in (text.find("\n{", pos + 1), text.find("\nRecord ", pos + 1)) if i >= 0),
                      default=-1)
            if nxt < 0:
                return
            pos = nxt + 1
            continue
        for item in _unwrap(obj):
            n += 1
            yield f"record {n}", item


def _unwrap(obj: Any) -> list[Any]:
    """Elasticsearch search results hold their documents in hits.hits."""
    if isinstance(obj, dict):
        hits = obj.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            return list(hits["hits"])
    if isinstance(obj, list):
        return obj
    return [obj]


class WinJsonReader:
    """A JSON form of Windows events: subclasses say how to recognise and convert a record."""

    name = "?"
    description = "?"
    #: What one record of this form is called in skip messages.
    what = "Windows event"
    score = 90
    convert: Callable[[Any], WinEvent | None]
    #: The form DuckDB reads JSON lines of (exhunt/schema/windows/events-<form>.sql); None: Python reads them.
    form: str | None = None

    def matches(self, rec: dict[str, Any]) -> bool:
        raise NotImplementedError

    def sniff_text(self, text: str) -> bool:
        """Fallback when the first record is longer than the sniffed bytes."""
        return False

    def sniff(self, src: SourceFile, head: bytes) -> int:
        rec = first_record(head)
        if rec is not None:
            return self.score if self.matches(rec) else 0
        text = head_text(head)
        return self.score - 10 if text[:1] in ("{", "[", "R") and self.sniff_text(text) else 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        """JSON lines of a form DuckDB reads (`form`) go there as text, mapped like .evtx records
        (exhunt.winlog.sql); the document forms (an array, pretty-printed JSON) through Python."""
        if self.form is not None and is_json_lines(src.head()):
            from exhunt.winlog.sql import raw_lines

            yield from raw_lines(src, report, self.what, self.form)
            return
        yield from map_events(self._events(src, report), src, report, table, self.what)

    def _events(self, src: SourceFile, report: FileReport) -> Iterator[tuple[str, WinEvent | TooDeep | None]]:
        convert = type(self).convert
        for where, rec in iter_records(src, report):
            try:
                yield where, convert(rec)
            except (TooDeep, RecursionError):
                yield where, TooDeep()


#: Rows per table held in Python before they become one Arrow batch.
WIN_BATCH_ROWS = BATCH_ROWS
#: Arrow types given to the columns of the mapped rows, from the schema's KQL types. Times
#: stay text (the normalizer parses them); a column whose values do not fit falls back to
#: Arrow's own inference, then to text, as `rows_to_arrow` does.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "dynamic": pa.string(), "guid": pa.string(), "datetime": pa.string(),
    "long": pa.int64(), "int": pa.int64(), "bool": pa.bool_(), "real": pa.float64(), "double": pa.float64(),
}


_INT = pa.int64()


@cache
def _layout(table: str) -> tuple[dict[str, pa.DataType | None], frozenset[str]]:
    """Column order and types of a table's batches: the schema's columns, then provenance."""
    known: dict[str, pa.DataType | None] = {}
    t = tables().get(table)
    if t is not None:
        for col in t.columns:
            known[col.name] = _ARROW_TYPES.get(col.kql_type)
    known[SOURCE_RECORD] = pa.string()
    return known, frozenset(known)


def _array(values: Sequence[Any], typ: pa.DataType | None) -> pa.Array:
    # An integer column takes no floats (Arrow would truncate them where inference keeps them).
    if typ is not None and (typ != _INT or float not in set(map(type, values))):
        try:
            return pa.array(values, typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def rows_to_batch(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Mapped rows -> one Arrow table with a stable layout.

    Columns come in schema order with typed arrays, so consecutive batches of a table
    have the same Arrow schema (the engine merges and plans them once) and pyarrow
    skips its per-array type inference. Columns no row has are left out (the
    normalizer fills them); columns the schema does not know follow in first-seen order.
    """
    known, names = _layout(table)
    present: set[str] = set().union(*rows)
    order = [n for n in known if n in present]
    if len(order) < len(present):
        order += [n for n in dict.fromkeys(chain.from_iterable(rows)) if n not in names]
    if not order:
        return pa.table({})
    # Row by row (each row dict is visited once, while it is in cache), then transposed.
    if min(map(len, rows)) == len(order):  # every row has every column
        cols = zip(*map(itemgetter(*order), rows), strict=True) if len(order) > 1 else \
            [tuple(r[order[0]] for r in rows)]
    else:
        cols = zip(*[tuple(map(r.get, order)) for r in rows], strict=True)
    return pa.table({name: _array(col, known.get(name)) for name, col in zip(order, cols, strict=True)})


def map_events(
    events: Iterator[tuple[str, WinEvent | TooDeep | None]], src: SourceFile, report: FileReport,
    table: str | None, what: str,
) -> Iterator[Batch]:
    """Send events through the shared mapping; yield a batch whenever a table has WIN_BATCH_ROWS rows.

    An event is a WinEvent, None (a record of another kind) or TooDeep (nested too deep to convert)."""
    mapper = Mapper(src.name)
    buckets: dict[str, list[dict[str, Any]]] = {}
    limit = WIN_BATCH_ROWS
    for where, ev in events:
        report.read += 1
        if ev is None:
            report.skip(where, f"not a {what} record")
            continue
        if isinstance(ev, TooDeep):
            report.skip(where, NESTED_TOO_DEEP)
            continue
        ev.where = where
        try:
            mapped = list(mapper.map(ev))
        except RecursionError:
            report.skip(where, NESTED_TOO_DEEP)
            continue
        for name, row in mapped:
            bucket = buckets.get(name)
            if bucket is None:
                if table is not None and name != table:
                    continue
                bucket = buckets[name] = []
            bucket.append(row)
            if len(bucket) >= limit:
                yield Batch(name, rows_to_batch(name, buckets.pop(name)))
    for name, row in mapper.finish():
        if table is None or name == table:
            buckets.setdefault(name, []).append(row)
    for name, rows in buckets.items():
        if rows:
            yield Batch(name, rows_to_batch(name, rows))
