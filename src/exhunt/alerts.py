"""Rule result rows -> alerts: rule metadata, the projected columns, and provenance.

Provenance (the file and line a row came from) rides on hidden columns of every
stored row. A rule that projects drops them, so the alert's row is found again
by the values it kept (time, device and every projected column the table has).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from exhunt.engine import Session
from exhunt.rule import Rule
from exhunt.schema import SOURCE_FILE, SOURCE_RECORD, TableSchema

#: The fields every alert has, in output order, before the rule's own columns (provenance comes last).
HEAD = ("rule_id", "rule_name", "severity", "confidence", "tactics", "techniques", "Timestamp", "DeviceName")


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _time_of(row: dict[str, Any]) -> datetime | None:
    for key in ("Timestamp", "TimeGenerated"):
        if isinstance(row.get(key), datetime):
            return row[key]
    for value in row.values():
        if isinstance(value, datetime):
            return value
    return None


#: KQL column type -> (Python types an alert's value must have to be that column's stored
#: value, the Arrow type the keys are sent to DuckDB as). A value of another type was made
#: by the rule (`extend ReportId = strcat(...)`), so it does not pin the row down.
_KEY_TYPES: dict[str, tuple[tuple[type, ...], pa.DataType]] = {
    "string": ((str,), pa.string()), "dynamic": ((str,), pa.string()), "guid": ((str,), pa.string()),
    "long": ((int,), pa.int64()), "int": ((int,), pa.int64()), "bool": ((bool,), pa.bool_()),
    "datetime": ((datetime,), pa.timestamp("us")), "real": ((float, int), pa.float64()),
    "double": ((float, int), pa.float64()), "timespan": ((timedelta,), pa.duration("us")),
}


#: Per table, result row keys -> _key_spec of them (the rows of one result share their keys).
Specs = dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str, str], ...]]


def _key_spec(t: TableSchema, keys: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(row key, stored column, its KQL type) for each key of a result row naming a column of
    `t` exactly (or through an alias)."""
    out = []
    for key in keys:
        name = t.aliases.get(key, key)
        col = t.column(name)
        if col is not None and col.name == name and col.kql_type in _KEY_TYPES:
            out.append((key, col.name, col.kql_type))
    return tuple(out)


def _conditions(session: Session, name: str, row: dict[str, Any], specs: Specs) -> dict[str, Any] | None:
    """Column -> value for each value the row kept that can be the stored value of a column
    of table `name`; None when they cannot pin a row down (no time, or nothing besides it)."""
    t = session.tables[name]
    conds: dict[str, Any] = {}
    shape = (name, tuple(row))
    spec = specs.get(shape)
    if spec is None:
        spec = specs[shape] = _key_spec(t, shape[1])
    for key, col, kind in spec:
        value = row[key]
        if value is not None and value != "" and type(value) in _KEY_TYPES[kind][0] and \
                (type(value) is not int or -(1 << 63) <= value < 1 << 63):
            conds[col] = value
    if t.time_column not in conds or len(conds) < 2:
        return None
    return conds


def key_table(session: Session, name: str, rows: dict[int, dict[str, Any]]) -> pa.Table:
    """The rows' values as one Arrow table: `_i` (the row's index), then one column per table
    column any row constrains, typed as stored, null where that row does not constrain it
    (see engine.key_match), so one join matches every row whatever its shape."""
    t = session.tables[name]
    order = list(rows)
    names = list(dict.fromkeys(c for conds in rows.values() for c in conds))
    columns: dict[str, Any] = {"_i": pa.array(order, pa.int64())}
    for col in names:
        kind = t.column(col).kql_type  # type: ignore[union-attr]
        columns[col] = pa.array([rows[i].get(col) for i in order], _KEY_TYPES[kind][1])
    return pa.table(columns)


