"""What the Windows-event readers share (not a format of its own).

Record iteration for JSON inputs (JSON lines, a JSON array, `evtx_dump`'s
"Record N" + pretty JSON, or concatenated documents), sniffing on the first
record, and the loop that sends each event through the shared mapping
(exhunt.winlog) and yields bounded Arrow batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from exhunt.sources.base import BATCH_ROWS, Batch, FileReport, SourceFile, rows_to_arrow, text_stream
from exhunt.winlog import Mapper, WinEvent

#: A JSON document that is not JSON lines is parsed whole; beyond this, ask for JSON lines.
MAX_DOCUMENT = 2 << 30
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
        obj, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    if isinstance(obj, dict):
        for wrapper in ("hits",):
            inner = obj.get(wrapper)
            if isinstance(inner, dict) and isinstance(inner.get("hits"), list) and inner["hits"]:
                first = inner["hits"][0]
                return first if isinstance(first, dict) else None
        return obj
    return None


def _is_json_lines(head: bytes) -> bool:
    text = head_text(head)
    if not text.startswith("{"):
        return False
    line = text.split("\n", 1)[0]
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def iter_records(src: SourceFile, report: FileReport) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record; bad lines and truncation are reported, never fatal."""
    if _is_json_lines(src.head()):
        with src.open() as fh:
            for lineno, line in enumerate(text_stream(fh), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    report.read += 1
                    report.skip(f"line {lineno}", "invalid JSON", str(exc).split(":")[0])
                    continue
                yield f"line {lineno}", rec
        return
    with src.open() as fh:
        raw = fh.read(MAX_DOCUMENT + 1)
    if len(raw) > MAX_DOCUMENT:
        report.error = f"JSON document larger than {MAX_DOCUMENT >> 20} MB; save it as JSON lines"
        return
    text = raw.decode("utf-8-sig", errors="replace")
    del raw
    yield from _documents(text, report)


def _documents(text: str, report: FileReport) -> Iterator[tuple[str, Any]]:
    dec = json.JSONDecoder()
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
            obj, pos = dec.raw_decode(text, pos)
        except ValueError as exc:
            line = text.count("\n", 0, pos) + 1
            report.read += 1
            report.damaged_chunks += 1
            report.skip(f"line {line}", "truncated or invalid JSON", str(exc).split(":")[0])
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
        convert = type(self).convert
        yield from map_events(
            ((where, convert(rec)) for where, rec in iter_records(src, report)), src, report, table, self.what)


def map_events(
    events: Iterator[tuple[str, WinEvent | None]], src: SourceFile, report: FileReport, table: str | None,
    what: str,
) -> Iterator[Batch]:
    """Send events through the shared mapping; yield a batch whenever a table has BATCH_ROWS rows."""
    mapper = Mapper(src.name)
    buckets: dict[str, list[dict[str, Any]]] = {}
    for where, ev in events:
        report.read += 1
        if ev is None:
            report.skip(where, f"not a {what} record")
            continue
        ev.where = where
        for name, row in mapper.map(ev):
            if table is not None and name != table:
                continue
            bucket = buckets.get(name)
            if bucket is None:
                bucket = buckets[name] = []
            bucket.append(row)
            if len(bucket) >= BATCH_ROWS:
                yield Batch(name, rows_to_arrow(buckets.pop(name)))
    for name, row in mapper.finish():
        if table is None or name == table:
            buckets.setdefault(name, []).append(row)
    for name, rows in buckets.items():
        if rows:
            yield Batch(name, rows_to_arrow(rows))
