"""Rule result rows -> alerts: rule metadata, the projected columns, and provenance.

Provenance (the file and line a row came from) rides on hidden columns of every
stored row. A rule that projects drops them, so the alert's row is found again
by the values it kept (time, device and every projected column the table has).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exhunt.engine import Session
from exhunt.rule import Rule
from exhunt.schema import SOURCE_FILE, SOURCE_RECORD

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


def _conditions(session: Session, name: str, row: dict[str, Any]) -> tuple[list[str], list[Any]] | None:
    """`col = ?` for each value the row kept that is a column of table `name`; None when they
    cannot pin a row down (no time, or nothing besides it)."""
    t = session.tables[name]
    conds: list[str] = []
    params: list[Any] = []
    for key, value in row.items():
        col = t.aliases.get(key, key)
        if t.column(col) is None or value is None or value == "" or isinstance(value, (list, dict)):
            continue
        if t.column(col).name != col:  # type: ignore[union-attr]
            continue
        conds.append(f'"{col}" = ?')
        params.append(value)
    if not any(c.startswith(f'"{t.time_column}"') for c in conds) or len(conds) < 2:
        return None
    return conds, params


def _find_sources(session: Session, tables: list[str], rows: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """(file, record) of each row that lost its provenance columns, by row index: the first
    table holding a row with its values. One statement per table for all rows."""
    found: dict[int, tuple[str, str]] = {}
    pending = [i for i, row in enumerate(rows) if SOURCE_FILE not in row]
    for name in tables:
        parts: list[str] = []
        params: list[Any] = []
        for i in pending:
            pinned = _conditions(session, name, rows[i])
            if pinned is not None:
                parts.append(f'(SELECT {i}, "{SOURCE_FILE}", "{SOURCE_RECORD}" FROM "_t_{name}" '
                             f'WHERE {" AND ".join(pinned[0])} LIMIT 1)')
                params.extend(pinned[1])
        if parts:
            for i, file, record in session.run(" UNION ALL ".join(parts), params):
                found[int(i)] = (str(file or ""), str(record or ""))
        pending = [i for i in pending if i not in found]
    return found


def build(session: Session, rule: Rule, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One alert dict per result row, JSON-ready, sorted by time."""
    tables = session.tables_named_in(rule.query) or rule.required_tables
    looked_up = _find_sources(session, tables, rows)
    alerts = []
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
        alerts.append(alert)
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
