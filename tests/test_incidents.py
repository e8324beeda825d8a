"""Incidents: evidence found once with every rule, servers and time gaps, entities, chain steps."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from exhunt.incidents import (
    ENTITY_KINDS,
    Incident,
    as_record,
    chain_steps,
    entities_of,
    group,
    host_key,
    parse_time,
)


def alert(rule: str, when: str | None, device: str = "exch01.contoso.local", severity: str = "high",
          **fields: Any) -> dict[str, Any]:
    """An alert dict as alerts.build makes them (the fields that matter here)."""
    base: dict[str, Any] = {"alert_id": f"{rule}|{when}|{fields.get('source_record', '')}|{fields.get('x', '')}",
                            "rule_id": rule, "rule_name": rule.replace("-", " ").title(), "severity": severity,
                            "Timestamp": when, "DeviceName": device, "source_file": "", "source_record": ""}
    base.update(fields)
    return base


def src(record: int, file: str = "data/DeviceFileEvents.csv") -> dict[str, str]:
    return {"source_file": file, "source_record": f"line {record}"}


def test_the_same_event_found_by_three_rules_is_one_evidence() -> None:
    t = "2026-01-05T10:00:00.000000Z"
    found = [alert("dll-placement", t, severity="high", **src(4)),
             alert("lightneuron", t, severity="critical", **src(4)),
             alert("seed", t, severity="medium", **src(4)),
             alert("seed", "2026-01-05T10:00:30.000000Z", severity="medium", **src(5))]
    [inc] = group(found)
    assert len(inc.evidence) == 2
    first, second = inc.evidence
    assert first.rule_names == ["Lightneuron", "Dll Placement", "Seed"]  # most severe first
    assert first.severity == "critical"
    assert [a["rule_id"] for a in first.alerts] == ["lightneuron", "dll-placement", "seed"]
    assert first.timestamp == t
    assert second.rule_names == ["Seed"] and len(second.alerts) == 1
    assert inc.severity == "critical"
    assert inc.rules == ["Lightneuron", "Dll Placement", "Seed"]
    assert [a["rule_id"] for a in inc.alerts][-1] == "seed"  # time order
    assert first.evidence_id != second.evidence_id


def test_an_event_known_by_its_file_and_by_its_report_id_is_one_evidence() -> None:
    """The chain rule keeps only ReportId of its first step; the cmdlet rule kept the row's
    line and ReportId; the seed rule only the line: one event, three rules."""
    t = "2026-01-05T10:00:00.100000Z"
    found = [alert("seed", t, severity="critical", **src(15, "p.jsonl")),
             alert("cmdlet", t, ReportId=2015, **src(15, "p.jsonl")),
             alert("chain", t, severity="critical", ReportId=2015),
             alert("other", t, ReportId=2016)]
    [inc] = group(found)
    assert [sorted(ev.rule_names) for ev in inc.evidence] == [["Chain", "Cmdlet", "Seed"], ["Other"]]


def test_report_id_identity_compares_servers_by_short_name_and_times_in_utc() -> None:
    found = [alert("a", "2026-01-05T10:00:00.000000Z", device="EXCH01.contoso.local", ReportId=7),
             alert("b", "2026-01-05T11:00:00.000000+01:00", device="exch01", ReportId=7)]
    [inc] = group(found)
    assert len(inc.evidence) == 1
    assert inc.device == "EXCH01.contoso.local"  # the longest spelling
    assert inc.entities["hosts"] == ["EXCH01.contoso.local"]


def test_alerts_without_source_or_report_id_are_their_own_evidence() -> None:
    t = "2026-01-05T10:00:00.000000Z"
    [inc] = group([alert("a", t, x=1), alert("a", t, x=2)])
    assert len(inc.evidence) == 2


def test_two_servers_are_two_incidents() -> None:
    t = "2026-01-05T10:00:00.000000Z"
    incs = group([alert("a", t, device="exch01", **src(1)), alert("a", t, device="exch02", **src(2))])
    assert sorted(i.device for i in incs) == ["exch01", "exch02"]
    assert incs[0].incident_id != incs[1].incident_id


def test_a_gap_larger_than_the_window_splits_one_server() -> None:
    found = [alert("a", "2026-01-05T10:00:00.000000Z", **src(1)),
             alert("a", "2026-01-05T10:50:00.000000Z", **src(2)),
             alert("a", "2026-01-05T11:50:00.000000Z", **src(3)),   # exactly 1h after the previous one
             alert("a", "2026-01-05T12:50:00.000001Z", **src(4))]   # just over 1h
    incs = sorted(group(found), key=lambda i: i.start)
    assert [(i.start[11:19], i.end[11:19], len(i.evidence)) for i in incs] == [
        ("10:00:00", "11:50:00", 3), ("12:50:00", "12:50:00", 1)]
    assert len(group(found, timedelta(minutes=30))) == 4
    assert len(group(found, timedelta(hours=2))) == 1
    with pytest.raises(ValueError):
        group(found, timedelta(seconds=-1))


def test_incidents_are_ordered_most_severe_first_then_by_start() -> None:
    found = [alert("a", "2026-01-01T00:00:00.000000Z", device="s1", severity="medium", **src(1)),
             alert("b", "2026-01-03T00:00:00.000000Z", device="s2", severity="critical", **src(2)),
             alert("c", "2026-01-02T00:00:00.000000Z", device="s3", severity="critical", **src(3)),
             alert("d", None, device="s3", severity="critical", **src(4))]
    incs = group(found)
    assert [(i.device, i.severity, i.start[:10]) for i in incs] == [
        ("s3", "critical", "2026-01-02"), ("s2", "critical", "2026-01-03"), ("s3", "critical", ""),
        ("s1", "medium", "2026-01-01")]
    untimed = incs[2]
    assert untimed.end == "" and untimed.evidence[0].timestamp is None


def test_ids_are_stable_across_order_and_display_zone() -> None:
    found = [alert("a", "2026-01-05T10:00:00.000000Z", ReportId=1),
             alert("b", "2026-01-05T10:05:00.000000Z", **src(2))]
    shifted = [dict(found[0], Timestamp="2026-01-05T11:00:00.000000+01:00"),
               dict(found[1], Timestamp="2026-01-05T11:05:00.000000+01:00")]
    one, two = group(found), group(list(reversed(shifted)))
    assert [i.incident_id for i in one] == [i.incident_id for i in two]
    assert [e.evidence_id for e in one[0].evidence] == [e.evidence_id for e in two[0].evidence]
    # ... and depend on the data: another server, other ids
    other = group([dict(a, DeviceName="exch02") for a in found])
    assert other[0].incident_id != one[0].incident_id


def test_entities_from_the_alert_fields() -> None:
    found = [
        # a file event written by a process, account with a domain
        alert("a", "2026-01-05T10:00:00.000000Z", ActionType="FileCreated", FileName="evil.dll",
              FolderPath=r"C:\Windows\Temp\evil.dll", AccountDomain="CONTOSO", AccountName="svc-backup",
              InitiatingProcessFileName="cmd.exe", ProcessCommandLine="cmd.exe /c copy x"),
        # a process event: FileName is the process, not a file
        alert("b", "2026-01-05T10:01:00.000000Z", FileName="powershell.exe", FolderPath=r"C:\W\powershell.exe",
              ProcessCommandLine="powershell.exe -NoProfile", AccountName="svc-backup",
              InitiatingProcessCommandLine=r'"C:\Windows\system32\wbem\WmiPrvSE.exe" -Embedding'),
        # a cmdlet alert: agent and assembly, account spelt differently, names listed with commas
        alert("c", "2026-01-05T10:02:00.000000Z", device="exch01", AgentName="Security Interop Agent",
              AssemblyPath=r"c:\windows\temp\EVIL.dll", AccountDomain="contoso", AccountName="SVC-BACKUP, system",
              FileName="8372 w3wp#MSExchangePowerShellAppPool"),
        alert("d", "2026-01-05T10:03:00.000000Z", AgentName="security interop agent", RequestSourceIP="10.0.0.9",
              InitiatingProcessAccountDomain="nt authority", InitiatingProcessAccountName="network service",
              FileName="agents.config"),
    ]
    ents = entities_of(found)
    assert list(ents) == list(ENTITY_KINDS)
    assert ents == {
        "hosts": ["exch01.contoso.local", "10.0.0.9"],
        "accounts": [r"CONTOSO\svc-backup", r"contoso\system", r"nt authority\network service"],
        "files": [r"C:\Windows\Temp\evil.dll", "agents.config"],
        "processes": ["cmd.exe", "WmiPrvSE.exe", "powershell.exe"],
        "agents": ["Security Interop Agent"],
    }
    [inc] = group(found)
    assert inc.entities == ents


def test_a_bare_account_stays_when_no_domain_form_names_it() -> None:
    ents = entities_of([alert("a", None, AccountName="contoso.local/Users/exadmin"),
                        alert("a", None, AccountName="alice", AccountUpn="alice@contoso.com")])
    assert ents["accounts"] == ["contoso.local/Users/exadmin", "alice", "alice@contoso.com"]


def test_chain_steps_split_only_before_a_step_time() -> None:
    steps = ("2026-01-05 10:00:00 agent cmdlet: powershell Get-X | Install-TransportAgent"
             " | 2026-01-05 10:00:09 restart: Restart-Service")
    chain = alert("chain", "2026-01-05T10:00:00.000000Z", severity="critical", Steps=steps, ReportId=3)
    assert chain_steps([chain]) == ["2026-01-05 10:00:00 agent cmdlet: powershell Get-X | Install-TransportAgent",
                                    "2026-01-05 10:00:09 restart: Restart-Service"]
    [inc] = group([chain, alert("x", "2026-01-05T10:00:05.000000Z", **src(1))])
    assert inc.chain == chain_steps([chain])
    assert group([alert("x", "2026-01-05T10:00:05.000000Z", **src(1))])[0].chain == []


def test_hostile_values_are_kept_exact_in_the_model() -> None:
    """Escaping is the outputs' job: the model holds what the data says."""
    nasty = "\x1b]0;pwned\x07=cmd|' /C calc'!A0"
    [inc] = group([alert("a", "2026-01-05T10:00:00.000000Z", AgentName=nasty, AccountName=nasty)])
    assert inc.entities["agents"] == [nasty] and inc.entities["accounts"] == [nasty]


