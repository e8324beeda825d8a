"""Record shapes shared by the JSON readers (not a format of its own)."""

from __future__ import annotations

from functools import cache
from typing import Any

from exhunt.schema import TableSchema, tables
from exhunt.sources.base import NESTED_TOO_DEEP, Batch, FileReport, RowBuffer, TooDeep, printable, resolve_table


def row_of_record(rec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(table hint, row) for one JSON record.

    A Streaming API record wraps the row in `properties` and names the table in
    `category` ("AdvancedHunting-DeviceFileEvents"); a Sentinel export row names
    it in `Type`; anything else is the row itself.
    """
    props = rec.get("properties")
    category = rec.get("category")
    if isinstance(props, dict) and isinstance(category, str):
        return category, props
    typ = rec.get("Type")
    return (typ if isinstance(typ, str) else None), rec


@cache
def foreign_columns(table: str) -> frozenset[str]:
    """Columns some other table has and `table` does not (lower-case)."""
    own = {c.lower() for c in tables()[table].names}
    others = {c.lower() for t in tables().values() if t.name != table for c in t.names}
    return frozenset(others - own)


def drop_union_leftovers(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """Drop empty cells of columns that belong to another table.

    A union result (Log Analytics API, a mixed export) gives every row every
    leg's columns, mostly null; those are not new columns of this row's table.
    A column no table knows is kept even when empty: Defender may have added it.
    """
    foreign = foreign_columns(table)
    return {k: v for k, v in row.items() if not (v is None or v == "") or k.lower() not in foreign}


class Router:
    """Each JSON record's table: --table, else its `category`/`Type`, else the file's guess.

    The file's guess (file name, then the first record's columns) is made once and
    reused, so a file of plain rows is routed the same way from its first line to its last.
    """

    def __init__(self, override: str | None, file_name: str) -> None:
        self.override = override
        self.file_name = file_name
        self._default: TableSchema | None = None

    def route(self, rec: dict[str, Any]) -> tuple[TableSchema | None, dict[str, Any]]:
        category, row = row_of_record(rec)
        target = resolve_table(self.override, category, "", []) if (self.override or category) else None
        if target is None:
            if self._default is None:
                self._default = resolve_table(None, None, self.file_name, list(row))
            target = self._default
        return target, (drop_union_leftovers(target.name, row) if target else row)

    def add(self, rec: Any, where: str, buf: RowBuffer, report: FileReport,
            name_columns: bool = False) -> Batch | None:
        """Route one record into `buf` (a full batch is returned); a record that is not an
        object, matches no table (`name_columns`: its first keys are named) or nests too
        deep is skipped, named by `where`, so each JSON reader reports it the same way."""
        if not isinstance(rec, dict):
            report.skip(where, "record is not a JSON object")
            return None
        try:
            target, row = self.route(rec)
            if target is None:
                detail = ", ".join(printable(str(k)) for k in list(row)[:5]) if name_columns else ""
                report.skip(where, "no table matches the record's columns", detail)
                return None
            return buf.add(target.name, row, where)
        except TooDeep:
            report.skip(where, NESTED_TOO_DEEP)
            return None
