"""The same logical Defender rows written in every input format exhunt reads.

Rows are written the way each producer writes them: the portal CSV as text with
CRLF and 7-digit fractions, the APIs as typed JSON, Parquet with real timestamp
and integer columns, Sentinel with TimeGenerated/Type/TenantId. A format test
then loads each rendition and expects the very same alerts and table contents.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from exhunt.rule import shipped_dir
from exhunt.schema import table

TENANT = "3c1f4a7e-0b5d-4e8a-9c2f-6d1e0a7b8c9d"
EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15"
HOST = "exch01.contoso.local"
#: A column Defender might add one day: readers must keep it, not drop it.
NEW_COLUMN = "FutureDefenderColumn"

FILE_ROWS: list[dict[str, Any]] = [
    {"Timestamp": "2026-03-01T10:00:00.1234567Z", "DeviceName": HOST, "ActionType": "FileCreated",
     "FileName": "evil.dll", "FolderPath": EXCH + r"\TransportRoles\agents\evil.dll", "FileSize": 73728,
     "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessAccountName": "svc-x",
     "InitiatingProcessCommandLine": 'powershell.exe -c "Copy-Item \\\\fs\\x\\evil.dll, .\\"',
     "InitiatingProcessId": 4242, "ReportId": 11,
     "AdditionalFields": {"FileType": "PortableExecutable", "Size": 73728}, NEW_COLUMN: "v1"},
    {"Timestamp": "2026-03-01T11:30:00.0000000Z", "DeviceName": HOST, "ActionType": "FileModified",
     "FileName": "Microsoft.Exchange.Data.dll", "FolderPath": EXCH + r"\Bin\Microsoft.Exchange.Data.dll",
     "InitiatingProcessFileName": "ExSetup.exe", "InitiatingProcessAccountName": "system",
     "InitiatingProcessId": 4120, "ReportId": 12, NEW_COLUMN: "v2"},
    {"Timestamp": "2026-03-02T08:00:00.5000000Z", "DeviceName": HOST, "ActionType": "FileCreated",
     "FileName": "notes.txt", "FolderPath": EXCH + r"\TransportRoles\agents\notes.txt",
     "InitiatingProcessFileName": "notepad.exe", "InitiatingProcessAccountName": "admin",
     "InitiatingProcessId": 77, "ReportId": 13, NEW_COLUMN: "v3"},
]

PROCESS_ROWS: list[dict[str, Any]] = [
    {"Timestamp": "2026-03-01T12:00:00.9999999Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
     "FileName": "cmd.exe", "FolderPath": r"C:\Windows\System32\cmd.exe",
     "ProcessCommandLine": 'cmd.exe /c "whoami /all, net user" > C:\\x.txt', "ProcessId": 5123,
     "AccountName": "network service", "InitiatingProcessFileName": "EdgeTransport.exe",
     "InitiatingProcessCommandLine": '"EdgeTransport.exe"', "InitiatingProcessId": 3100,
     "IsProcessRemoteSession": False, "ReportId": 21, NEW_COLUMN: "p1"},
    {"Timestamp": "2026-03-03T09:15:00.0000001Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
     "FileName": "pwsh.exe", "FolderPath": r"C:\Program Files\PowerShell\7\pwsh.exe",
     "ProcessCommandLine": "pwsh.exe -c \"Install-TransportAgent -Name 'X' -AssemblyPath C:\\x.dll\"",
     "ProcessId": 6001, "AccountName": "exadmin", "InitiatingProcessFileName": "explorer.exe",
     "InitiatingProcessId": 900, "IsProcessRemoteSession": True, "ReportId": 22,
     "AdditionalFields": {"ProcessStartKey": 1234567}, NEW_COLUMN: "p2"},
    {"Timestamp": "2026-03-03T09:20:00.0000000Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
     "FileName": "notepad.exe", "FolderPath": r"C:\Windows\notepad.exe", "ProcessCommandLine": "notepad.exe",
     "ProcessId": 6002, "AccountName": "exadmin", "InitiatingProcessFileName": "explorer.exe",
     "InitiatingProcessId": 900, "ReportId": 23, NEW_COLUMN: "p3"},
]

ROWS: dict[str, list[dict[str, Any]]] = {"DeviceFileEvents": FILE_ROWS, "DeviceProcessEvents": PROCESS_ROWS}

#: The seed rule's alerts on these rows (Timestamp truncated to microseconds, as stored).
EXPECTED_DETECTIONS = [
    ("2026-03-01T10:00:00.123456Z", "Exchange_Transport_DLL_Write", "evil.dll"),
    ("2026-03-01T12:00:00.999999Z", "Exchange_Transport_OS_Command", "cmd.exe"),
    ("2026-03-03T09:15:00.000000Z", "Exchange_Transport_Agent_Install", "pwsh.exe"),
]

# -- value renditions --------------------------------------------------------------


def columns(name: str) -> list[str]:
    """Every published column of the table, then the new one: exports carry all columns."""
    return [*table(name).names, NEW_COLUMN]


def full(name: str, row: dict[str, Any]) -> dict[str, Any]:
    return {c: row.get(c) for c in columns(name)}


def dyn_text(value: Any) -> str:
    """A dynamic value as the JSON text Defender writes into a CSV cell or an API string."""
    return json.dumps(value, separators=(",", ":"))


def text_value(value: Any) -> str:
    """A value as it appears in a CSV export."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return dyn_text(value)
    return str(value)


