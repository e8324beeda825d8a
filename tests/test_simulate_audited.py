"""`audited: true` on a file step: the file has a write SACL, so the Windows family also logs Security
4663 (object access) for the write, with the fields Windows gives it; Defender has no such table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exhunt.errors import UsageError
from exhunt.simulate.events import Simulation, generate
from exhunt.simulate.formats import _defender
from exhunt.simulate.formats._winrec import records
from exhunt.simulate.formats.evtx_json import documents
from exhunt.simulate.formats.sentinel_windows import row
from exhunt.simulate.scenario import parse

CONFIG = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\Shared\agents.config"
TEXT = """\
id: audit-demo
title: t
kind: attack
steps:
  - id: tool
    process: {name: tool, image: 'C:\\Users\\Public\\tool.exe', command_line: tool.exe, user: 'CONTOSO\\mallory',
              pid: 6604}
  - id: write
    file: {action: modified, by: tool, path: '${shared}\\agents.config'%s}
"""


def _sim(extra: str = ", audited: true") -> Simulation:
    return generate([parse(TEXT % extra, Path("audit.yaml"))])


def _security(sim: Simulation) -> list[dict[str, Any]]:
    return [d["Event"] for d in documents(sim) if d["Event"]["System"]["EventID"] == 4663]


def test_an_audited_write_is_one_4663_with_windows_fields() -> None:
    sim = _sim()
    write = next(e for e in sim.events if e.kind == "file")
    assert write.proc is not None
    acct = write.proc.account  # the simulator's identity for CONTOSO\mallory (SID, logon id: seeded)
    [ev] = _security(sim)
    assert ev["System"]["Channel"] == "Security"
    assert ev["System"]["Provider"] == {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}
    assert (ev["System"]["Task"], ev["System"]["Level"], ev["System"]["Version"]) == (12800, 0, 1)
    assert ev["System"]["Computer"] == "exch01.contoso.local"
    handle = ev["EventData"]["HandleId"]
    assert ev["EventData"] == {
        "SubjectUserSid": acct.sid,
        "SubjectUserName": "mallory",
        "SubjectDomainName": "CONTOSO",
        "SubjectLogonId": hex(acct.logon_id),
        "ObjectServer": "Security",
        "ObjectType": "File",
        "ObjectName": CONFIG,
        "HandleId": handle,
        "AccessList": "%%4417",
        "AccessMask": "0x2",
        "ProcessId": "0x19cc",  # 6604
        "ProcessName": r"C:\Users\Public\tool.exe",
        "ResourceAttributes": "S:AI",
    }
    assert acct.sid.startswith("S-1-5-21-") and acct.logon_id > 0x3E7
    assert handle.startswith("0x") and int(handle, 16) % 4 == 0 and int(handle, 16) >= 0x100


def test_it_follows_the_sysmon_11_of_the_same_write() -> None:
    events = [(d["Event"]["System"]["Channel"], d["Event"]["System"]["EventID"]) for d in documents(_sim())]
    assert events[-2:] == [("Microsoft-Windows-Sysmon/Operational", 11), ("Security", 4663)]


def test_not_audited_no_4663_and_defender_is_unchanged() -> None:
    assert _security(_sim("")) == []
    assert _defender.rows(_sim("")) == _defender.rows(_sim())


def test_a_rename_asks_for_delete_on_the_old_name() -> None:
    text = TEXT.replace("action: modified", "action: renamed, previous: '${shared}\\agents.old'")
    [ev] = _security(generate([parse(text % ", audited: true", Path("audit.yaml"))]))
    assert (ev["EventData"]["ObjectName"], ev["EventData"]["AccessList"], ev["EventData"]["AccessMask"]) == (
        CONFIG.replace("agents.config", "agents.old"), "%%1537", "0x10000")


def test_sentinel_holds_it_as_a_securityevent_row() -> None:
    sim = _sim()
    [rec] = [r for r in records(sim) if r.event_id == 4663]
    got = row(rec, "t")
    assert (got["Type"], got["EventID"], got["ObjectName"], got["AccessMask"], got["ProcessName"]) == (
        "SecurityEvent", 4663, CONFIG, "0x2", r"C:\Users\Public\tool.exe")


def test_audited_takes_true_or_false() -> None:
    with pytest.raises(UsageError, match=r"audit\.yaml:8: audited: true or false, not 'yes'"):
        _sim(", audited: 'yes'")
