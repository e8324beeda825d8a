"""DeviceLogonEvents from Security 4624/4625/4648 (and from exports), and mappings of tables no
query reads: counted, never computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import winlog_gen as g
from exhunt import sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.winlog import sql as winsql

LOGON = g.Ev(g.SECURITY, 4624, 4001, "2026-03-01T09:00:00Z", {
    "SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x3e7", "TargetUserSid": "S-1-5-21-1-2-3-1104", "TargetUserName": "exadmin",
    "TargetDomainName": "CONTOSO", "TargetLogonId": "0x2b88b1", "LogonType": "10", "LogonProcessName": "User32 ",
    "AuthenticationPackageName": "Negotiate", "WorkstationName": "ADMIN-PC", "LmPackageName": "-",
    "ProcessId": "0x2d0", "ProcessName": r"C:\Windows\System32\svchost.exe", "IpAddress": "10.1.2.3",
    "IpPort": "0"})
FAILED = g.Ev(g.SECURITY, 4625, 4002, "2026-03-01T09:01:00Z", {
    "SubjectUserSid": "S-1-0-0", "SubjectUserName": "-", "SubjectDomainName": "-", "SubjectLogonId": "0x0",
    "TargetUserSid": "S-1-0-0", "TargetUserName": "administrator", "TargetDomainName": "EXCH01",
    "Status": "0xc000006d", "FailureReason": "%%2313", "SubStatus": "0xc000006a", "LogonType": "3",
    "LogonProcessName": "NtLmSsp ", "AuthenticationPackageName": "NTLM", "WorkstationName": "KALI",
    "LmPackageName": "-", "ProcessId": "0x0", "ProcessName": "-", "IpAddress": "203.0.113.7", "IpPort": "51234"})
EXPLICIT = g.Ev(g.SECURITY, 4648, 4003, "2026-03-01T09:02:00Z", {
    "SubjectUserSid": "S-1-5-21-1-2-3-1104", "SubjectUserName": "exadmin", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x2b88b1", "LogonGuid": "{00000000-0000-0000-0000-000000000000}",
    "TargetUserName": "svc-backup", "TargetDomainName": "CONTOSO", "TargetServerName": "EXCH02.contoso.local",
    "TargetInfo": "EXCH02.contoso.local", "ProcessId": "0x1a2c", "ProcessName": r"C:\Windows\System32\runas.exe",
    "IpAddress": "-", "IpPort": "-"})
LOGOFF = g.Ev(g.SECURITY, 4634, 4004, "2026-03-01T09:03:00Z", {
    "TargetUserSid": "S-1-5-21-1-2-3-1104", "TargetUserName": "exadmin", "TargetDomainName": "CONTOSO",
    "TargetLogonId": "0x2b88b1", "LogonType": "10"})
USER_LOGOFF = g.Ev(g.SECURITY, 4647, 4005, "2026-03-01T09:04:00Z", {
    "TargetUserSid": "S-1-5-21-1-2-3-1104", "TargetUserName": "exadmin", "TargetDomainName": "CONTOSO",
    "TargetLogonId": "0x2b88b1"})
# The same event id in another channel is not a Security logon.
NOT_SECURITY = g.Ev(g.SYSMON, 4624, 4006, "2026-03-01T09:05:00Z", {"TargetUserName": "x"})
EVENTS = [LOGON, FAILED, EXPLICIT, LOGOFF, USER_LOGOFF, NOT_SECURITY]

SHOWN = ("ActionType, LogonType, AccountDomain, AccountName, AccountSid, Protocol, FailureReason, LogonId, "
         "RemoteDeviceName, RemoteIP, RemoteIPType, RemotePort, InitiatingProcessAccountDomain, "
         "InitiatingProcessAccountName, InitiatingProcessAccountSid, InitiatingProcessId, "
         "InitiatingProcessFileName, InitiatingProcessFolderPath, AdditionalFields, IsLocalAdmin, DeviceName, _record")


def _rows(session: Session, kql: str) -> list[dict[str, Any]]:
    return DuckDBBackend(session).query(kql).to_pylist()


def test_security_logons_become_device_logon_events(tmp_path: Path) -> None:
    path = g.write_jsonl(tmp_path / "security.json", [g.evtx_json(e) for e in EVENTS])
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
        rows = _rows(session, f"DeviceLogonEvents | sort by Timestamp asc | project {SHOWN}")
    assert report.used["DeviceLogonEvents"] == 3
    common = {"IsLocalAdmin": None, "DeviceName": g.HOST}
    assert rows == [
        {**common, "ActionType": "LogonSuccess", "LogonType": "RemoteInteractive", "AccountDomain": "CONTOSO",
         "AccountName": "exadmin", "AccountSid": "S-1-5-21-1-2-3-1104", "Protocol": "Negotiate", "FailureReason": "",
         "LogonId": 0x2b88b1, "RemoteDeviceName": "ADMIN-PC", "RemoteIP": "10.1.2.3", "RemoteIPType": "Private",
         "RemotePort": None, "InitiatingProcessAccountDomain": "CONTOSO", "InitiatingProcessAccountName": "EXCH01$",
         "InitiatingProcessAccountSid": "S-1-5-18", "InitiatingProcessId": 0x2d0,
         "InitiatingProcessFileName": "svchost.exe", "InitiatingProcessFolderPath": r"C:\Windows\System32\svchost.exe",
         "AdditionalFields": '{"LogonProcessName":"User32"}', "_record": "line 1"},
        {**common, "ActionType": "LogonFailed", "LogonType": "Network", "AccountDomain": "EXCH01",
         "AccountName": "administrator", "AccountSid": "", "Protocol": "NTLM",
         "FailureReason": "InvalidUserNameOrPassword", "LogonId": None, "RemoteDeviceName": "KALI",
         "RemoteIP": "203.0.113.7", "RemoteIPType": "Public", "RemotePort": 51234,
         "InitiatingProcessAccountDomain": "", "InitiatingProcessAccountName": "", "InitiatingProcessAccountSid": "",
         "InitiatingProcessId": None, "InitiatingProcessFileName": "", "InitiatingProcessFolderPath": "",
         "AdditionalFields": '{"LogonProcessName":"NtLmSsp","Status":"0xc000006d","SubStatus":"0xc000006a"}',
         "_record": "line 2"},
        {**common, "ActionType": "LogonAttempted", "LogonType": "", "AccountDomain": "CONTOSO",
         "AccountName": "svc-backup", "AccountSid": "", "Protocol": "", "FailureReason": "", "LogonId": None,
         "RemoteDeviceName": "EXCH02.contoso.local", "RemoteIP": "", "RemoteIPType": "", "RemotePort": None,
         "InitiatingProcessAccountDomain": "CONTOSO", "InitiatingProcessAccountName": "exadmin",
         "InitiatingProcessAccountSid": "S-1-5-21-1-2-3-1104", "InitiatingProcessId": 0x1a2c,
         "InitiatingProcessFileName": "runas.exe", "InitiatingProcessFolderPath": r"C:\Windows\System32\runas.exe",
         "AdditionalFields": "", "_record": "line 3"},
    ]


@pytest.mark.parametrize(("code", "reason"), [("%%2313", "InvalidUserNameOrPassword"), ("%%2310", "AccountDisabled"),
                                              ("%%2307", "AccountLocked"), ("Something new", "Something new"),
                                              ("-", "")])
def test_failure_reasons_in_defender_words(tmp_path: Path, code: str, reason: str) -> None:
    ev = g.Ev(g.SECURITY, 4625, 1, "2026-03-01T09:01:00Z", {**FAILED.data, "FailureReason": code})  # type: ignore[dict-item]
    path = g.write_jsonl(tmp_path / "failed.json", [g.evtx_json(ev)])
    with Session(in_memory=True) as session:
        session.load_files([sources.disk_file(path)], jobs=1)
        assert _rows(session, "DeviceLogonEvents | project FailureReason") == [{"FailureReason": reason}]


@pytest.mark.parametrize(("number", "name"), [("2", "Interactive"), ("3", "Network"), ("4", "Batch"),
                                              ("5", "Service"), ("7", "Unlock"), ("8", "NetworkCleartext"),
                                              ("9", "NewCredentials"), ("10", "RemoteInteractive"),
                                              ("11", "CachedInteractive"), ("0x3", "Network"), ("99", "99")])
def test_logon_type_names(tmp_path: Path, number: str, name: str) -> None:
    ev = g.Ev(g.SECURITY, 4624, 1, "2026-03-01T09:01:00Z", {**LOGON.data, "LogonType": number})  # type: ignore[dict-item]
    path = g.write_jsonl(tmp_path / "logon.json", [g.evtx_json(ev)])
    with Session(in_memory=True) as session:
        session.load_files([sources.disk_file(path)], jobs=1)
        assert _rows(session, "DeviceLogonEvents | project LogonType") == [{"LogonType": name}]


def test_a_defender_export_of_device_logon_events_loads(tmp_path: Path) -> None:
    from helpers import write_csv

    row = {"Timestamp": "2026-03-01T09:00:00Z", "DeviceName": "exch01", "ActionType": "LogonFailed",
           "LogonType": "Network", "AccountName": "administrator", "RemoteIP": "203.0.113.7", "RemotePort": "445",
           "IsLocalAdmin": "false", "LogonId": "999", "ReportId": "12"}
    path = write_csv(tmp_path / "DeviceLogonEvents.csv", "DeviceLogonEvents", [row])
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
        rows = _rows(session, "DeviceLogonEvents | project ActionType, LogonType, RemotePort, IsLocalAdmin, LogonId")
    assert (report.used["DeviceLogonEvents"], report.total_skipped) == (1, 0)
    assert rows == [{"ActionType": "LogonFailed", "LogonType": "Network", "RemotePort": 445, "IsLocalAdmin": False,
                     "LogonId": 999}]


# -- a table no query reads: its mapping is counted, not computed ------------------------------------------------

TRAP = """-- table: DeviceNetworkInfo
SELECT Time AS Timestamp, Computer AS DeviceName, error('computed although no query reads it') AS MacAddress,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind = 'security'
"""


@pytest.fixture
def trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "trap.sql").write_text(TRAP, encoding="utf-8")
    monkeypatch.setenv(winsql.MAPPINGS_ENV, str(folder))
    winsql.mappings.cache_clear()
    yield g.write_jsonl(tmp_path / "security.json", [g.evtx_json(e) for e in EVENTS])
    monkeypatch.delenv(winsql.MAPPINGS_ENV)
    winsql.mappings.cache_clear()


def test_a_mapping_of_a_table_no_query_reads_is_only_counted(trap: Path) -> None:
    with Session(in_memory=True) as session:
        session.load_only_for(["DeviceProcessEvents | project FileName"])
        (report,) = session.load_files([sources.disk_file(trap)], jobs=1)
        stored = session.run('SELECT count(*) FROM "_t_DeviceLogonEvents"')[0][0]
    # Counted as before (5 Security events; 3 of them logons), nothing stored, the trap never evaluated.
    assert (report.used["DeviceNetworkInfo"], report.used["DeviceLogonEvents"], stored) == (5, 3, 0)
    assert report.total_skipped == 0 and report.messages == []


def test_a_mapping_of_a_table_a_query_reads_is_computed(trap: Path) -> None:
    """The trap fires when its table is read: the test above can fail."""
    with Session(in_memory=True) as session:
        session.load_only_for(["DeviceNetworkInfo | project MacAddress"])
        with pytest.raises(Exception, match="computed although no query reads it"):
            session.load_files([sources.disk_file(trap)], jobs=1)


def test_the_python_mapping_gives_the_same_logon_rows(tmp_path: Path) -> None:
    """A pretty-printed JSON document goes through the Python mapping (exhunt.winlog.security.logon):
    the same rows as the SQL mapping of the same events as JSON lines."""
    import json

    docs = [g.evtx_json(e) for e in EVENTS]
    lines = g.write_jsonl(tmp_path / "lines.json", docs)
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(docs, indent=2), encoding="utf-8")
    got = []
    for path in (lines, pretty):
        with Session(in_memory=True) as session:
            session.load_files([sources.disk_file(path)], jobs=1)
            got.append([{k: v for k, v in r.items() if k != "_record"}
                        for r in _rows(session, f"DeviceLogonEvents | sort by Timestamp asc | project {SHOWN}")])
    assert len(got[0]) == 3 and got[0] == got[1]
