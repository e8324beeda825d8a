"""The simulator's Sentinel WindowsEvent and Exchange admin audit log formats: the same rows as the
evtx_dump form where they hold the same events, and --check judging only what a format can hold (the
rest reported n/a, with the reason)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.simulate.events import generate
from exhunt.simulate.formats import exchange_admin_audit, writers
from exhunt.simulate.scenario import shipped

SCENARIOS = {s.id: s for s in shipped()}
THREE = [SCENARIOS[s] for s in ("lightneuron-emulation", "atomic-t1505-002", "attack-remote-ems-install")]


def tables_of(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (provenance left out), as loaded from `folder`."""
    with Session(in_memory=True) as s:
        reports = s.load_files(list(sources.walk([folder])))
        assert all(r.total_skipped == 0 and r.error is None for r in reports), [r.messages for r in reports]
        return {t: s.run(f'SELECT * EXCLUDE (_source_file, _record) FROM "_t_{t}" ORDER BY ALL') for t in s.tables}


def test_windowsevent_rows_are_the_evtx_rows(tmp_path: Path) -> None:
    sim = generate(THREE, seed=4, noise=25)
    got = {}
    for fmt in ("evtx-json", "sentinel-windowsevent"):
        (tmp_path / fmt).mkdir()
        writers()[fmt].write(sim, tmp_path / fmt)
        got[fmt] = tables_of(tmp_path / fmt)
    evtx, windowsevent = got["evtx-json"], got["sentinel-windowsevent"]
    filled = {t for t, rows in evtx.items() if rows}
    assert {"Event", "SecurityEvent", "DeviceProcessEvents", "DeviceFileEvents", "DeviceImageLoadEvents",
            "DeviceEvents", "ExchangeAdminAuditLogs"} <= filled
    for table in sorted(filled):
        assert windowsevent[table] == evtx[table], table


def test_windowsevent_rows_follow_the_table_reference(tmp_path: Path) -> None:
    (path,) = writers()["sentinel-windowsevent"].write(generate([SCENARIOS["atomic-t1505-002"]]), tmp_path)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert {d["Type"] for d in docs} == {"WindowsEvent"}
    assert set(docs[0]) >= {"TimeGenerated", "Computer", "Channel", "Provider", "EventID", "EventLevel",
                            "EventLevelName", "EventOriginId", "EventRecordId", "Keywords", "Opcode", "Task",
                            "SystemProcessId", "SystemThreadId", "SystemUserId", "ManagementGroupName",
                            "RawEventData", "EventData", "TenantId", "_ResourceId"}
    assert all(isinstance(d["EventRecordId"], str) and isinstance(d["EventData"], dict) for d in docs)
    cmdlets = [d for d in docs if d["Provider"] == "MSExchange CmdletLogs"]
    assert [(d["EventID"], d["EventData"]["Data"][0]) for d in cmdlets] == [
        (6, "Install-TransportAgent"), (6, "Enable-TransportAgent"), (1, "Get-TransportAgent")]
    sysmon = next(d for d in docs if d["EventID"] == 1 and d["Provider"] == "Microsoft-Windows-Sysmon")
    assert sysmon["EventData"]["Image"].endswith("powershell.exe") and sysmon["Channel"].endswith("/Operational")


def _audit_rows(folder: Path) -> list[tuple[Any, ...]]:
    with Session(in_memory=True) as s:
        s.load_files(list(sources.walk([folder])))
        return s.run('SELECT date_trunc(\'second\', TimeGenerated), Status, Caller, TargetObject, CmdletName, '
                     'Parameters, ErrorMessage FROM "_t_ExchangeAdminAuditLogs" ORDER BY ALL')


