"""The Exchange admin audit log export (Search-AdminAuditLog saved as CSV or JSON), read from hand-written
files: the ExchangeAdminAuditLogs rows the MSExchange Management log would give, every form of
CmdletParameters, dates as PowerShell writes them, bad rows named by line, attacker text inert."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport
from exhunt.sources.exchange_audit import parameters, run_date

COLUMNS = ["RunspaceId", "ObjectModified", "CmdletName", "CmdletParameters", "ModifiedProperties", "Caller",
           "ExternalAccess", "Succeeded", "Error", "RunDate", "OriginatingServer", "Identity", "IsValid",
           "ObjectState"]
TYPE_NAME = ("Microsoft.Exchange.Data.MultiValuedProperty`1[Microsoft.Exchange.Management.SystemConfigurationTasks"
             ".AdminAuditLogCmdletParameter]")
DLL = r"C:\ProgramData\Sync\Sync.dll"
SERVER = "EXCH01 (15.02.1544.004)"
CALLER = "contoso.local/Users/mallory"
#: What the tests read back, in this order.
COLS = ("TimeGenerated", "Computer", "EventID", "Status", "Caller", "TargetObject", "CmdletName", "CmdletParameters",
        "Parameters", "RunspaceType", "HostProcess", "ErrorMessage")


def entry(cmdlet: str, params: str, when: str, ok: str = "True", error: str = "", obj: str = "Sync Agent",
          caller: str = CALLER) -> list[str]:
    return ["0d5d1f0e-3c4b-4d6a-9b1e-2f3a4b5c6d7e", obj, cmdlet, params, "", caller, "False", ok, error, when,
            SERVER, "AAMkADk=", "True", "Unchanged"]


def csv_text(rows: list[list[str]], typed: bool = True) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if typed:
        buf.write("#TYPE Deserialized.Microsoft.Exchange.Management.SystemConfigurationTasks.AdminAuditLogEvent\r\n")
    w.writerow(COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


def load(path: Path, table: str | None = None) -> tuple[list[tuple[Any, ...]], FileReport]:
    with Session(in_memory=True) as s:
        (report,) = s.load_files(list(sources.walk([path])), None, table)
        got = s.run(f'SELECT {", ".join(COLS)}, _record FROM "_t_ExchangeAdminAuditLogs"') if report.total_used else []
    return sorted(got, key=lambda r: int(r[-1].split()[-1])), report


def params_json(text: str) -> dict[str, str]:
    return dict(json.loads(text))


def test_csv_export_every_parameter_form_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        entry("Install-TransportAgent",
              f"Name=Sync Agent; TransportAgentFactory=Sync.Factory; AssemblyPath={DLL}", "11/21/2026 2:00:08 PM"),
        entry("Enable-TransportAgent", '-Identity "Sync Agent" -Priority 3', "11/21/2026 12:30:09 AM", "False",
              "Microsoft.Exchange.Management.SystemConfigurationTasks.ManagementObjectNotFoundException:\r\n"
              "Transport agent Sync Agent isn't found."),
        entry("Set-TransportAgent", TYPE_NAME, "2026-11-21T15:00:10.1234567Z"),
        entry("Add-DatabaseAvailabilityGroupServer", "{Identity=DAG1, MailboxServer=EX2}", "21.11.2026 16:00:11",
              obj="DAG1"),
        entry("Install-TransportAgent", "Name=X", "not a date"),
        entry("", "-Identity X", "11/21/2026 2:00:08 PM"),
        ["too", "few"],
        entry("Uninstall-TransportAgent", '-Identity "Sync Agent" -Confirm:$false', "11/21/2026 2:10:00 PM"),
    ]
    path = tmp_path / "audit.csv"
    path.write_text(csv_text(rows), encoding="utf-8", newline="")
    got, report = load(path)
    assert (report.format, report.read, report.total_used, report.total_skipped) == ("exchange-admin-audit", 8, 5, 3)
    assert sorted(m.split(": skipped: ")[1] for m in report.messages if ": skipped: " in m) == [
        "RunDate is not a date: not a date", "malformed CSV line: expected 14 fields, found 2", "no CmdletName"]
    assert {m.split(": skipped: ")[0].removeprefix(str(path) + ":") for m in report.messages if "skipped" in m} == {
        "line 8", "line 9", "line 10"}  # the error spanning two lines moves the later rows down one
    assert report.note == "CmdletParameters holds only its type name: parameter values are not in the file"
    shown = [(r[0], *r[1:8], params_json(r[8]), *r[9:]) for r in got]
    assert shown == [
        (datetime(2026, 11, 21, 14, 0, 8), "EXCH01", None, "Success", CALLER, "Sync Agent", "Install-TransportAgent",
         f'-Name "Sync Agent" -TransportAgentFactory "Sync.Factory" -AssemblyPath "{DLL}"',
         {"Name": "Sync Agent", "TransportAgentFactory": "Sync.Factory", "AssemblyPath": DLL}, "", "", "", "line 3"),
        (datetime(2026, 11, 21, 0, 30, 9), "EXCH01", None, "Failure", CALLER, "Sync Agent", "Enable-TransportAgent",
         '-Identity "Sync Agent" -Priority 3', {"Identity": "Sync Agent", "Priority": "3"}, "", "",
         "Microsoft.Exchange.Management.SystemConfigurationTasks.ManagementObjectNotFoundException:\r\n"
         "Transport agent Sync Agent isn't found.", "line 4"),
        (datetime(2026, 11, 21, 15, 0, 10, 123456), "EXCH01", None, "Success", CALLER, "Sync Agent",
         "Set-TransportAgent", "", {}, "", "", "", "line 6"),
        (datetime(2026, 11, 21, 16, 0, 11), "EXCH01", None, "Success", CALLER, "DAG1",
         "Add-DatabaseAvailabilityGroupServer", "{Identity=DAG1, MailboxServer=EX2}",
         {"Identity": "DAG1", "MailboxServer": "EX2"}, "", "", "", "line 7"),
        (datetime(2026, 11, 21, 14, 10), "EXCH01", None, "Success", CALLER, "Sync Agent", "Uninstall-TransportAgent",
         '-Identity "Sync Agent" -Confirm:$false', {"Identity": "Sync Agent", "Confirm": "$false"}, "", "", "",
         "line 11"),
    ]


def _json_entries() -> list[dict[str, Any]]:
    base = {"RunspaceId": "0d5d1f0e", "ModifiedProperties": [], "Caller": CALLER, "ExternalAccess": False,
            "OriginatingServer": SERVER, "Identity": "AAMkADk=", "IsValid": True, "ObjectState": "Unchanged"}
    return [
        {**base, "ObjectModified": "Sync Agent", "CmdletName": "Install-TransportAgent",
         "CmdletParameters": [{"Name": "Name", "Value": "Sync Agent"}, {"Name": "AssemblyPath", "Value": DLL},
                              {"Name": "TransportAgentFactory", "Value": "Sync.Factory"}],
         "Succeeded": True, "Error": None, "RunDate": "/Date(1795269608000)/"},
        {**base, "ObjectModified": "Sync Agent", "CmdletName": "Enable-TransportAgent",
         "CmdletParameters": ["Identity"], "Succeeded": False, "Error": "denied",
         "RunDate": {"value": "/Date(1795269609000)/", "DisplayHint": 2, "DateTime": "Saturday, ..."}},
        "not an entry",
        {**base, "ObjectModified": "", "CmdletName": "Set-TransportConfig",
         "CmdletParameters": {"value": [{"Name": "MaxSendSize", "Value": ["10MB", "20MB"]}], "Count": 1},
         "Succeeded": True, "Error": "", "RunDate": "2026-11-21T16:00:10+02:00"},
    ]


def test_json_export_convertto_json_forms(tmp_path: Path) -> None:
    text = json.dumps(_json_entries(), indent=4).replace("/Date(", "\\/Date(").replace(")/", ")\\/")
    path = tmp_path / "audit.json"
    path.write_text(text, encoding="utf-8")
    got, report = load(path)
    assert (report.format, report.read, report.total_used, report.total_skipped) == ("exchange-admin-audit", 4, 3, 1)
    assert report.messages[0] == f"{path}:record 3: skipped: record is not a JSON object"
    assert report.note == "CmdletParameters holds parameter names only: parameter values are not in the file"
    assert [(r[0], r[3], r[5], r[6], r[7], params_json(r[8]), r[11], r[12]) for r in got] == [
        (datetime(2026, 11, 21, 14, 0, 8), "Success", "Sync Agent", "Install-TransportAgent",
         f'-Name "Sync Agent" -AssemblyPath "{DLL}" -TransportAgentFactory "Sync.Factory"',
         {"Name": "Sync Agent", "AssemblyPath": DLL, "TransportAgentFactory": "Sync.Factory"}, "", "record 1"),
        (datetime(2026, 11, 21, 14, 0, 9), "Failure", "Sync Agent", "Enable-TransportAgent", "{Identity}", {},
         "denied", "record 2"),
        (datetime(2026, 11, 21, 14, 0, 10), "Success", "", "Set-TransportConfig", '-MaxSendSize "10MB;20MB"',
         {"MaxSendSize": "10MB;20MB"}, "", "record 4"),
    ]


def test_json_lines_export_names_its_bad_lines(tmp_path: Path) -> None:
    good = {k: v for k, v in _json_entries()[0].items()}
    deep = dict(good, CmdletParameters=[{"Name": "X", "Value": "[" * 3000}])
    nested = json.dumps(dict(good, ModifiedProperties="@")).replace('"@"', "[" * 3000 + "]" * 3000)
    lines = [json.dumps(good), '{"CmdletName": "Install-TransportAgent", "RunDate":', nested, json.dumps(deep),
             json.dumps(dict(good, RunDate="13/45/2026 1:00:00 PM"))]
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got, report = load(path)
    assert (report.read, report.total_used, report.total_skipped) == (5, 2, 3)
    assert [r[-1] for r in got] == ["line 1", "line 4"]
    assert dict(report.skipped) == {"invalid JSON": 1, "nested too deep": 1, "RunDate is not a date": 1}


@pytest.mark.parametrize("value", ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@HYPERLINK(\"http://x\")"])
def test_formula_like_values_stay_inert(tmp_path: Path, value: str) -> None:
    path = tmp_path / "audit.csv"
    path.write_text(csv_text([entry("Install-TransportAgent", f"Name={value}; AssemblyPath={DLL}",
                                    "11/21/2026 2:00:08 PM", caller=value)]), encoding="utf-8", newline="")
    got, _ = load(path)
    assert [(r[4], r[5], params_json(r[8])["Name"]) for r in got] == [(value, value, value)]
    code, out, err = run_cli(["detect", str(path), "-q", "--flat", "-f", "csv", "--now", "2026-11-21T14:30:00Z",
                              "-r", "exchange-transport-agent-cmdlet"])
    assert code == 0, err
    (alert,) = list(csv.DictReader(io.StringIO(out)))
    assert (alert["AccountName"], alert["AgentName"], alert["Source"]) == (f"'{value}", f"'{value}",
                                                                          "Exchange admin audit log")


def test_utf16_export_and_table_override(tmp_path: Path) -> None:
    path = tmp_path / "audit.csv"
    path.write_bytes(csv_text([entry("Install-TransportAgent", "Name=A", "11/21/2026 2:00:08 PM")],
                              typed=False).encode("utf-16"))
    got, report = load(path)
    assert (report.format, [r[6] for r in got]) == ("exchange-admin-audit", ["Install-TransportAgent"])
    _, report = load(path, "DeviceFileEvents")
    assert report.error == "an Exchange admin audit log export fills ExchangeAdminAuditLogs, not DeviceFileEvents"


def test_only_admin_audit_headers_are_taken(tmp_path: Path) -> None:
    other = tmp_path / "DeviceFileEvents.csv"
    other.write_text("Timestamp,DeviceName,ActionType,FileName,FolderPath\n2026-11-21T02:00:00Z,x,FileCreated,a,b\n")
    notes = tmp_path / "notes.csv"
    notes.write_text("CmdletName,Comment\nInstall-TransportAgent,seen\n")
    # Sentinel's own ExchangeAdminAuditLogs rows exported as CSV stay a Log Analytics export
    sentinel = tmp_path / "ExchangeAdminAuditLogs.csv"
    sentinel.write_text("TimeGenerated [UTC],Computer,Status,Caller,TargetObject,CmdletName,CmdletParameters\n"
                        "2026-11-21T02:00:08Z,EXCH01,Success,c,A,Install-TransportAgent,-Name A\n")
    with Session(in_memory=True) as s:
        reports = {Path(r.path).name: r for r in s.load_files(list(sources.walk([tmp_path])))}
    assert reports["DeviceFileEvents.csv"].format == "mde-csv"
    assert reports["notes.csv"].format != "exchange-admin-audit"
    assert (reports["ExchangeAdminAuditLogs.csv"].format, reports["ExchangeAdminAuditLogs.csv"].total_used) == (
        "mde-csv", 1)
    forced = tmp_path / "forced"
    forced.mkdir()
    (forced / "notes.csv").write_text(notes.read_text())
    with Session(in_memory=True) as s:
        (report,) = s.load_files(list(sources.walk([forced])), "exchange-admin-audit", None)
    assert report.error == ("line 1: not an admin audit log header (needs CmdletName and RunDate; "
                            "found CmdletName, Comment)")


@pytest.mark.parametrize(("text", "iso"), [
    ("11/21/2026 2:00:08 PM", "2026-11-21T14:00:08.000000Z"),
    ("11/21/2026 12:00:08 AM", "2026-11-21T00:00:08.000000Z"),
    ("11/21/2026 12:00:08 PM", "2026-11-21T12:00:08.000000Z"),
    ("1/2/2026 23:04", "2026-01-02T23:04:00.000000Z"),
    ("21.11.2026 14:00:08", "2026-11-21T14:00:08.000000Z"),
    ("2026-11-21T14:00:08.1234567Z", "2026-11-21T14:00:08.123456Z"),
    ("2026-11-21 16:00:08+02:00", "2026-11-21T14:00:08.000000Z"),
    ("/Date(1795269608000)/", "2026-11-21T14:00:08.000000Z"),
    ("\\/Date(1795269608000+0100)\\/", "2026-11-21T14:00:08.000000Z"),
    ("13/21/2026 2:00:08 PM", None),
    ("11/21/2026 13:00:08 PM", None),
    ("21/11/2026 14:00:08", None),
    ("yesterday", None),
    ("", None),
])
def test_run_dates(text: str, iso: str | None) -> None:
    assert run_date(text) == iso


def test_parameter_forms() -> None:
    assert parameters("System.Collections.ArrayList").missing == "CmdletParameters holds only its type name"
    assert parameters("{Identity, Name}").missing == "CmdletParameters holds parameter names only"
    p = parameters("name=Sync; assemblypath=C:\\a;b.dll; Enabled=True")
    assert (p.parsed, p.missing) == ({"Name": "Sync", "AssemblyPath": "C:\\a;b.dll", "Enabled": "True"}, "")
    assert parameters({"Name": "Identity", "Value": "X"}).parsed == {"Identity": "X"}
    assert parameters([{"name": "Force", "value": True}]).text == '-Force "True"'
