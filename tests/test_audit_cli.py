"""`exhunt audit` end to end: layouts, outputs, exit codes, tuning, state, HTML and baselines, with
the placeholder DLLs' facts (tests/audit_layout.py) standing in for the real readers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from audit_layout import (
    FIRST_AGENT_LINE,
    HUB_DEFAULT,
    SMTP_FACTORY_BASE,
    V15,
    V15_REL,
    agents_config,
    builtin_agent,
    fake_facts,
    fake_signature,
    install,
    placeholder,
    windows_to_local,
)
from conftest import run_cli

LIST = f"C/{V15_REL}/TransportRoles/Shared/agents.config"
EVIL = {"name": "Mail Archiver", "factory": "Evil.ArchiverFactory", "path": r"C:\Windows\Temp\arch.dll"}
SYMANTEC = {"name": "SMSMSERoutingAgent",
            "factory": "Symantec.MailSecurity.Server.TransportAgent.SMSMSERoutingAgentFactory",
            "path": r"E:\Program Files (x86)\Symantec\SMSMSE\7.5\Server"
                    r"\Symantec.MailSecurity.Server.TransportAgent.dll"}


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.audit import run

    monkeypatch.setattr(run, "_readers", lambda options: (fake_facts, fake_signature))


def kape(tmp_path: Path, extra: list[dict[str, Any]] | None = None, host: str = "EXCH01") -> Path:
    top = tmp_path / host
    install(top / "C", [builtin_agent(n) for n in HUB_DEFAULT] + (extra or []), template=False)
    placeholder(top / "C" / "Windows" / "Temp" / "arch.dll", {"Evil.ArchiverFactory": [SMTP_FACTORY_BASE]})
    placeholder(windows_to_local(top / "E", SYMANTEC["path"]), {SYMANTEC["factory"]: [SMTP_FACTORY_BASE]},
                signer="Symantec Corporation")
    return top


def findings(args: list[str]) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run_cli(["audit", *args, "-f", "json", "--flat"])
    return code, json.loads(out) if out.strip() else [], err


def test_table_and_summary(tmp_path: Path) -> None:
    code, out, err = run_cli(["audit", str(kape(tmp_path, [EVIL]))])
    assert code == 0
    assert "Mail Archiver (Hub) -> C:\\Windows\\Temp\\arch.dll: DLL in a suspicious folder" in " ".join(out.split())
    lines = err.splitlines()
    assert lines[0] == f"Collection {tmp_path / 'EXCH01'} (kape layout, drives C:, E:); server EXCH01 (the " \
                       "collection folder's name)."
    assert lines[1] == f"Exchange install {V15} (V15)."
    assert lines[2] == f"  live list {LIST} (Hub): 3 agent(s)"
    assert lines[3] == f"  live list C/{V15_REL}/TransportRoles/Shared/fetagents.config (FrontEnd): 0 agent(s)"
    assert lines[4].startswith("2 list(s), 3 agent(s) read, 3 DLL(s) judged; look-around: ")
    assert lines[5].startswith("4 finding(s) (1 high, 1 medium, 2 informational); 4 shown; ")


def test_exit_codes(tmp_path: Path) -> None:
    top = kape(tmp_path, [EVIL])
    assert run_cli(["audit", str(top), "--fail-on", "high", "-q"])[0] == 1
    assert run_cli(["audit", str(top), "--fail-on", "critical", "-q"])[0] == 0
    code, out, err = run_cli(["audit", str(top), "--fail-on", "severe"])
    assert (code, out) == (2, "") and "--fail-on must be one of" in err


def test_json_flat_fields(tmp_path: Path) -> None:
    code, rows, _ = findings([str(kape(tmp_path, [EVIL]))])
    assert code == 0
    evil = next(r for r in rows if r["rule_id"] == "audit-suspicious-location")
    assert list(evil)[:9] == ["alert_id", "rule_id", "rule_name", "severity", "confidence", "tactics", "techniques",
                              "Timestamp", "DeviceName"]
    assert list(evil)[-2:] == ["source_file", "source_record"]
    assert {k: evil[k] for k in ("DeviceName", "AgentName", "TransportService", "AssemblyPath", "FactoryType",
                                 "Signer", "Verdict", "source_file", "source_record")} == {
        "DeviceName": "EXCH01", "AgentName": "Mail Archiver", "TransportService": "Hub",
        "AssemblyPath": r"C:\Windows\Temp\arch.dll", "FactoryType": "Evil.ArchiverFactory", "Signer": "",
        "Verdict": "DLL in a suspicious folder", "source_file": LIST, "source_record": f"line {FIRST_AGENT_LINE + 2}"}
    assert len(evil["SHA256"]) == 64 and evil["Evidence"][0] == r"C:\Windows\Temp\arch.dll is in windows\temp"
    assert [r["rule_id"] for r in rows] == ["audit-suspicious-location", "audit-third-party-unsigned",
                                            "audit-builtin-agent", "audit-builtin-agent"]


def test_incidents_and_csv(tmp_path: Path) -> None:
    top = kape(tmp_path, [EVIL])
    code, out, _ = run_cli(["audit", str(top), "-f", "json"])
    assert code == 0
    (incident,) = json.loads(out)
    assert incident["DeviceName"] == "EXCH01" and incident["severity"] == "high"
    assert len(incident["evidence"]) == 3  # one per agent: its findings together
    assert incident["entities"]["agents"] == ["Mail Archiver", "Transport Rule Agent", "Malware Agent"]
    _, out, _ = run_cli(["audit", str(top), "-f", "csv", "--flat"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["AgentName"] for r in rows] == ["Mail Archiver", "Mail Archiver", "Transport Rule Agent",
                                              "Malware Agent"]
    assert json.loads(rows[0]["Evidence"])[0] == r"C:\Windows\Temp\arch.dll is in windows\temp"


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    code, out, _ = run_cli(["audit", str(kape(tmp_path)), "-f", "jsonl", "--flat", "-o", str(target)])
    assert (code, out) == (0, "")
    assert [json.loads(line)["AgentName"] for line in target.read_text().splitlines()] == [
        "Transport Rule Agent", "Malware Agent"]


def test_known_vendors_and_tuning(tmp_path: Path) -> None:
    top = kape(tmp_path, [SYMANTEC, EVIL])
    code, rows, _ = findings([str(top)])
    assert ("audit-known-vendor", "SMSMSERoutingAgent") in [(r["rule_id"], r["AgentName"]) for r in rows]
    code, rows, err = findings([str(top), "--known-vendors"])
    assert code == 0
    assert "SMSMSERoutingAgent" not in [r["AgentName"] for r in rows]
    assert "tuning: 1 alert(s) suppressed by symantec-smsmse-routing-agent" in err
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("- id: archiver-is-approved\n  rule: audit-third-party-unsigned\n"
                      "  match:\n    AgentName: {equals: Mail Archiver}\n"
                      "  reason: approved in change 4711\n  owner: mail team\n  expires: 2999-01-01\n")
    _, rows, err = findings([str(top), "--tuning", str(tuning)])
    assert [(r["rule_id"], r["AgentName"]) for r in rows if r["AgentName"] == "Mail Archiver"] == [
        ("audit-suspicious-location", "Mail Archiver")]
    assert "tuning: 1 alert(s) suppressed by archiver-is-approved" in err


def test_show_suppressed(tmp_path: Path) -> None:
    _, rows, _ = findings([str(kape(tmp_path, [SYMANTEC])), "--known-vendors", "--show-suppressed"])
    tagged = [r for r in rows if r["suppressed_by"]]
    assert [(r["AgentName"], r["suppressed_by"]["id"]) for r in tagged] == [
        ("SMSMSERoutingAgent", "symantec-smsmse-routing-agent")]


def test_html_report(tmp_path: Path) -> None:
    hostile = dict(EVIL, name="<script>alert(1)</script>")
    page = tmp_path / "report.html"
    code, _, _ = run_cli(["audit", str(kape(tmp_path, [hostile])), "--html", str(page), "-q"])
    text = page.read_text()
    assert code == 0 and "exhunt audit: EXCH01" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text
    assert "Transport agent DLL in a user-writable or temporary folder" in text


def test_state_and_new_only(tmp_path: Path) -> None:
    top = kape(tmp_path, [EVIL])
    state_file = tmp_path / "state.db"
    code, first, err = findings([str(top), "--state", str(state_file)])
    assert len(first) == 4 and "4 new" in err
    code, again, _ = findings([str(top), "--state", str(state_file), "--new-only"])
    assert (code, again) == (0, [])
    _, out, _ = run_cli(["alerts", "list", "--state", str(state_file), "-f", "json"])
    assert sorted(r["rule_id"] for r in json.loads(out)) == sorted(r["rule_id"] for r in first)


def test_velociraptor_collection(tmp_path: Path) -> None:
    top = tmp_path / "Collection-EXCH09.contoso.local-2026-11-20T10_22_31Z"
    install(top / "uploads" / "auto" / "C%3A", [builtin_agent(n) for n in HUB_DEFAULT] + [EVIL], template=False)
    placeholder(top / "uploads" / "ntfs" / "%5C%5C.%5CC%3A" / "Windows" / "Temp" / "arch.dll", signer="Evil Ltd")
    (top / "client_info.json").write_text(json.dumps({"Hostname": "EXCH09", "Fqdn": "EXCH09.contoso.local"}))
    code, rows, err = findings([str(top)])
    assert code == 0 and "server EXCH09.contoso.local (Velociraptor's client_info.json)" in err
    evil = [(r["rule_id"], r["CollectedFile"]) for r in rows if r["AgentName"] == "Mail Archiver"]
    assert evil == [("audit-factory-missing", "uploads/ntfs/%5C%5C.%5CC%3A/Windows/Temp/arch.dll"),
                    ("audit-suspicious-location", "uploads/ntfs/%5C%5C.%5CC%3A/Windows/Temp/arch.dll"),
                    ("audit-third-party-signed", "uploads/ntfs/%5C%5C.%5CC%3A/Windows/Temp/arch.dll")]
    assert {r["source_file"] for r in rows} == {f"uploads/auto/C%3A/{V15_REL}/TransportRoles/Shared/agents.config"}


def test_saved_format_list_with_drive_mapping(tmp_path: Path) -> None:
    from test_audit_lists import FORMAT_LIST

    saved = tmp_path / "Get-TransportAgent.txt"
    saved.write_bytes(FORMAT_LIST.encode("utf-16"))
    drive = tmp_path / "c-drive"
    install(drive, [builtin_agent(n) for n in HUB_DEFAULT], template=False)
    code, rows, _ = findings([str(saved), "--drive", f"C={drive}"])
    assert code == 0
    assert [(r["rule_id"], r["AgentName"], r["source_record"]) for r in rows] == [
        ("audit-builtin-impersonation", "Connection Filtering Agent", "line 24"),
        ("audit-dll-missing", "Connection Filtering Agent", "line 24"),
        ("audit-disabled-agent", "Connection Filtering Agent", "line 24"),
        ("audit-builtin-agent", "Malware Agent", "line 2"),
        ("audit-builtin-agent", "Transport Rule Agent", "line 13")]
    assert {r["TransportService"] for r in rows} == {""}


def test_hostile_and_huge_lists_through_the_cli(tmp_path: Path) -> None:
    from test_audit_lists import LAUGHS, XXE

    top = kape(tmp_path)
    shared = top / "C" / V15_REL / "TransportRoles" / "Shared"
    (shared / "agents.config").write_text(XXE)
    (shared / "fetagents.config").write_text(LAUGHS)
    with open(shared / "agents.config.bak", "wb") as fh:
        fh.truncate(100 << 20)
    code, rows, err = findings([str(top), "--fail-on", "high"])
    assert code == 1 and "Traceback" not in err
    assert [(r["rule_id"], r["source_file"].rsplit("/", 1)[1]) for r in rows] == [
        ("audit-list-hostile", "agents.config"), ("audit-list-refused", "agents.config.bak"),
        ("audit-list-hostile", "fetagents.config")]
    assert f"  live list {LIST} (Hub): NOT READ: hostile" in err.splitlines()


@pytest.mark.parametrize(("args", "message"), [
    (["--drive", "C"], "--drive 'C': give LETTER=FOLDER"),
    (["--baseline", "/no/such/file"], "--baseline /no/such/file: no such file"),
    (["--yara", "/no/such/dir"], "--yara /no/such/dir: not a folder of YARA rules"),
    (["-f", "xml"], "--format must be one of table, jsonl, json, csv, not 'xml'"),
    (["--new-only"], "--new-only needs --state FILE"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, out, err = run_cli(["audit", str(kape(tmp_path)), *args])
    assert (code, out) == (2, "")
    assert message in " ".join(err.split())


def test_nothing_to_audit(tmp_path: Path) -> None:
    (tmp_path / "host" / "C" / "Windows").mkdir(parents=True)
    code, out, err = run_cli(["audit", str(tmp_path / "host")])
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and "no Exchange install found" in err and len(err.strip().splitlines()) <= 3


def test_baseline_save_and_compare(tmp_path: Path) -> None:
    top = kape(tmp_path, [EVIL, builtin_agent("Journaling Agent", enabled=False)])
    placeholder(top / "C" / V15_REL / "TransportRoles" / "agents" / "Journaling" /
                "Microsoft.Exchange.MessagingPolicies.JournalAgent.dll",
                {builtin_agent("Journaling Agent")["factory"]: [SMTP_FACTORY_BASE]},
                signer="Microsoft Corporation", microsoft=True)
    base = tmp_path / "baseline.json"
    code, _, _ = run_cli(["audit", str(top), "--save-baseline", str(base), "-q"])
    doc = json.loads(base.read_text())
    assert code == 0 and doc["format"] == "exhunt-audit-baseline" and doc["device"] == "EXCH01"
    (hub,) = [entry for entry in doc["lists"] if entry["key"].endswith("\\shared\\agents.config")]
    assert [(a["name"], a["order"], a["enabled"]) for a in hub["agents"]] == [
        ("Transport Rule Agent", 0, True), ("Malware Agent", 1, True), ("Mail Archiver", 2, True),
        ("Journaling Agent", 3, False)]
    assert all(len(a["sha256"]) == 64 for a in hub["agents"])

    # The same server later: Malware Agent moved behind the archiver, the archiver's DLL replaced
    # and re-pointed, Journaling enabled, Transport Rule Agent uninstalled, a new agent added.
    placeholder(top / "C" / "Windows" / "Temp" / "arch2.dll", {"Evil.ArchiverFactory": [SMTP_FACTORY_BASE]})
    later = [dict(EVIL, path=r"C:\Windows\Temp\arch2.dll"), builtin_agent("Malware Agent"),
             builtin_agent("Journaling Agent"), {"name": "New", "factory": "N.F", "path": r"C:\Windows\Temp\arch.dll"}]
    (top / "C" / V15_REL / "TransportRoles" / "Shared" / "agents.config").write_text(agents_config(later))
    placeholder(top / "C" / "Windows" / "Temp" / "arch.dll", {"N.F": [SMTP_FACTORY_BASE]})
    code, rows, _ = findings([str(top), "--baseline", str(base)])
    drift = sorted((r["rule_id"], r["AgentName"]) for r in rows if r["rule_id"].startswith("audit-baseline-"))
    assert drift == [("audit-baseline-added", "New"), ("audit-baseline-reenabled", "Journaling Agent"),
                     ("audit-baseline-removed", "Transport Rule Agent"),
                     ("audit-baseline-reordered", "Mail Archiver"), ("audit-baseline-reordered", "Malware Agent"),
                     ("audit-baseline-repointed", "Mail Archiver")]
    repointed = next(r for r in rows if r["rule_id"] == "audit-baseline-repointed")
    assert repointed["Evidence"][2] == r"assemblyPath 'C:\Windows\Temp\arch.dll' -> 'C:\Windows\Temp\arch2.dll'"

    # Only the DLL replaced in place: the one change is its hash.
    (top / "C" / V15_REL / "TransportRoles" / "Shared" / "agents.config").write_text(agents_config(
        [builtin_agent(n) for n in HUB_DEFAULT] + [EVIL, builtin_agent("Journaling Agent", enabled=False)]))
    placeholder(top / "C" / "Windows" / "Temp" / "arch.dll", {"Evil.ArchiverFactory": [SMTP_FACTORY_BASE]},
                name="changed")
    code, rows, _ = findings([str(top), "--baseline", str(base)])
    drift = [(r["rule_id"], r["AgentName"]) for r in rows if r["rule_id"].startswith("audit-baseline-")]
    assert drift == [("audit-baseline-dll-changed", "Mail Archiver")]


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not a baseline (not JSON"),
    ('{"format": "other"}', "not an exhunt audit baseline"),
    ('{"format": "exhunt-audit-baseline", "version": 9, "lists": []}', "baseline version 9"),
    ('{"format": "exhunt-audit-baseline", "version": 1, "lists": [{"agents": [{"name": 3}]}]}',
     "lists[0].agents[0]: an object with a `name` is expected"),
])
def test_bad_baseline(tmp_path: Path, text: str, message: str) -> None:
    base = tmp_path / "baseline.json"
    base.write_text(text)
    code, out, err = run_cli(["audit", str(kape(tmp_path)), "--baseline", str(base)])
    assert (code, out) == (2, "") and message in " ".join(err.split())


def test_a_file_that_is_no_list(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "Collection-EXCH01.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("uploads.json", "[]")
    code, out, err = run_cli(["audit", str(archive)])
    assert (code, out) == (2, "") and "an archive; extract the collection and give its folder" in " ".join(err.split())
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    code, out, err = run_cli(["audit", str(notes)])
    assert (code, out) == (2, "") and "not a Get-TransportAgent | Format-List output" in " ".join(err.split())


def test_a_list_linked_out_of_the_collection_is_not_read(tmp_path: Path) -> None:
    import os

    top = kape(tmp_path)
    secret = tmp_path / "secret.config"
    secret.write_text(agents_config([EVIL]))
    fet = top / "C" / V15_REL / "TransportRoles" / "Shared" / "fetagents.config"
    fet.unlink()
    os.symlink(secret, fet)
    code, rows, _ = findings([str(top)])
    assert code == 0
    refused = [(r["rule_id"], r["Evidence"][0]) for r in rows if r["rule_id"].startswith("audit-list")]
    assert refused == [("audit-list-refused", "a link leading out of the collection: not followed")]
    assert "Mail Archiver" not in [r["AgentName"] for r in rows]


@pytest.mark.parametrize(("name", "text"), [
    ("agents.config", '<?xml version="1.0"?>\n<configuration><mexRuntime><agentList><agent name="X" '
                      'baseType="B" classFactory="A.F" assemblyPath="C:\\Windows\\Temp\\x.dll" enabled="true"/>'
                      '</agentList></mexRuntime></configuration>\n'),
    ("saved-agents.txt", "Identity              : X\nEnabled               : True\nPriority              : 1\n"
                         "TransportAgentFactory : A.F\nAssemblyPath          : C:\\Windows\\Temp\\x.dll\n"),
])
def test_detect_on_an_agent_list_points_to_audit(tmp_path: Path, name: str, text: str) -> None:
    """`detect` reads telemetry, not configuration: given an agent list it fails (exit 2) and says
    which command reads it, instead of "no alerts"."""
    listing = tmp_path / name
    listing.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["detect", str(listing), "-q"])
    assert code == 2 and out == ""
    assert "it is an Exchange agent list: judge its agents with `exhunt audit`" in err
