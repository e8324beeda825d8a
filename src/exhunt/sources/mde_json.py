"""Defender results saved as one JSON document.

Shapes recognised (keys matched case-insensitively):
- Advanced Hunting API / Defender XDR API: `{"Schema": [...], "Results": [...]}` (XDR adds `Stats`);
- Microsoft Graph runHuntingQuery: `{"schema": [...], "results": [...]}`;
- Log Analytics query API: `{"tables": [{"columns": [...], "rows": [[...]]}]}`;
- Streaming API to Event Hub: `{"records": [{"category": "AdvancedHunting-...", "properties": {...}}]}`;
- a bare JSON array of row objects.
A truncated document keeps every record that was complete before the cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from exhunt.sources.base import (
    NESTED_TOO_DEEP,
    Batch,
    FileReport,
    RowBuffer,
    SourceFile,
    TooDeep,
    loads,
    raw_decode,
    read_document,
    resolve_table,
    value_end,
)
from exhunt.sources.records import Router, drop_union_leftovers


def _keys(head: bytes) -> str:
    # The whole sniff window: an indented `Schema` of a wide table pushes `Results` past 4 KB.
    return head.decode("utf-8", errors="replace").lower()


def _get(obj: dict[str, Any], key: str) -> Any:
    for k, v in obj.items():
        if k.lower() == key:
            return v
    return None


class _Unreadable:
    """A record of the document that could not be parsed (counted and skipped in its place)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason


def _salvage(text: str) -> tuple[list[Any], bool]:
    """Records of the rows array, one by one: a record nested too deep is stepped over and
    marked, a cut or invalid one ends the list. (records, whether the array was complete)."""
    start = text.find("[", text.find("{") + 1 if text.lstrip().startswith("{") else 0)
    if text.lstrip().startswith("{"):
        # The rows are under Results/records/rows, not in the first array (`Schema` comes first).
        m = re.search(r'"(?:results|records)"\s*:\s*\[', text, re.IGNORECASE)
        if m:
            start = m.end() - 1
    items: list[Any] = []
    if start < 0:
        return items, False
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \r\n\t,":
            pos += 1
        if pos >= len(text):
            return items, False
        if text[pos] == "]":
            return items, True
        try:
            obj, pos = raw_decode(text, pos)
        except TooDeep:
            end = value_end(text, pos)
            if end is None:
                return items, False
            items.append(_Unreadable(f"line {_line_of(text, pos)}", NESTED_TOO_DEEP))
            pos = end
            continue
        except ValueError:
            return items, False
        items.append(obj)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


class MdeJson:
    name = "mde-json"
    description = "Advanced Hunting / Graph / Log Analytics API JSON, Event Hub messages, JSON arrays"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        text = head.lstrip(b"\xef\xbb\xbf \r\n\t")
        if text[:1] == b"{":
            k = _keys(text)
            if '"results"' in k or '"tables"' in k or ('"schema"' in k and '"name"' in k):
                return 90
            if '"records"' in k and "advancedhunting-" in k:
                return 90
            return 0
        if text[:1] == b"[":
            k = _keys(text)
            if '"timestamp"' in k or '"timegenerated"' in k:
                return 60
        return 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        text = read_document(src, report)
        if text is None:
            return
        try:
            doc: Any = loads(text)
        except ValueError as exc:  # cut, invalid, or a record nested too deep: record by record
            items, complete = _salvage(text)
            if not complete:
                report.read += 1
                where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "end"
                detail = (f"{exc.msg} (column {exc.colno}); " if isinstance(exc, json.JSONDecodeError) else "")
                kept = sum(not isinstance(i, _Unreadable) for i in items)
                report.skip(where, "truncated or invalid JSON",
                            f"{detail}kept the {kept} complete records before it")
                report.damaged_chunks += 1
            doc = items
            if not items:
                return
        yield from self._rows(doc, src, report, table)

    def _rows(self, doc: Any, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        buf = RowBuffer()
        rows: list[Any]
        if isinstance(doc, dict):
            tables = _get(doc, "tables")
            records = _get(doc, "records")
            if isinstance(tables, list):
                yield from self._log_analytics(tables, src, report, table)
                return
            rows = records if isinstance(records, list) else _get(doc, "results") or []
        elif isinstance(doc, list):
            rows = doc
        else:
            report.error = "JSON is not a list of records nor a known API response"
            return
        if not isinstance(rows, list):
            report.error = "JSON `Results` is not a list"
            return
        router = Router(table, src.name)
        for i, rec in enumerate(rows, 1):
            report.read += 1
            where = f"record {i}"
            if isinstance(rec, _Unreadable):
                report.skip(f"{where} ({rec.where})", rec.reason)
                continue
            out = router.add(rec, where, buf, report)
            if out is not None:
                yield out
        yield from buf.drain()

    def _log_analytics(
        self, tables: list[Any], src: SourceFile, report: FileReport, table: str | None
    ) -> Iterator[Batch]:
        buf = RowBuffer()
        for t in tables:
            cols = [str(_get(c, "name")) for c in (_get(t, "columns") or []) if isinstance(c, dict)]
            target = resolve_table(table, None, src.name, cols)
            for i, values in enumerate(_get(t, "rows") or [], 1):
                report.read += 1
                where = f"record {i}"
                if not isinstance(values, list) or len(values) != len(cols):
                    report.skip(where, "row does not match the column list")
                    continue
                row = dict(zip(cols, values, strict=True))
                typ = row.get("Type")
                tgt = resolve_table(None, str(typ), "", []) if typ else target
                if tgt is None:
                    report.skip(where, "no table matches the record's columns")
                    continue
                try:
                    out = buf.add(tgt.name, drop_union_leftovers(tgt.name, row), where)
                except TooDeep:
                    report.skip(where, NESTED_TOO_DEEP)
                    continue
                if out is not None:
                    yield out
        yield from buf.drain()


READER = MdeJson()