def test_admin_audit_export_holds_the_logged_cmdlets(tmp_path: Path) -> None:
    sim = generate(THREE, seed=2)
    for fmt in ("evtx-json", "exchange-admin-audit"):
        (tmp_path / fmt).mkdir()
        writers()[fmt].write(sim, tmp_path / fmt)
    (path,) = (tmp_path / "exchange-admin-audit").iterdir()
    entries = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert list(entries[0]) == list(exchange_admin_audit.COLUMNS)
    names = [(e["CmdletName"], e["Succeeded"]) for e in entries]
    # newest first, as Search-AdminAuditLog returns them; Get-TransportAgent is never recorded
    assert names == [("Enable-TransportAgent", "True"), ("Install-TransportAgent", "True"),
                     ("Enable-TransportAgent", "False"), ("Install-TransportAgent", "False"),
                     ("Enable-TransportAgent", "True"), ("Install-TransportAgent", "True")]
    assert {e["OriginatingServer"] for e in entries} == {"EXCH01 (15.02.1544.004)"}
    # the same cmdlets, parameters, callers, outcomes and errors as the MSExchange Management log
    audit = _audit_rows(tmp_path / "exchange-admin-audit")
    evtx = [r for r in _audit_rows(tmp_path / "evtx-json") if not r[4].startswith("Get-")]
    assert audit == evtx and len(audit) == 6
    # the ConvertTo-Json form of the same entries gives the same rows
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "audit.json").write_text(exchange_admin_audit.json_text(exchange_admin_audit.entries(sim)))
    assert _audit_rows(tmp_path / "json") == audit


def test_check_in_the_admin_audit_format() -> None:
    code, out, err = run_cli(["simulate", "atomic-t1505-002", "attack-remote-ems-install", "--check",
                              "--format", "exchange-admin-audit"])
    assert code == 0, out + err
    lines = out.splitlines()
    assert len(lines) == sum(len(SCENARIOS[s].expect) for s in ("atomic-t1505-002", "attack-remote-ems-install"))
    assert "PASS  atomic-t1505-002 [exchange-admin-audit]  exchange-transport-agent-cmdlet alerts on " \
           "install-failed, enable-failed" in lines
    assert "PASS  attack-remote-ems-install [exchange-admin-audit]  exchange-transport-agent-cmdlet alerts on " \
           "install, enable" in lines
    assert "PASS  atomic-t1505-002 [exchange-admin-audit]  exchange-transport-agent-chain does not alert" in lines
    assert "N/A   attack-remote-ems-install [exchange-admin-audit]  exchange-transport-agent-chain alerts on " \
           "install: n/a (meant for windows formats)" in lines
    assert "N/A   atomic-t1505-002 [exchange-admin-audit]  exchange-transport-agent-seed alerts on test-command: " \
           "n/a (the rule reads DeviceProcessEvents, DeviceFileEvents; this format fills ExchangeAdminAuditLogs " \
           "only)" in lines
    # (sentinel-windowsevent: every scenario through check() in tests/test_simulate.py's matrix)


USER = """\
id: mine
title: an agent DLL, then its install
kind: attack
steps:
  - id: dll
    file: {action: created, by: 'explorer:CONTOSO\\exadmin',
           path: 'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\agents\\X\\X.dll'}
  - id: install
    cmdlet_log: {cmdlet: Install-TransportAgent,
                 params: '-Name "X" -TransportAgentFactory "X.F" -AssemblyPath "C:\\x\\X.dll"'}
expect:
  alert:
    - {rule: exchange-transport-agent-chain, steps: [dll]}
EXTRA
  no_alert:
    - exchange-transport-agent-seed
"""


def test_a_format_that_cannot_hold_the_steps_reports_n_a(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER.replace("EXTRA", "    - {rule: exchange-transport-agent-cmdlet, steps: [install]}"))
    code, out, _ = run_cli(["simulate", str(path), "--check", "--format", "exchange-admin-audit"])
    assert (code, out.splitlines()) == (0, [
        "N/A   mine [exchange-admin-audit]  exchange-transport-agent-chain alerts on dll: n/a (none of its steps "
        "is a cmdlet_log step, all this format holds)",
        "PASS  mine [exchange-admin-audit]  exchange-transport-agent-cmdlet alerts on install",
        "N/A   mine [exchange-admin-audit]  exchange-transport-agent-seed does not alert: n/a (the rule reads "
        "DeviceProcessEvents, DeviceFileEvents; this format fills ExchangeAdminAuditLogs only)",
    ])
    # an alert nobody expected still fails, n/a or not
    path.write_text(USER.replace("EXTRA\n", ""))
    code, out, _ = run_cli(["simulate", str(path), "--check", "--format", "exchange-admin-audit"])
    assert code == 1
    assert "FAIL  mine [exchange-admin-audit]  exchange-transport-agent-cmdlet: unexpected alert on install" in out