def api_value(value: Any) -> Any:
    """A value as the Advanced Hunting API returns it (dynamic columns as JSON text)."""
    return dyn_text(value) if isinstance(value, (dict, list)) else value


def parse_ts(text: str) -> datetime:
    """7-digit-fraction ISO text -> aware datetime, truncated to microseconds."""
    base, frac = text.rstrip("Z").split(".")
    return datetime.fromisoformat(f"{base}.{frac[:6]}+00:00").astimezone(UTC)


# -- formats -----------------------------------------------------------------------


def write_csv(path: Path, name: str, rows: list[dict[str, Any]], bom: bool = False) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns(name))
    for row in rows:
        writer.writerow([text_value(v) for v in full(name, row).values()])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8"))
    return path


def _schema_list(name: str, key_case: str) -> list[dict[str, str]]:
    types = {c.name: c.kql_type for c in table(name).columns}
    dotnet = {"datetime": "DateTime", "long": "Int64", "int": "Int32", "bool": "Boolean", "dynamic": "Object"}
    n, t = ("Name", "Type") if key_case == "upper" else ("name", "type")
    return [{n: c, t: dotnet.get(types.get(c, "string"), "String")} for c in columns(name)]


def write_ah_api(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    doc = {"Schema": _schema_list(name, "upper"),
           "Results": [{k: api_value(v) for k, v in full(name, r).items()} for r in rows]}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def write_graph(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    doc = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
           "schema": _schema_list(name, "lower"),
           "results": [{k: api_value(v) for k, v in full(name, r).items()} for r in rows]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_xdr(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    doc = {"Stats": {"ExecutionTime": 0.53, "resource_usage": {"cache": {}, "cpu": {}, "memory": {}},
                     "dataset_statistics": [{"table_row_count": len(rows), "table_size": 1024}]},
           "Schema": _schema_list(name, "upper"),
           "Results": [{k: api_value(v) for k, v in full(name, r).items()} for r in rows]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def streaming_record(name: str, row: dict[str, Any]) -> dict[str, Any]:
    props = {**full(name, row), "MachineGroup": None}
    return {"time": "2026-03-04T00:00:00.0000000Z", "tenantId": TENANT, "operationName": "Publish",
            "category": f"AdvancedHunting-{name}", "properties": props}


def write_streaming_storage(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(streaming_record(name, r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_event_hub(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """One Event Hub message holding both tables' records (the category tells them apart)."""
    records = [streaming_record(n, r) for n, rows in tables.items() for r in rows]
    path.write_text(json.dumps({"records": records}, indent=2), encoding="utf-8")
    return path


def write_event_hub_lines(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """Captured Event Hub messages, one `{"records": [...]}` per line."""
    lines = [json.dumps({"records": [streaming_record(n, r) for r in rows]}) for n, rows in tables.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(full(name, r)) + "\n" for r in rows), encoding="utf-8")
    return path


def sentinel_row(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """A Log Analytics row: TimeGenerated instead of Timestamp, plus the workspace columns."""
    out = {k: api_value(v) for k, v in full(name, row).items() if k != "Timestamp"}
    return {"TenantId": TENANT, "TimeGenerated": row["Timestamp"], **out, "SourceSystem": "",
            "Type": name, "MachineGroup": ""}


def write_sentinel_jsonl(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """A Log Analytics data-export blob: flat rows, both tables in one file, `Type` names each."""
    lines = [json.dumps(sentinel_row(n, r)) for n, rows in tables.items() for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_la_api(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """The Log Analytics query API response (`tables[].columns/rows`) of a union of both tables."""
    cols: list[str] = []
    for n in tables:
        for c in sentinel_row(n, tables[n][0]):
            if c not in cols:
                cols.append(c)
    kql_types = {c.name: c.kql_type for n in tables for c in table(n).columns}
    out_rows = []
    for n, rows in tables.items():
        for r in rows:
            s = sentinel_row(n, r)
            out_rows.append([s.get(c) for c in cols])
    doc = {"tables": [{"name": "PrimaryResult",
                       "columns": [{"name": c, "type": kql_types.get(c, "string")} for c in cols],
                       "rows": out_rows}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_parquet(path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """Typed columns: timestamps as UTC timestamps, longs as int64, bools as bool."""
    arrow_types = {c.name: c.kql_type for c in table(name).columns}
    arrays = {}
    for col in columns(name):
        values = [r.get(col) for r in rows]
        kind = arrow_types.get(col, "string")
        if kind == "datetime":
            arrays[col] = pa.array([parse_ts(v) if v else None for v in values], pa.timestamp("us", tz="UTC"))
        elif kind in ("long", "int"):
            arrays[col] = pa.array(values, pa.int64())
        elif kind == "bool":
            arrays[col] = pa.array(values, pa.bool_())
        else:
            arrays[col] = pa.array([None if v is None else text_value(v) for v in values], pa.string())
    pq.write_table(pa.table(arrays), path)
    return path


def _per_table(writer: Callable[[Path, str, list[dict[str, Any]]], Path], suffix: str,
               named: bool = True) -> Callable[[Path], list[Path]]:
    def write(folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (name, rows) in enumerate(ROWS.items(), 1):
            stem = f"{name}_2026-03-04" if named else f"export-{i}"
            out.append(writer(folder / f"{stem}{suffix}", name, rows))
        return out

    return write


def _whole(writer: Callable[[Path, dict[str, list[dict[str, Any]]]], Path], file: str) -> Callable[[Path], list[Path]]:
    def write(folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        return [writer(folder / file, ROWS)]

    return write


#: format label -> (expected reader name, writer into a folder). `named=False` variants have
#: file names that say nothing, so the table must come from the column signature.
FORMATS: dict[str, tuple[str, Callable[[Path], list[Path]]]] = {
    "portal-csv": ("mde-csv", _per_table(write_csv, ".csv")),
    "csv-by-columns": ("mde-csv", _per_table(write_csv, ".csv", named=False)),
    "ah-api-json": ("mde-json", _per_table(write_ah_api, ".json", named=False)),
    "graph-json": ("mde-json", _per_table(write_graph, ".json", named=False)),
    "xdr-api-json": ("mde-json", _per_table(write_xdr, ".json", named=False)),
    "streaming-storage": ("mde-jsonl", _per_table(write_streaming_storage, ".json", named=False)),
    "event-hub": ("mde-json", _whole(write_event_hub, "eventhub-message.json")),
    "event-hub-lines": ("mde-jsonl", _whole(write_event_hub_lines, "eventhub-capture.jsonl")),
    "jsonl-rows": ("mde-jsonl", _per_table(write_jsonl, ".jsonl")),
    "parquet": ("parquet", _per_table(write_parquet, ".parquet")),
    "parquet-by-columns": ("parquet", _per_table(write_parquet, ".parquet", named=False)),
    "sentinel-export": ("mde-jsonl", _whole(write_sentinel_jsonl, "PT05M.json")),
    "log-analytics-api": ("mde-json", _whole(write_la_api, "la-query-result.json")),
}


def seed_rule(folder: Path, stem: str, **changes: Any) -> Path:
    """A copy of the shipped seed rule saved as `folder`/`stem`.yaml, with top-level fields or
    (`exhunt__severity=...`) fields of its `exhunt` block changed."""
    doc = yaml.safe_load((shipped_dir() / "exchange-transport-agent-seed.yaml").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key.startswith("exhunt__"):
            doc["exhunt"][key.removeprefix("exhunt__")] = value
        else:
            doc[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def file_rule(rule_id: str, name: str, description: str, query: str) -> str:
    """The YAML of a Low rule over DeviceFileEvents running `query` (one line or several)."""
    return f"""\
id: {rule_id}
name: {name}
description: {description}
severity: Low
queryFrequency: 1h
queryPeriod: 1h
triggerOperator: gt
triggerThreshold: 0
tactics: [Persistence]
relevantTechniques: [T1505.002]
query: |
{textwrap.indent(query, "  ")}
exhunt:
  requiredTables: [DeviceFileEvents]
"""
