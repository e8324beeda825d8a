"""Sentinel's WindowsEvent table (Azure Monitor Agent) read from hand-written rows: each channel the
simulator writes maps as its evtx_dump record does; EventData as an object, as JSON text, or null with
the record's XML in RawEventData; unnamed data (the Exchange cmdlet log) as {"Data": [...]} or a list;
bad lines named; attacker text kept as inert text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport
from winlog_gen import write_jsonl

HOST = "EXCH01.contoso.local"
DLL = r"C:\ProgramData\Sync\Sync.dll"
PARAMS = f'-Name "Sync Agent" -TransportAgentFactory "Sync.Factory" -AssemblyPath "{DLL}"'
#: The MSExchange Management event 6 of a failed Install-TransportAgent, its data unnamed.
CMDLET_6 = ["Install-TransportAgent", PARAMS, "contoso.local/Users/mallory", "S-1-5-21-1-2-3-1105",
            "S-1-5-21-1-2-3-1105(contoso.local/Users/mallory)", "Remote-ManagementShell-Unknown",
            "8372 w3wp#MSExchangePowerShellAppPool", "", "6", "00:00:00.3125000", "View Entire Forest: 'False'",
            "Microsoft.Exchange.Data.Transport.TransportAgentException: The assembly file can't be found."]


def row(channel: str, provider: str, event_id: int, record: int, minute: int, data: Any,
        **extra: Any) -> dict[str, Any]:
    """A WindowsEvent row with the columns of the Azure Monitor table reference."""
    return {
        "TenantId": "0b5d3c1e-0000-0000-0000-000000000000", "TimeGenerated": f"2026-03-01T10:{minute:02d}:00.1234567Z",
        "Computer": HOST, "Channel": channel, "Provider": provider, "EventID": event_id, "EventLevel": 4,
        "EventLevelName": "Information", "EventOriginId": "9a0e", "EventRecordId": str(record),
        "Keywords": "0x8000000000000000", "Opcode": "0", "Task": 0, "Version": 0, "SystemProcessId": 4120,
        "SystemThreadId": 5000, "SystemUserId": "S-1-5-18", "Correlation": "", "ManagementGroupName": "",
        "EventData": data, "RawEventData": None, "Type": "WindowsEvent",
        "_ResourceId": "/subscriptions/x/resourcegroups/y/providers/microsoft.hybridcompute/machines/exch01", **extra,
    }


SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
SECURITY = ("Security", "Microsoft-Windows-Security-Auditing")
PS = ("Microsoft-Windows-PowerShell/Operational", "Microsoft-Windows-PowerShell")
EXCHANGE = ("MSExchange Management", "MSExchange CmdletLogs")
SCM = ("System", "Service Control Manager")
EDGE = r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe"


def _rows() -> list[dict[str, Any]]:
    xml = ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider '
           'Name="MSExchange CmdletLogs"/><EventID>1</EventID></System><EventData><Data>Enable-TransportAgent</Data>'
           '<Data>-Identity "Sync Agent"</Data><Data>contoso.local/Users/mallory</Data></EventData></Event>')
    return [
        row(*SYSMON, 1, 101, 0, {
            "UtcTime": "2026-03-01 10:00:00.123", "ProcessGuid": "{a}", "ProcessId": "6200",
            "Image": r"C:\Windows\System32\cmd.exe", "CommandLine": "cmd.exe /c whoami",
            "User": r"NT AUTHORITY\NETWORK SERVICE",
            "IntegrityLevel": "System", "Hashes": "SHA1=AB,MD5=CD", "ParentProcessId": "4100", "ParentImage": EDGE,
            "ParentCommandLine": f'"{EDGE}"', "OriginalFileName": "Cmd.Exe", "LogonId": "0x3e4"}),
        row(*SECURITY, 4688, 102, 1, {
            "SubjectUserSid": "S-1-5-20", "SubjectUserName": "EXCH01$", "SubjectDomainName": "CONTOSO",
            "SubjectLogonId": "0x3e4", "NewProcessId": "0x1838", "NewProcessName": r"C:\Windows\System32\cmd.exe",
            "TokenElevationType": "%%1936", "ProcessId": "0x1004", "CommandLine": "cmd.exe /c whoami",
            "TargetUserSid": "S-1-0-0", "ParentProcessName": EDGE, "MandatoryLabel": "S-1-16-16384"}),
        row(*PS, 4104, 103, 2, {"MessageNumber": "1", "MessageTotal": "1",
                                "ScriptBlockText": f"Install-TransportAgent {PARAMS}",
                                "ScriptBlockId": "1b2c", "Path": r"C:\Users\mallory\i.ps1"}),
        row(*EXCHANGE, 6, 104, 3, {"Data": CMDLET_6}),
        row(*EXCHANGE, 6, 105, 4, CMDLET_6),
        row(*EXCHANGE, 6, 106, 5, json.dumps({"Data": CMDLET_6})),
        row(*EXCHANGE, 1, 107, 6, None, RawEventData=xml),
        row(*SCM, 7036, 108, 7, {"param1": "Microsoft Exchange Transport", "param2": "running",
                                 "Binary": "4D0053004500"}),
    ]


def load(path: Path) -> tuple[Session, FileReport]:
    s = Session(in_memory=True)
    (report,) = s.load_files(list(sources.walk([path])))
    return s, report


def test_every_channel_maps_from_windowsevent_rows(tmp_path: Path) -> None:
    s, report = load(write_jsonl(tmp_path / "WindowsEvent.json", _rows()))
    try:
        assert (report.format, report.read, report.total_skipped, report.error) == ("sentinel-windows", 8, 0, None)
        assert s.run('SELECT FileName, ProcessCommandLine, InitiatingProcessFileName, ProcessId, '
                     'InitiatingProcessId, ProcessIntegrityLevel FROM "_t_DeviceProcessEvents" ORDER BY ALL') == [
            ("cmd.exe", "cmd.exe /c whoami", "EdgeTransport.exe", 6200, 4100, "System"),
            ("cmd.exe", "cmd.exe /c whoami", "EdgeTransport.exe", 6200, 4100, "System"),
        ]
        assert s.run('SELECT EventID, NewProcessName, SubjectUserName FROM "_t_SecurityEvent"') == [
            (4688, r"C:\Windows\System32\cmd.exe", "EXCH01$")]
        got = s.run('SELECT ActionType, json_extract_string(AdditionalFields, \'$.Command\') '
                    'FROM "_t_DeviceEvents" ORDER BY ALL')
        assert ("PowerShellCommand", "Install-TransportAgent") in got
        # the three forms of unnamed data, and a record whose data is only in its XML
        audit = s.run('SELECT EventID, Status, CmdletName, json_extract_string(Parameters, \'$.AssemblyPath\'), '
                      'Caller, HostProcess, ErrorMessage, TargetObject FROM "_t_ExchangeAdminAuditLogs" ORDER BY ALL')
        failed = (6, "Failure", "Install-TransportAgent", DLL, "contoso.local/Users/mallory",
                  "8372 w3wp#MSExchangePowerShellAppPool", CMDLET_6[-1], "Sync Agent")
        assert audit == [(1, "Success", "Enable-TransportAgent", None, "contoso.local/Users/mallory", "", "",
                          "Sync Agent"), failed, failed, failed]
        # every record's Event row: the System columns come from the WindowsEvent columns
        events = s.run('SELECT EventID, EventLog, Source, EventLevel, UserName, EventCategory FROM "_t_Event" '
                       'WHERE EventID = 7036')
        assert events == [(7036, "System", "Service Control Manager", 4, "S-1-5-18", 0)]
        (xml,) = s.run('SELECT EventData FROM "_t_Event" WHERE EventID = 7036')[0]
        assert '<Data Name="param1">Microsoft Exchange Transport</Data>' in xml
        (params,) = s.run('SELECT ParameterXml FROM "_t_Event" WHERE EventID = 6 LIMIT 1')[0]
        assert params.startswith("<Param>Install-TransportAgent</Param><Param>-Name &quot;Sync Agent&quot;")
    finally:
        s.close()


def test_the_data_column_of_an_export_is_read_too(tmp_path: Path) -> None:
    """An export that names the dynamic column `Data` (not the reference's EventData) is read the same."""
    docs = [{k if k != "EventData" else "Data": v for k, v in r.items()} for r in _rows()[3:5]]
    s, report = load(write_jsonl(tmp_path / "we.json", docs))
    try:
        assert report.total_skipped == 0
        assert s.run('SELECT CmdletName, Status FROM "_t_ExchangeAdminAuditLogs"') == [
            ("Install-TransportAgent", "Failure")] * 2
    finally:
        s.close()


def test_bad_lines_are_named_and_the_rest_read(tmp_path: Path) -> None:
    good = _rows()[3]
    path = tmp_path / "we.json"
    path.write_text("\n".join([json.dumps(good), "[1, 2]", '{"Type": "WindowsEvent", "EventID": 6,', "42",
                               json.dumps(row(*EXCHANGE, 6, 200, 9, "{not json")), json.dumps(good)]) + "\n")
    s, report = load(path)
    try:
        assert (report.read, report.total_skipped) == (6, 3)
        assert sorted(m.split(": skipped: ")[0].rsplit(":", 1)[1] for m in report.messages) == [
            "line 2", "line 3", "line 4"]
        # EventData that is not JSON: the event is kept (its Event row), with no data to map
        assert s.run('SELECT count(*) FROM "_t_Event" WHERE EventID = 6') == [(3,)]
        assert s.run('SELECT count(*) FROM "_t_ExchangeAdminAuditLogs"') == [(2,)]
    finally:
        s.close()


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "@SUM(1)"])
def test_formula_like_values_stay_inert(tmp_path: Path, value: str) -> None:
    data = list(CMDLET_6)
    data[1] = f'-Name "{value}"'
    write_jsonl(tmp_path / "we.json", [row(*EXCHANGE, 6, 300, 0, {"Data": data})])
    s, _ = load(tmp_path)
    try:
        assert s.run('SELECT CmdletParameters, TargetObject FROM "_t_ExchangeAdminAuditLogs"') == [
            (f'-Name "{value}"', value)]
    finally:
        s.close()
    code, out, err = run_cli(["query", "-q", "-f", "csv", "ExchangeAdminAuditLogs | project TargetObject",
                              str(tmp_path)])
    assert code == 0, err
    assert list(csv.reader(io.StringIO(out)))[1] == [f"'{value}"]  # a spreadsheet shows it as text