def _find_sources(session: Session, tables: list[str], rows: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """(file, record) of each row that lost its provenance columns, by row index: the first
    row in scan order of the first table holding a row with its values.

    One join per table for all rows, the rows' values sent as one Arrow table: time and
    memory grow with the rows' values and one scan of the table's key columns, never with
    alerts times rows (DuckDB builds its hash table on the keys and streams the table).
    CSV files queried in place are not searched here but by `resolve_lines`, after every
    other file (their rows have no line number until then).
    """
    found: dict[int, tuple[str, str]] = {}
    pending = [i for i, row in enumerate(rows) if SOURCE_FILE not in row]
    specs: Specs = {}
    for name in tables:
        keys = {i: c for i in pending if (c := _conditions(session, name, rows[i], specs)) is not None}
        if not keys:
            continue
        for i, file, record in session.first_matches(name, key_table(session, name, keys)):
            found.setdefault(int(i), (str(file or ""), str(record or "")))
        pending = [i for i in pending if i not in found]
    return found


#: An alert whose line is still to be found: the alert, then (file, values of the row in
#: that file's table) for each CSV file queried in place that may hold it, in search order.
Unresolved = tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]


def _candidates(session: Session, tables: list[str], row: dict[str, Any], source: tuple[str, str],
                specs: Specs) -> list[tuple[str, dict[str, Any]]]:
    """Where an alert's row may be among the CSV files queried in place (see Unresolved)."""
    if source[1] or not session.lazy:
        return []
    files = [session.lazy[source[0]]] if source[0] in session.lazy else [] if source[0] else \
        [f for name in tables for f in session.lazy.values() if f.table == name]
    out = []
    for f in files:
        conds = _conditions(session, f.table, row, specs)
        if conds is not None:
            out.append((f.display, conds))
    return out


def resolve_lines(session: Session, pending: list[Unresolved]) -> None:
    """Fill in `source_file` and `source_record` of alerts from CSV files queried in place:
    one targeted read per file for all the alerts it may hold (see Session.lines_of)."""
    left = dict(enumerate(pending))
    files = list(dict.fromkeys(display for _, cands in pending for display, _ in cands))
    for display in files:
        keys = {i: conds for i, (_, cands) in left.items() for d, conds in cands if d == display}
        lines = session.lines_of(display, key_table(session, session.lazy[display].table, keys))
        for i, line in lines.items():
            alert = left.pop(i)[0]
            alert["source_file"], alert["source_record"] = display, line


def build(session: Session, rule: Rule, rows: list[dict[str, Any]],
          unresolved: list[Unresolved] | None = None) -> list[dict[str, Any]]:
    """One alert dict per result row, JSON-ready, sorted by time.

    An alert from a CSV file queried in place (Session.lines_later) gets its line here, or,
    when `unresolved` is given, is added to it for one `resolve_lines` after every rule.
    """
    tables = session.tables_named_in(rule.query) or rule.required_tables
    looked_up = _find_sources(session, tables, rows)
    alerts = []
    later: list[Unresolved] = []
    specs: Specs = {}
    meta = {"rule_id": rule.id, "rule_name": rule.name, "severity": rule.severity, "confidence": rule.confidence,
            "tactics": rule.tactics, "techniques": rule.techniques}
    for i, row in enumerate(rows):
        when = _time_of(row)
        if SOURCE_FILE in row:
            source = (str(row.get(SOURCE_FILE) or ""), str(row.get(SOURCE_RECORD) or ""))
        else:
            source = looked_up.get(i, ("", ""))
        alert: dict[str, Any] = {
            **meta,
            "Timestamp": iso(when) if when else None,
            "DeviceName": row.get("DeviceName") or row.get("Computer") or "",
        }
        for key, value in row.items():
            if key in alert or key.startswith("_") or (key == "TimeGenerated" and "Timestamp" in row):
                continue
            alert[key] = jsonable(value)
        alert["source_file"], alert["source_record"] = source
        candidates = _candidates(session, tables, row, source, specs)
        if candidates:
            later.append((alert, candidates))
        alerts.append(alert)
    if unresolved is None:
        resolve_lines(session, later)
    else:
        unresolved.extend(later)
    alerts.sort(key=lambda a: (a["Timestamp"] or "", a["rule_name"]))
    return alerts


def summary_line(rule: Rule, alert: dict[str, Any]) -> str:
    """A one-line description: the rule's alertDescriptionFormat with {{Column}} filled in."""
    fmt = rule.display_format
    if fmt:
        text = fmt
        for key, value in alert.items():
            text = text.replace("{{" + key + "}}", "" if value is None else str(value))
        return text
    keys = ("DetectionType", "FileName", "FolderPath", "ProcessCommandLine", "InitiatingProcessFileName")
    return " | ".join(str(alert[k]) for k in keys if alert.get(k))
