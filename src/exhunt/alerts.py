"""Rule result rows -> alerts: rule metadata, the projected columns, and provenance.

Provenance (the file and line a row came from) rides on hidden columns of every
stored row. A rule that projects drops them, so the alert's row is found again
by the values it kept (time, device and every projected column the table has).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from exhunt.engine import Session
from exhunt.rule import Rule
from exhunt.schema import SOURCE_FILE, SOURCE_RECORD
from exhunt.sqltext import ident as _q

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


def _conditions(session: Session, name: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """Column -> value for each value the row kept that is a column of table `name`; None when
    they cannot pin a row down (no time, or nothing besides it)."""
    t = session.tables[name]
    conds: dict[str, Any] = {}
    for key, value in row.items():
        col = t.aliases.get(key, key)
        if t.column(col) is None or value is None or value == "" or isinstance(value, (list, dict)):
            continue
        if t.column(col).name != col:  # type: ignore[union-attr]
            continue
        conds[col] = value
    if t.time_column not in conds or len(conds) < 2:
        return None
    return conds


def _key_tables(rows: dict[int, dict[str, Any]]) -> Iterator[pa.Table]:
    """The rows' values as Arrow tables (an `_i` column, then one column per key), one per
    set of key columns and Python types, so a join can match all of them at once."""
    groups: dict[tuple[tuple[str, type], ...], list[int]] = {}
    for i, conds in rows.items():
        groups.setdefault(tuple((c, type(v)) for c, v in conds.items()), []).append(i)
    for shape, members in groups.items():
        columns: dict[str, Any] = {"_i": pa.array(members, pa.int64())}
        for col, _ in shape:
            columns[col] = pa.array([rows[i][col] for i in members])
        yield pa.table(columns)


#: Up to this many rows are looked up one `LIMIT 1` each (cheapest for a few alerts); more
#: by one join per table, whose cost does not grow with every alert scanning the table.
FEW = 64


def _find_sources(session: Session, tables: list[str], rows: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """(file, record) of each row that lost its provenance columns, by row index: the first
    row in scan order of the first table holding a row with its values. One statement per
    table: for many rows a join (and one per shape of values), so time and memory do not
    grow with alerts times rows.

    CSV files queried in place are not searched here but by `resolve_lines`, after every
    other file (their rows have no line number until then).
    """
    found: dict[int, tuple[str, str]] = {}
    pending = [i for i, row in enumerate(rows) if SOURCE_FILE not in row]
    for name in tables:
        keys = {i: c for i in pending if (c := _conditions(session, name, rows[i])) is not None}
        source = session.searchable(name)
        if len(keys) <= FEW:
            parts = [f'(SELECT {i}, "{SOURCE_FILE}", "{SOURCE_RECORD}" FROM {source} '
                     f'WHERE {" AND ".join(f"{_q(c)} = ?" for c in conds)} LIMIT 1)' for i, conds in keys.items()]
            params = [v for conds in keys.values() for v in conds.values()]
            hits = session.run(" UNION ALL ".join(parts), params) if parts else []
        else:
            hits = []
            for table in _key_tables(keys):
                cols = [c for c in table.column_names if c != "_i"]
                on = " AND ".join(f"r.{_q(c)} = k.{_q(c)}" for c in cols)
                session.con.register("_exhunt_keys", table)
                try:
                    hits += session.run(
                        f'SELECT k._i, arg_min(r."{SOURCE_FILE}", r._o), arg_min(r."{SOURCE_RECORD}", r._o) '
                        f"FROM _exhunt_keys k JOIN (SELECT *, row_number() OVER () AS _o FROM {source}) r "
                        f"ON {on} GROUP BY k._i")
                finally:
                    session.con.unregister("_exhunt_keys")
        for i, file, record in hits:
            found.setdefault(int(i), (str(file or ""), str(record or "")))
        pending = [i for i in pending if i not in found]
    return found


#: An alert whose line is still to be found: the alert, then (file, values of the row in
#: that file's table) for each CSV file queried in place that may hold it, in search order.
Unresolved = tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]


def _candidates(session: Session, tables: list[str], row: dict[str, Any], source: tuple[str, str],
                ) -> list[tuple[str, dict[str, Any]]]:
    """Where an alert's row may be among the CSV files queried in place (see Unresolved)."""
    if source[1] or not session.lazy:
        return []
    files = [session.lazy[source[0]]] if source[0] in session.lazy else [] if source[0] else \
        [f for name in tables for f in session.lazy.values() if f.table == name]
    out = []
    for f in files:
        conds = _conditions(session, f.table, row)
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
        lines: dict[int, str] = {}
        for table in _key_tables(keys):
            lines.update(session.lines_of(display, table))
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
    for i, row in enumerate(rows):
        when = _time_of(row)
        if SOURCE_FILE in row:
            source = (str(row.get(SOURCE_FILE) or ""), str(row.get(SOURCE_RECORD) or ""))
        else:
            source = looked_up.get(i, ("", ""))
        alert: dict[str, Any] = {
            "rule_id": rule.id,
            "rule_name": rule.name,
            "severity": rule.severity,
            "confidence": rule.confidence,
            "tactics": rule.tactics,
            "techniques": rule.techniques,
            "Timestamp": iso(when) if when else None,
            "DeviceName": row.get("DeviceName") or row.get("Computer") or "",
        }
        for key, value in row.items():
            if key in alert or key.startswith("_") or (key == "TimeGenerated" and "Timestamp" in row):
                continue
            alert[key] = jsonable(value)
        alert["source_file"], alert["source_record"] = source
        candidates = _candidates(session, tables, row, source)
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
