"""Alerts as incidents in every format: the table by incident, JSON objects per incident,
and a flat CSV (one row per alert) ordered incident by incident.

The CSV keeps one row per alert because a spreadsheet is flat; the incident's id and
severity, the evidence id and every rule that found the evidence come first after alert_id,
so sorting or filtering by them rebuilds the grouping.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TextIO

from exhunt.incidents import DEFAULT_WINDOW, Incident, annotated_alerts, as_record, group
from exhunt.output.incident_table import detail_map, write_incident_table
from exhunt.output.serial import write_csv, write_json, write_jsonl

INCIDENT_FORMATS = ("table", "json", "jsonl", "csv")


def csv_rows(incidents: list[Incident]) -> list[dict[str, Any]]:
    """One row per alert, incident by incident (time order inside), with `incident_id`,
    `incident_severity`, `evidence_id` and `found_by` right after `alert_id`."""
    rows = []
    for incident in incidents:
        for alert in annotated_alerts(incident):
            row = {"alert_id": alert["alert_id"], "incident_id": incident.incident_id,
                   "incident_severity": incident.severity}
            row.update(alert)
            rows.append(row)
    return rows


def write_incidents(alerts: list[dict[str, Any]], fmt: str, out: TextIO, details: list[str] | None = None,
                    window: timedelta = DEFAULT_WINDOW, title: str | None = None, zone: str = "UTC",
                    width: int | None = None) -> list[Incident]:
    """Group `alerts` (details[i] describes alerts[i]) and write them as incidents in `fmt`;
    returns the incidents written."""
    if fmt not in INCIDENT_FORMATS:
        raise ValueError(f"no incident output for format {fmt!r}")
    incidents = group(alerts, window)
    if fmt == "table":
        shown = details if details is not None else [str(a.get("rule_name", "")) for a in alerts]
        write_incident_table(incidents, out, detail_map(alerts, shown), title, width=width, zone=zone)
    elif fmt == "csv":
        write_csv(csv_rows(incidents), out)
    else:
        records = [as_record(inc) for inc in incidents]
        (write_json if fmt == "json" else write_jsonl)(records, out)
    return incidents
