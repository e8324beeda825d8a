"""Each Windows event mapping, field by field, on events the tests write themselves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exhunt.winlog import Mapper
from exhunt.winlog.common import report_id
from exhunt.winlog.exchange import parse_parameters
from exhunt.winlog.forms import from_evtx_json
from exhunt.winlog.powershell import PowerShell, cmdlets
from winlog_gen import (
    AGENTS,
    BLOCK,
    EX1,
    EX6,
    HOST,
    PS800,
    PS4103,
    PS4104_PARTS,
    SEC4688,
    SYSMON1,
    SYSMON7,
    SYSMON11,
    SYSMON13,
    Ev,
    evtx_json,
)

Rows = list[tuple[str, dict[str, Any]]]


def mapped(*events: Ev, mapper: Mapper | None = None) -> Rows:
    m = mapper or Mapper("test.json")
    out: Rows = []
    for e in events:
        ev = from_evtx_json(evtx_json(e))
        assert ev is not None
        ev.where = f"record {e.record_id}"
        out += m.map(ev)
    return out + m.finish()


def only(rows: Rows, table: str) -> list[dict[str, Any]]:
    return [r for t, r in rows if t == table]


def rid(e: Ev) -> int:
    return report_id(e.computer.lower(), e.source[0].lower(), e.record_id)


def test_sysmon_1_process_created() -> None:
    (row,) = only(mapped(SYSMON1), "DeviceProcessEvents")
    assert row == {
        "Timestamp": "2026-03-01T10:00:00.1234567Z", "DeviceName": HOST, "ReportId": rid(SYSMON1),
        "_record": "record 101", "ActionType": "ProcessCreated", "FileName": "powershell.exe",
        "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "SHA1": "a" * 40, "MD5": "b" * 32, "SHA256": "c" * 64,
        "ProcessVersionInfoCompanyName": "Microsoft Corporation", "ProcessVersionInfoProductName": "Microsoft Windows",
        "ProcessVersionInfoProductVersion": "10.0.17763.1", "ProcessVersionInfoOriginalFileName": "PowerShell.EXE",
        "ProcessVersionInfoFileDescription": "Windows PowerShell", "ProcessId": 4242,
        "ProcessCommandLine": "powershell.exe -NoProfile -Command Install-TransportAgent -Name X",
        "ProcessIntegrityLevel": "High", "ProcessCreationTime": "2026-03-01 10:00:00.120Z",
        "AccountDomain": "CONTOSO", "AccountName": "exadmin", "LogonId": 999,
        "InitiatingProcessAccountDomain": "CONTOSO", "InitiatingProcessAccountName": "exadmin",
        "InitiatingProcessFileName": "explorer.exe", "InitiatingProcessFolderPath": r"C:\Windows\explorer.exe",
        "InitiatingProcessId": 1000, "InitiatingProcessCommandLine": r"C:\Windows\Explorer.EXE",
        "AdditionalFields": json.dumps({
            "ProcessGuid": "{11111111-0000-0000-0000-000000000001}",
            "ParentProcessGuid": "{11111111-0000-0000-0000-000000000002}",
            "LogonGuid": "{11111111-0000-0000-0000-0000000000aa}", "CurrentDirectory": "C:\\Windows\\system32\\",
            "TerminalSessionId": "1"}, separators=(",", ":")),
    }


def test_sysmon_7_image_load_and_certificate() -> None:
    rows = mapped(SYSMON7)
    (load,) = only(rows, "DeviceImageLoadEvents")
    assert load == {
        "Timestamp": "2026-03-01T10:05:00Z", "DeviceName": HOST, "ReportId": rid(SYSMON7), "_record": "record 107",
        "ActionType": "ImageLoaded", "FileName": "Microsoft.Exchange.Transport.Agent.Hygiene.dll",
        "FolderPath": AGENTS + r"\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
        "SHA1": "0123456789abcdef0123456789abcdef01234567", "MD5": "0123456789abcdef0123456789abcdef", "SHA256": "",
        "InitiatingProcessFolderPath": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe",
        "InitiatingProcessFileName": "EdgeTransport.exe", "InitiatingProcessId": 5000,
        "InitiatingProcessAccountDomain": "NT AUTHORITY", "InitiatingProcessAccountName": "NETWORK SERVICE",
    }
    (cert,) = only(rows, "DeviceFileCertificateInfo")
    assert cert == {
        "Timestamp": "2026-03-01T10:05:00Z", "DeviceName": HOST, "ReportId": rid(SYSMON7), "_record": "record 107",
        "SHA1": "0123456789abcdef0123456789abcdef01234567", "IsSigned": False, "Signer": "", "IsTrusted": False,
    }


def test_sysmon_7_signed_microsoft_and_same_certificate_once() -> None:
    signed = Ev(SYSMON7.source, 7, 108, "2026-03-01T10:05:01Z", {
        **SYSMON7.data, "Signed": "true", "Signature": "Microsoft Corporation", "SignatureStatus": "Valid"})  # type: ignore[dict-item]
    again = Ev(SYSMON7.source, 7, 109, "2026-03-01T10:05:02Z", signed.data)
    certs = only(mapped(signed, again), "DeviceFileCertificateInfo")
    assert [(c["IsSigned"], c["Signer"], c["IsTrusted"], c["_record"]) for c in certs] == [
        (True, "Microsoft Corporation", True, "record 108")]


def test_sysmon_11_file_created() -> None:
    (row,) = only(mapped(SYSMON11), "DeviceFileEvents")
    assert row == {
        "Timestamp": "2026-03-01T10:01:00Z", "DeviceName": HOST, "ReportId": rid(SYSMON11), "_record": "record 111",
        "ActionType": "FileCreated", "FileName": "msinp.dll", "FolderPath": AGENTS + r"\Hygiene\msinp.dll",
        "SHA1": "", "SHA256": "", "MD5": "",
        "AdditionalFields": '{"CreationUtcTime":"2026-03-01 10:01:00.000",'
                            '"ProcessGuid":"{11111111-0000-0000-0000-000000000004}"}',
        "InitiatingProcessFolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessId": 4242,
        "InitiatingProcessAccountDomain": "CONTOSO", "InitiatingProcessAccountName": "exadmin",
    }


def test_sysmon_23_file_deleted() -> None:
    deleted = Ev(SYSMON11.source, 23, 123, "2026-03-01T11:00:00Z", {
        "TargetFilename": AGENTS + r"\x.dll", "Image": r"C:\Windows\explorer.exe", "ProcessId": "9",
        "Hashes": "SHA256=ABCD", "IsExecutable": "true", "User": "CONTOSO\\a"})
    (row,) = only(mapped(deleted), "DeviceFileEvents")
    assert (row["ActionType"], row["FileName"], row["SHA256"], row["AdditionalFields"]) == (
        "FileDeleted", "x.dll", "abcd", '{"IsExecutable":"true"}')


def test_sysmon_13_registry_value_set() -> None:
    (row,) = only(mapped(SYSMON13), "DeviceRegistryEvents")
    assert row == {
        "Timestamp": "2026-03-01T10:02:00Z", "DeviceName": HOST, "ReportId": rid(SYSMON13), "_record": "record 113",
        "ActionType": "RegistryValueSet",
        "RegistryKey": r"HKEY_LOCAL_MACHINE\System\CurrentControlSet\Services\MSExchangeTransport",
        "RegistryValueName": "Start", "RegistryValueData": "DWORD (0x00000002)", "RegistryValueType": "Dword",
        "InitiatingProcessFolderPath": r"C:\Windows\system32\services.exe", "InitiatingProcessFileName": "services.exe",
        "InitiatingProcessId": 700, "InitiatingProcessAccountDomain": "NT AUTHORITY",
        "InitiatingProcessAccountName": "SYSTEM",
    }


@pytest.mark.parametrize(("etype", "target", "action", "key", "value"), [
    ("CreateKey", r"\REGISTRY\MACHINE\SOFTWARE\X", "RegistryKeyCreated", r"HKEY_LOCAL_MACHINE\SOFTWARE\X", ""),
    ("DeleteValue", r"HKU\S-1\Run\evil", "RegistryValueDeleted", r"HKEY_USERS\S-1\Run", "evil"),
])
def test_sysmon_12_registry_keys(etype: str, target: str, action: str, key: str, value: str) -> None:
    e = Ev(SYSMON13.source, 12, 112, "2026-03-01T10:02:00Z", {"EventType": etype, "TargetObject": target})
    (row,) = only(mapped(e), "DeviceRegistryEvents")
    assert (row["ActionType"], row["RegistryKey"], row["RegistryValueName"]) == (action, key, value)


def test_sysmon_3_network() -> None:
    e = Ev(SYSMON1.source, 3, 103, "2026-03-01T10:02:00Z", {
        "Image": r"C:\x\EdgeTransport.exe", "ProcessId": "5", "User": "NT AUTHORITY\\SYSTEM", "Protocol": "tcp",
        "Initiated": "true", "SourceIp": "10.0.0.5", "SourcePort": "50000", "DestinationIp": "203.0.113.9",
        "DestinationHostname": "c2.example", "DestinationPort": "443"})
    (row,) = only(mapped(e), "DeviceNetworkEvents")
    assert {k: row[k] for k in ("ActionType", "LocalIP", "LocalPort", "RemoteIP", "RemotePort", "RemoteUrl",
                                "Protocol", "InitiatingProcessFileName")} == {
        "ActionType": "ConnectionSuccess", "LocalIP": "10.0.0.5", "LocalPort": 50000, "RemoteIP": "203.0.113.9",
        "RemotePort": 443, "RemoteUrl": "c2.example", "Protocol": "Tcp",
        "InitiatingProcessFileName": "EdgeTransport.exe"}


def test_security_4688_process_created_and_security_event() -> None:
    rows = mapped(SEC4688)
    (row,) = only(rows, "DeviceProcessEvents")
    assert row == {
        "Timestamp": "2026-03-01T10:03:00Z", "DeviceName": HOST, "ReportId": rid(SEC4688), "_record": "record 4688",
        "ActionType": "ProcessCreated", "FileName": "cmd.exe", "FolderPath": r"C:\Windows\System32\cmd.exe",
        "ProcessId": 0x2D54, "ProcessCommandLine": "cmd.exe /c whoami",
        "ProcessTokenElevation": "TokenElevationTypeFull", "ProcessIntegrityLevel": "High",
        "AccountDomain": "CONTOSO", "AccountName": "exadmin", "AccountSid": "S-1-5-21-1-2-3-1104", "LogonId": 0x2B88B1,
        "InitiatingProcessAccountDomain": "CONTOSO", "InitiatingProcessAccountName": "exadmin",
        "InitiatingProcessAccountSid": "S-1-5-21-1-2-3-1104", "InitiatingProcessLogonId": 0x2B88B1,
        "InitiatingProcessId": 0x31F4,
        "InitiatingProcessFolderPath": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe",
        "InitiatingProcessFileName": "EdgeTransport.exe",
    }
    (sec,) = only(rows, "SecurityEvent")
    assert {k: sec[k] for k in ("TimeGenerated", "Computer", "EventID", "Activity", "Account", "NewProcessName",
                                "CommandLine", "ParentProcessName", "Process", "Type")} == {
        "TimeGenerated": "2026-03-01T10:03:00Z", "Computer": HOST, "EventID": 4688,
        "Activity": "4688 - A new process has been created.", "Account": "CONTOSO\\exadmin",
        "NewProcessName": r"C:\Windows\System32\cmd.exe", "CommandLine": "cmd.exe /c whoami",
        "ParentProcessName": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe",
        "Process": "cmd.exe", "Type": "SecurityEvent"}
    assert '<Data Name="NewProcessId">0x2d54</Data>' in sec["EventData"]


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["AdditionalFields"])  # type: ignore[no-any-return]


def test_4104_multi_part_reassembled_one_row_per_cmdlet() -> None:
    # parts arrive out of order; nothing is emitted until the block is whole
    m = Mapper("t.json")
    rows: Rows = []
    for e in (PS4104_PARTS[2], PS4104_PARTS[0]):
        ev = from_evtx_json(evtx_json(e))
        assert ev is not None
        ev.where = f"record {e.record_id}"
        rows += m.map(ev)
    assert only(rows, "DeviceEvents") == []
    rows = mapped(PS4104_PARTS[1], mapper=m)
    events = only(rows, "DeviceEvents")
    script = "".join(p.data["ScriptBlockText"] for p in PS4104_PARTS)  # type: ignore[call-overload]
    assert [_fields(r) for r in events] == [
        {"Command": c, "ScriptBlockText": script,
         "Channel": "Microsoft-Windows-PowerShell/Operational", "EventId": 4104,
         "ScriptBlockId": BLOCK, "Path": r"C:\Users\exadmin\msinp.ps1"}
        for c in ("Copy-Item", "Install-TransportAgent", "Enable-TransportAgent")]
    # the block is dated and identified by the first part that arrived (part 3 here)
    assert {(r["ActionType"], r["Timestamp"], r["_record"], r["DeviceName"]) for r in events} == {
        ("PowerShellCommand", "2026-03-01T10:04:02Z", "record 203", HOST)}


def test_4104_incomplete_block_flushed_at_end_and_memory_bounded() -> None:
    rows = mapped(PS4104_PARTS[0])
    (row,) = [r for r in only(rows, "DeviceEvents")]
    assert _fields(row)["Incomplete"] is True and _fields(row)["PartsSeen"] == 1 and _fields(row)["PartsTotal"] == 3
    ps = PowerShell(max_blocks=2)
    for i in range(5):
        ev = from_evtx_json(evtx_json(Ev(PS_OP_SRC, 4104, 900 + i, "2026-03-01T10:00:00Z", {
            "MessageNumber": 1, "MessageTotal": 2, "ScriptBlockText": "Get-Item x", "ScriptBlockId": f"b{i}",
            "Path": ""})))
        assert ev is not None
        ps.map_event(ev, {"Timestamp": ev.time})
        assert len(ps._open) <= 2


PS_OP_SRC = PS4104_PARTS[0].source


def test_4103_module_logging() -> None:
    (row,) = only(mapped(PS4103), "DeviceEvents")
    assert _fields(row) == {"Command": "Get-TransportAgent",
                            "ScriptBlockText": 'CommandInvocation(Get-TransportAgent): "Get-TransportAgent"\r\n',
                            "Channel": "Microsoft-Windows-PowerShell/Operational", "EventId": 4103,
                            "ScriptBlockId": "", "Path": ""}
    assert (row["InitiatingProcessFileName"], row["InitiatingProcessAccountName"], row["ActionType"]) == (
        "powershell.exe", "exadmin", "PowerShellCommand")


def test_800_pipeline_execution() -> None:
    (row,) = only(mapped(PS800), "DeviceEvents")
    assert _fields(row) == {"Command": "Set-TransportAgent",
                            "ScriptBlockText": "Set-TransportAgent -Identity X -Priority 1",
                            "Channel": "Windows PowerShell", "EventId": 800, "ScriptBlockId": "", "Path": ""}
    assert row["InitiatingProcessFolderPath"] == r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"


def test_cmdlet_extraction_uses_approved_verbs_only() -> None:
    assert cmdlets("get-item x | Content-Type: a; Invoke-Expression $a; get-ITEM y; utf-8 Not-AVerb") == [
        "get-item", "Invoke-Expression"]


def test_exchange_management_1_success() -> None:
    (row,) = only(mapped(EX1), "ExchangeAdminAuditLogs")
    assert row == {
        "TimeGenerated": "2026-03-01T10:08:00Z", "Computer": HOST, "EventID": 1, "Status": "Success",
        "Caller": "contoso.local/Users/exadmin", "TargetObject": "Content Filter Agent2",
        "CmdletName": "Install-TransportAgent", "CmdletParameters": EX1.data[1],
        "Parameters": json.dumps({
            "Name": "Content Filter Agent2",
            "TransportAgentFactory": "Microsoft.Exchange.Transport.Agent.ContentFilter.ContentFilterAgentFactory",
            "AssemblyPath": AGENTS + r"\Hygiene\msinp.dll", "TransportService": "Hub", "Priority": "1",
        }, separators=(",", ":")),
        "RunspaceType": "Remote-ManagementShell-Unknown", "HostProcess": "8372 w3wp#MSExchangePowerShellAppPool",
        "ErrorMessage": "", "EventData": json.dumps(EX1.data, separators=(",", ":")), "_record": "record 301",
        # the columns of Sentinel's Exchange parser (exhunt's sensitive-cmdlet list, no VIP watchlist)
        "IsVIP": False, "canonicalName": "", "displayName": "", "distinguishedName": "", "objectGUID": "",
        "objectSID": "", "sAMAccountName": "", "userPrincipalName": "", "ESIEnvironment": "Unknown-contoso.local",
        "IsSenstiveCmdlet": True, "IsRestrictedCmdLet": False,
        "ExtractedParameters": '["-name","-transportagentfactory","-assemblypath","-transportservice","-priority"]',
        "RestrictedParameters": "[]", "IsSenstiveCmdletParameters": False, "IsSensitive": True, "UserOriented": "No",
    }


def test_exchange_management_6_failure_keeps_error() -> None:
    (row,) = only(mapped(EX6), "ExchangeAdminAuditLogs")
    assert (row["Status"], row["EventID"], row["ErrorMessage"], json.loads(row["Parameters"])["AssemblyPath"]) == (
        "Failure", 6, "Microsoft.Exchange.Data.InvalidAgentAssemblyPathException: UNC file paths can't be used.",
        r"\\srv\share\a.dll")


def test_wec_forwarded_record_with_string_system_fields() -> None:
    doc = evtx_json(EX1)
    system = doc["Event"]["System"]
    system["EventID"] = {"#attributes": {"Qualifiers": "16384"}, "#text": "1"}
    system["Level"], system["Task"], system["EventRecordID"] = "4", "1", "3229"
    system["Computer"] = "WEC.contoso.local"
    doc["Event"]["EventData"]["Data"]["#text"][10] = "Afficher la forêt entière : 'False'"
    ev = from_evtx_json(doc)
    assert ev is not None and (ev.event_id, ev.level, ev.record_id, ev.qualifiers) == (1, 4, 3229, 16384)
    rows = Mapper("wec.evtx").map(ev)
    (audit,) = only(rows, "ExchangeAdminAuditLogs")
    assert (audit["CmdletName"], audit["Computer"], audit["Status"]) == (
        "Install-TransportAgent", "WEC.contoso.local", "Success")
    (event,) = only(rows, "Event")
    assert (event["EventID"], event["EventLevel"], event["EventLevelName"], event["EventLog"]) == (
        1, 4, "Information", "MSExchange Management")
    assert "Afficher la forêt entière" in event["RenderedDescription"]


@pytest.mark.parametrize(("text", "expected"), [
    ('-Identity "a b" -Force', {"Identity": "a b", "Force": "True"}),
    ("-identity X -priority 3", {"Identity": "X", "Priority": "3"}),
    ('-Url "x" -Html "<a href="y">" -Name n', {"Url": "x", "Html": '<a href="y">', "Name": "n"}),
    ("{MailboxServer=EX2, Identity=DAG1}", {"MailboxServer": "EX2", "Identity": "DAG1"}),
    ("", {}),
])
def test_exchange_parameter_parsing(text: str, expected: dict[str, str]) -> None:
    assert parse_parameters(text) == expected


def test_transport_application_events_reach_event_table_with_text() -> None:
    e7001 = Ev(("Application", "MSExchangeTransport"), 7001, 501, "2026-03-01T12:00:00Z", [
        "Failed to create type 'Evil.Factory' from assembly 'C:\\agents\\evil.dll' due to error "
        "'Invalid agent assembly path.'"], level=4)
    e1050 = Ev(("Application", "MSExchange Extensibility"), 1050, 502, "2026-03-01T12:01:00Z",
               ["Evil Agent", "90000", "OnEndOfData"], level=3)
    events = only(mapped(e7001, e1050), "Event")
    assert [(r["Source"], r["EventID"], r["EventLevelName"], r["RenderedDescription"]) for r in events] == [
        ("MSExchangeTransport", 7001, "Information", e7001.data[0]),
        ("MSExchange Extensibility", 1050, "Warning", "Evil Agent\n90000\nOnEndOfData"),
    ]
    assert events[1]["ParameterXml"] == "<Param>Evil Agent</Param><Param>90000</Param><Param>OnEndOfData</Param>"
