"""SecurityEvent carries every documented Log Analytics column, each filled from the EventData
field of its name (schema/windows/security-event.sql, `-- fill: EventData`), typed."""

from __future__ import annotations

import json
from pathlib import Path

import winlog_gen as g
from exhunt import schema, sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session

REGISTRY = g.Ev(g.SECURITY, 4657, 7001, "2026-03-01T09:00:00Z", {
    "SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x3e7", "ObjectName": r"\REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Services\MSExchangeTransport",
    "ObjectValueName": "ImagePath", "HandleId": "0x1f4", "OperationType": "%%1905", "OldValueType": "%%1873",
    "OldValue": r"C:\Exchange\Bin\MSExchangeTransport.exe", "NewValueType": "%%1873",
    "NewValue": r"C:\Users\Public\t.exe", "ProcessId": "0x1a2c", "ProcessName": r"C:\Windows\regedit.exe"})
ACCESS = g.Ev(g.SECURITY, 4663, 7002, "2026-03-01T09:01:00Z", {
    "SubjectUserSid": "S-1-5-21-1-2-3-1104", "SubjectUserName": "exadmin", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x2b88b1", "ObjectServer": "Security", "ObjectType": "File",
    "ObjectName": r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\Shared\agents.config",
    "HandleId": "0x2c8", "AccessList": "%%4417", "AccessMask": "0x2", "ProcessId": "0x1a2c",
    "ProcessName": r"C:\Windows\System32\notepad.exe", "ResourceAttributes": "S:AI"})
SERVICE = g.Ev(g.SECURITY, 4697, 7003, "2026-03-01T09:02:00Z", {
    "SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x3e7", "ServiceName": "updsvc", "ServiceFileName": r"C:\Windows\Temp\u.exe",
    "ServiceType": "0x10", "ServiceStartType": "2", "ServiceAccount": "LocalSystem"})
LOGON = g.Ev(g.SECURITY, 4624, 7004, "2026-03-01T09:03:00Z", {
    "TargetUserSid": "S-1-5-21-1-2-3-1104", "TargetUserName": "exadmin", "TargetDomainName": "CONTOSO",
    "LogonType": "3", "LogonProcessName": "NtLmSsp ", "AuthenticationPackageName": "NTLM", "KeyLength": "128",
    "LogonGuid": "{00000000-0000-0000-0000-000000000000}", "ElevatedToken": "%%1842", "IpAddress": "10.1.2.3"})


def _load(tmp_path: Path, pretty: bool = False) -> Session:
    docs = [g.evtx_json(e) for e in (REGISTRY, ACCESS, SERVICE, LOGON)]
    if pretty:  # a JSON document: the Python mapping (exhunt.winlog.security.security_event)
        path = tmp_path / "security.json"
        path.write_text(json.dumps(docs, indent=1), encoding="utf-8")
    else:
        path = g.write_jsonl(tmp_path / "security.jsonl", docs)
    session = Session(in_memory=True)
    session.load_files([sources.disk_file(path)], jobs=1)
    return session


def test_security_event_has_every_documented_column() -> None:
    table = schema.table("SecurityEvent")
    names = table.names
    assert len(names) == 214 and len({n.lower() for n in names}) == 214
    for name, kql in (("AccessMask", "string"), ("NewValue", "string"), ("AccountDomain", "string"),
                      ("ServiceStartType", "int"), ("KeyLength", "int"), ("ErrorCode", "int"),
                      ("LogonTypeName", "string"), ("SubStatus", "string")):
        column = table.column(name)
        assert column is not None and column.kql_type == kql, name


QUERY = ("SecurityEvent | sort by TimeGenerated asc | project EventID, AccessMask, ObjectName, ObjectValueName, "
         "OldValue, NewValue, OperationType, HandleId, ObjectServer, ServiceStartType, ServiceType, ServiceAccount, "
         "KeyLength, LogonTypeName, LogonProcessName, AuthenticationPackageName, ElevatedToken, LogonGuid, "
         "ProcessName, AccountDomain, SubStatus")
EMPTY = {"AccessMask": "", "ObjectName": "", "ObjectValueName": "", "OldValue": "", "NewValue": "",
         "OperationType": "", "HandleId": "", "ObjectServer": "", "ServiceStartType": None, "ServiceType": "",
         "ServiceAccount": "", "KeyLength": None, "LogonTypeName": "", "LogonProcessName": "",
         "AuthenticationPackageName": "", "ElevatedToken": "", "LogonGuid": "", "ProcessName": "",
         "AccountDomain": "", "SubStatus": ""}
WANT = [
    {**EMPTY, "EventID": 4657, "ObjectName": REGISTRY.data["ObjectName"], "ObjectValueName": "ImagePath",  # type: ignore[call-overload]
     "OldValue": r"C:\Exchange\Bin\MSExchangeTransport.exe", "NewValue": r"C:\Users\Public\t.exe",
     "OperationType": "%%1905", "HandleId": "0x1f4", "ProcessName": r"C:\Windows\regedit.exe"},
    {**EMPTY, "EventID": 4663, "AccessMask": "0x2", "ObjectName": ACCESS.data["ObjectName"],  # type: ignore[call-overload]
     "HandleId": "0x2c8", "ObjectServer": "Security", "ProcessName": r"C:\Windows\System32\notepad.exe"},
    {**EMPTY, "EventID": 4697, "ServiceStartType": 2, "ServiceType": "0x10", "ServiceAccount": "LocalSystem"},
    {**EMPTY, "EventID": 4624, "KeyLength": 128, "LogonTypeName": "3 - Network", "LogonProcessName": "NtLmSsp ",
     "AuthenticationPackageName": "NTLM", "ElevatedToken": "%%1842",
     "LogonGuid": "{00000000-0000-0000-0000-000000000000}"},
]


def test_columns_are_filled_from_event_data_of_their_name(tmp_path: Path) -> None:
    with _load(tmp_path) as session:
        assert DuckDBBackend(session).query(QUERY).to_pylist() == WANT


def test_the_python_mapping_fills_the_same_columns(tmp_path: Path) -> None:
    with _load(tmp_path, pretty=True) as session:
        assert DuckDBBackend(session).query(QUERY).to_pylist() == WANT
