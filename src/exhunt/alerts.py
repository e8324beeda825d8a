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


def _find_source(session: Session, tables: list[str], row: dict[str, Any]) -> tuple[str, str]:
    for name in tables:
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
            continue
        hits = session.run(
            f'SELECT "{SOURCE_FILE}", "{SOURCE_RECORD}" FROM "_t_{name}" WHERE {" AND ".join(conds)} LIMIT 1',
            params,
        )
        if hits:
            hit = hits[0]
            return str(hit[0] or ""), str(hit[1] or "")
    return "", ""


def build(session: Session, rule: Rule, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One alert dict per result row, JSON-ready, sorted by time."""
    tables = session.tables_named_in(rule.query) or rule.required_tables
    alerts = []
    for row in rows:
        when = _time_of(row)
        if SOURCE_FILE in row:
            source = (str(row.get(SOURCE_FILE) or ""), str(row.get(SOURCE_RECORD) or ""))
        else:
            source = _find_source(session, tables, row)
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
