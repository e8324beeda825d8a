"""DeviceInfo, DeviceNetworkInfo and IdentityInfo: Defender exports of each load with their types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exhunt import sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from helpers import write_ah_api, write_csv

ROWS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "DeviceInfo": (
        {"Timestamp": "2026-03-01T09:00:00Z", "DeviceId": "d1", "DeviceName": "exch01.contoso.local",
         "OSPlatform": "WindowsServer2019", "OSBuild": "17763", "IsAzureADJoined": "false",
         "LoggedOnUsers": '[{"UserName":"exadmin","DomainName":"CONTOSO"}]', "IsInternetFacing": "true",
         "MachineGroup": "Exchange", "ReportId": "5"},
        "DeviceInfo | project DeviceName, OSPlatform, OSBuild, IsAzureADJoined, IsInternetFacing, MachineGroup, "
        "User = tostring(parse_json(LoggedOnUsers)[0].UserName)",
        {"DeviceName": "exch01.contoso.local", "OSPlatform": "WindowsServer2019", "OSBuild": 17763,
         "IsAzureADJoined": False, "IsInternetFacing": True, "MachineGroup": "Exchange", "User": "exadmin"}),
    "DeviceNetworkInfo": (
        {"Timestamp": "2026-03-01T09:00:00Z", "DeviceId": "d1", "DeviceName": "exch01.contoso.local",
         "NetworkAdapterName": "Ethernet0", "MacAddress": "00-15-5D-01-02-03", "NetworkAdapterStatus": "Up",
         "IPAddresses": '[{"IPAddress":"10.0.0.25","SubnetPrefix":24,"AddressType":"Private"}]',
         "DnsAddresses": '["10.0.0.2"]', "ReportId": "6"},
        "DeviceNetworkInfo | project NetworkAdapterName, MacAddress, NetworkAdapterStatus, "
        "IP = tostring(parse_json(IPAddresses)[0].IPAddress), ReportId",
        {"NetworkAdapterName": "Ethernet0", "MacAddress": "00-15-5D-01-02-03", "NetworkAdapterStatus": "Up",
         "IP": "10.0.0.25", "ReportId": 6}),
    "IdentityInfo": (
        {"Timestamp": "2026-03-01T09:00:00Z", "ReportId": "r-77", "AccountObjectId": "0b6f", "AccountUpn":
         "exadmin@contoso.com", "OnPremSid": "S-1-5-21-1-2-3-1104", "AccountName": "exadmin",
         "AccountDomain": "contoso.com", "Department": "IT", "JobTitle": "Exchange admin", "CriticalityLevel": "3",
         "IsAccountEnabled": "true", "CreatedDateTime": "2024-05-01T08:00:00Z", "Tags": '["Sensitive"]'},
        "IdentityInfo | project AccountUpn, OnPremSid, Department, CriticalityLevel, IsAccountEnabled, "
        "CreatedDateTime, ReportId, Tag = tostring(Tags[0])",
        {"AccountUpn": "exadmin@contoso.com", "OnPremSid": "S-1-5-21-1-2-3-1104", "Department": "IT",
         "CriticalityLevel": 3, "IsAccountEnabled": True, "CreatedDateTime": "2024-05-01 08:00:00", "ReportId": "r-77",
         "Tag": "Sensitive"}),
}


@pytest.mark.parametrize("writer", [write_csv, write_ah_api], ids=["portal-csv", "api-json"])
@pytest.mark.parametrize("table", sorted(ROWS))
def test_an_export_of_the_table_loads(tmp_path: Path, table: str, writer: Any) -> None:
    row, kql, want = ROWS[table]
    path = writer(tmp_path / f"{table}_export.{'csv' if writer is write_csv else 'json'}", table, [row])
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
        got = DuckDBBackend(session).query(kql).to_pylist()
    assert (dict(report.used), report.total_skipped, report.messages) == ({table: 1}, 0, [])
    assert [{k: (str(v) if k == "CreatedDateTime" else v) for k, v in r.items()} for r in got] == [want]
