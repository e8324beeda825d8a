"""Turn rows of any shape into rows of a table's schema, in DuckDB.

Readers hand over Arrow batches whose columns are named like the schema but
typed however the file typed them (often all text). One SQL statement per batch
renames columns case-insensitively, casts each to its KQL type, fills absent
columns with typed nulls (empty string for `string`: KQL strings have no null),
keeps columns the schema does not know (Defender adds columns over time), and
flags every value that would not cast so the run summary can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from exhunt.schema import PROVENANCE, TableSchema
from exhunt.sqltext import ident as _q

#: Column the statement adds: names of the columns whose value did not cast.
BAD = "_bad"
#: The raw time text, kept so a skipped row's message can quote it.
RAW_TIME = "_raw_time"
#: Hidden input column of a batch coalesced from several files (the file's index); passed through.
PART = "_exhunt_part"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_null(t):
        return "NULL"
    return "OTHER"


@dataclass
class Plan:
    """The SQL for one input shape, plus what the run summary needs to know."""

    sql: str
    unknown_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    time_source: str | None = None


def plan(schema: TableSchema, input_schema: pa.Schema, relation: str) -> Plan:
    """Build the normalizing SELECT over `relation` (a view of the batch)."""
    inputs = {f.name.lower(): f for f in input_schema}
    time_col = schema.time_column
    exprs: list[str] = []
    checks: list[str] = []
    used: set[str] = set()
    raw_time = "NULL"
    time_source: str | None = None
    for col in schema.columns:
        src = inputs.get(col.name.lower())
        if src is None and col.name == time_col:
            # Sentinel exports of Defender tables carry TimeGenerated; take it as Timestamp.
            src = inputs.get("timegenerated") or inputs.get("timestamp")
        if src is None:
            null = "''" if col.duckdb_type == "VARCHAR" else f"CAST(NULL AS {col.duckdb_type})"
            exprs.append(f"{null} AS {_q(col.name)}")
            continue
        used.add(src.name.lower())
        ref = _q(src.name)
        kind = _duck_type(src.type)
        target = col.duckdb_type
        if target == "VARCHAR":
            if kind in ("VARCHAR", "NULL"):
                expr = f"COALESCE(CAST({ref} AS VARCHAR), '')"
            else:
                expr = f"COALESCE(CAST({ref} AS VARCHAR), '')"
            exprs.append(f"{expr} AS {_q(col.name)}")
            continue
        if kind == target:
            expr = ref
        elif target == "TIMESTAMP" and kind == "TIMESTAMPTZ":
            expr = f"CAST({ref} AS TIMESTAMP)"
        elif kind == "VARCHAR" or kind == "OTHER":
            text = f"NULLIF(trim(CAST({ref} AS VARCHAR)), '')"
            if target == "TIMESTAMP":
                expr = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)"
            elif target == "BOOLEAN":
                expr = f"TRY_CAST({text} AS BOOLEAN)"
            else:
                expr = f"TRY_CAST({text} AS {target})"
            checks.append(f"CASE WHEN {text} IS NOT NULL AND ({expr}) IS NULL THEN '{col.name}' END")
        elif kind == "NULL":
            expr = f"CAST(NULL AS {target})"
        else:
            expr = f"TRY_CAST({ref} AS {target})"
            checks.append(f"CASE WHEN {ref} IS NOT NULL AND ({expr}) IS NULL THEN '{col.name}' END")
        if col.name == time_col:
            raw_time = f"CAST({ref} AS VARCHAR)"
            time_source = src.name
        exprs.append(f"{expr} AS {_q(col.name)}")
    provenance = {p.lower() for p in PROVENANCE}
    extras = [
        f.name for f in input_schema
        if f.name.lower() not in used and f.name.lower() not in provenance
        and f.name.lower() not in {BAD, RAW_TIME} and not f.name.startswith("_")
        and f.name.strip()  # an unnamed column (a pandas index in CSV exports) has nothing to keep
    ]
    for name in extras:
        exprs.append(f"CAST({_q(name)} AS VARCHAR) AS {_q(name)}")
    for p in PROVENANCE:
        exprs.append(f"CAST({_q(p)} AS VARCHAR) AS {_q(p)}" if p.lower() in inputs else f"NULL AS {_q(p)}")
    if PART in inputs:
        exprs.append(_q(PART))
    bad = f"list_filter([{', '.join(checks)}], lambda x: x IS NOT NULL)" if checks else "CAST([] AS VARCHAR[])"
    exprs.append(f"{bad} AS {BAD}")
    exprs.append(f"{raw_time} AS {RAW_TIME}")
    sql = "SELECT " + ",\n       ".join(exprs) + f"\nFROM {relation}"
    unknown = [e for e in extras if not schema.has(e)]
    return Plan(sql=sql, unknown_columns=unknown, extra_columns=extras, time_source=time_source)
