"""Rule result rows -> alerts: rule metadata, the projected columns, and provenance.

Provenance (the file and record a row came from) is the backend's to find
(`Backend.sources`): in DuckDB it rides on hidden columns of every stored row, and a
rule that projects drops them, so the alert's row is found again by the values it kept.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from exhunt.backends.base import Backend, Later
from exhunt.replay import tables_of
from exhunt.rule import Rule

#: The fields every alert has, in output order, before the rule's own columns (provenance comes last).
HEAD = ("alert_id", "rule_id", "rule_name", "severity", "confidence", "tactics", "techniques",
        "Timestamp", "DeviceName")


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


#: Columns that say where a row was read, not what happened: never part of an alert's identity.
PROVENANCE = ("source_file", "source_record")


def alert_id(rule: Rule, alert: dict[str, Any]) -> str:
    """A stable id: the rule's id and the fields that make its alert unique, hashed.

    The fields are the rule's `exhunt.alertIdentity` list when it has one (a correlation whose
    detail grows as data arrives names what stays fixed, e.g. the server and the first step's
    time), else every non-empty column the rule returned. Where a row was read (file, line) is never
    part of it, so the same event in a renamed or re-exported file keeps its id.
    """
    named = rule.meta.get("alertIdentity")
    # Empty columns are left out, so a column a newer rule version adds (empty on old events)
    # does not change the ids of alerts a state file already holds.
    keys = [str(k) for k in named] if isinstance(named, list) and named else sorted(
        k for k in alert if k not in PROVENANCE and k not in HEAD and alert[k] not in (None, "", [], {}))
    fields = {"Timestamp": alert.get("Timestamp"), "DeviceName": alert.get("DeviceName")} if not named else {}
    fields.update({k: alert.get(k) for k in keys})
    text = json.dumps([rule.id or rule.slug, fields], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _time_of(row: dict[str, Any]) -> datetime | None:
    for key in ("Timestamp", "TimeGenerated"):
        if isinstance(row.get(key), datetime):
            return row[key]
    for value in row.values():
        if isinstance(value, datetime):
            return value
    return None


#: An alert whose source is still to be found (see resolve_lines).
Unresolved = tuple[dict[str, Any], Later]


def resolve_lines(pending: list[Unresolved]) -> None:
    """Fill in `source_file` and `source_record` of alerts whose source the backend finds later
    (DuckDB: lines of CSV files hunted in place, one read per file for every rule's alerts)."""
    for alert, later in pending:
        alert["source_file"], alert["source_record"] = later.get()


def build(backend: Backend, rule: Rule, rows: list[dict[str, Any]],
          unresolved: list[Unresolved] | None = None) -> list[dict[str, Any]]:
    """One alert dict per result row, JSON-ready, sorted by time.

    An alert whose source the backend finds later (a `Later`) gets it here, or, when
    `unresolved` is given, is added to it for one `resolve_lines` after every rule.
    """
    found = backend.sources(rows, tables_of(backend, rule))
    alerts = []
    later: list[Unresolved] = []
    meta = {"rule_id": rule.id, "rule_name": rule.name, "severity": rule.severity, "confidence": rule.confidence,
            "tactics": rule.tactics, "techniques": rule.techniques}
    for i, row in enumerate(rows):
        when = _time_of(row)
        source = found[i]
        alert: dict[str, Any] = {
            "alert_id": "",
            **meta,
            "Timestamp": iso(when) if when else None,
            "DeviceName": row.get("DeviceName") or row.get("Computer") or "",
        }
        for key, value in row.items():
            if key in alert or key.startswith("_") or (key == "TimeGenerated" and "Timestamp" in row):
                continue
            alert[key] = jsonable(value)
        if isinstance(source, Later):
            later.append((alert, source))
            source = source.source  # what is known so far
        alert["source_file"], alert["source_record"] = source or ("", "")
        alert["alert_id"] = alert_id(rule, alert)
        alerts.append(alert)
    if unresolved is None:
        resolve_lines(later)
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
