"""The tables rules query, as data: column names and KQL types per table.

Column lists live in YAML files beside this module (one file per family of
tables), so adding a table or a column is a data change. Every table has a time
column: `Timestamp` for Defender tables (which also get `TimeGenerated` as an
alias so Sentinel-style rules run) or `TimeGenerated` for Log Analytics tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from exhunt import yamltext

#: KQL scalar type -> DuckDB column type. `dynamic` is kept as JSON text, which
#: is how Defender documents AdditionalFields and what `parse_json` reads.
KQL_TO_DUCKDB: dict[str, str] = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "real": "DOUBLE",
    "double": "DOUBLE",
    "dynamic": "VARCHAR",
    "guid": "VARCHAR",
    "timespan": "INTERVAL",
}

#: Hidden provenance columns carried on every stored row (never part of the
#: published schema): the file a row came from and where in it ("line 12").
SOURCE_FILE = "_source_file"
SOURCE_RECORD = "_record"
PROVENANCE = (SOURCE_FILE, SOURCE_RECORD)


@dataclass(frozen=True)
class Column:
    name: str
    kql_type: str

    @property
    def duckdb_type(self) -> str:
        return KQL_TO_DUCKDB[self.kql_type]


@dataclass(frozen=True)
class TableSchema:
    """One table's published columns, in documented order."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    _by_lower: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({c.name.lower(): c for c in self.columns})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def time_column(self) -> str:
        return "Timestamp" if "timestamp" in self._by_lower else "TimeGenerated"

    @property
    def aliases(self) -> dict[str, str]:
        """Extra query-time columns: alias -> stored column."""
        if self.time_column == "Timestamp" and "timegenerated" not in self._by_lower:
            return {"TimeGenerated": "Timestamp"}
        return {}

    def column(self, name: str) -> Column | None:
        """Case-insensitive lookup (exports sometimes change a column's case)."""
        return self._by_lower.get(name.lower())

    def has(self, name: str) -> bool:
        return name in self.aliases or any(c.name == name for c in self.columns)


def _load_file(path: Path) -> dict[str, TableSchema]:
    doc = yamltext.load(path.read_text(encoding="utf-8"))
    tables: dict[str, TableSchema] = {}
    for name, spec in (doc.get("tables") or {}).items():
        cols = spec.get("columns", spec) if isinstance(spec, dict) else {}
        description = spec.get("description", "") if isinstance(spec, dict) else ""
        columns = tuple(
            Column(str(c), str(t)) for c, t in cols.items() if c not in ("columns", "description")
        )
        for col in columns:
            if col.kql_type not in KQL_TO_DUCKDB:
                raise ValueError(f"{path}: {name}.{col.name}: unknown KQL type {col.kql_type!r}")
        tables[name] = TableSchema(name, columns, description)
    return tables


@cache
def tables() -> dict[str, TableSchema]:
    """Every known table, from every YAML file in this package folder."""
    found: dict[str, TableSchema] = {}
    for path in sorted(Path(__file__).parent.glob("*.yaml")):
        found.update(_load_file(path))
    return found


def table(name: str) -> TableSchema:
    try:
        return tables()[name]
    except KeyError:
        known = ", ".join(sorted(tables()))
        raise KeyError(f"unknown table {name!r}; known tables: {known}") from None


def find_table(name: str) -> TableSchema | None:
    """Case-insensitive table lookup, for names taken from file names or headers."""
    for t in tables().values():
        if t.name.lower() == name.lower():
            return t
    return None