def test_record_shape() -> None:
    t = "2026-01-05T10:00:00.000000Z"
    found = [alert("a", t, severity="critical", **src(1)), alert("b", t, **src(1)),
             alert("c", "2026-01-05T10:10:00.000000Z", **src(2))]
    [inc] = group(found)
    rec = as_record(inc)
    assert json.loads(json.dumps(rec)) == rec
    assert list(rec)[:6] == ["incident_id", "DeviceName", "start", "end", "severity", "rules"]
    assert rec["start"] == t and rec["end"] == "2026-01-05T10:10:00.000000Z"
    assert [e["rules"] for e in rec["evidence"]] == [["A", "B"], ["C"]]
    assert rec["evidence"][0]["alert_ids"] == [found[0]["alert_id"], found[1]["alert_id"]]
    assert [a["found_by"] for a in rec["alerts"]] == [["A", "B"], ["A", "B"], ["C"]]
    assert list(rec["alerts"][0])[:4] == ["alert_id", "incident_id", "evidence_id", "found_by"]
    assert {a["incident_id"] for a in rec["alerts"]} == {inc.incident_id}
    assert "found_by" not in found[0]  # the alerts themselves are not changed


def test_helpers() -> None:
    assert host_key("EXCH01.Contoso.local") == "exch01" and host_key("10.0.0.1") == "10.0.0.1"
    assert parse_time("2026-01-05T11:00:00+01:00") == parse_time("2026-01-05T10:00:00.000000Z")
    assert parse_time("yesterday") is None and parse_time(None) is None
    assert isinstance(group([]), list) and not group([])
    assert Incident.__dataclass_fields__.keys() >= {"incident_id", "device", "start", "end", "severity",
                                                     "evidence", "entities", "chain"}
