"""`exhunt detect` shows incidents first in every format; --flat gives one record per alert."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import run_cli

DEMO = Path(__file__).resolve().parents[1] / "demo"
SEED = "exchange-transport-agent-seed"
EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15"
HYGIENE_DLL = EXCH + r"\TransportRoles\agents\Hygiene\Microsoft.Exchange.Security.Interop.dll"

SEED_NAME = "Exchange transport agent persistence (seed rule)"
LIGHTNEURON = "LightNeuron (Turla) transport-agent indicators"
CHAIN = "Exchange transport-agent persistence chain on one server"
CMDLET = "Exchange transport-agent cmdlet (install, enable, set, disable, uninstall)"
CONFIG = "Exchange transport agent configuration file tampering"
FOREIGN = "Foreign module loaded by the Exchange transport process"
PLACEMENT = "Executable written into an Exchange agent folder"
ERRORS = "Exchange transport reports an unknown or out-of-place agent"
CHILD = "Unexpected child of an Exchange transport process"
PICKUP = "Exchange transport process writing into the Pickup folder"
HOST = "exch01.contoso.local"
NETWORK_SERVICE = "nt authority\\network service"

#: demo/'s incidents: severity, span, rules (most severe first), entities, evidence and alert counts.
DEMO_INCIDENTS: list[dict[str, Any]] = [
    {"severity": "critical", "start": "2026-11-21T02:04:47.300000Z", "end": "2026-11-21T02:18:04.600000Z",
     "rules": [LIGHTNEURON, SEED_NAME, CHAIN, CMDLET, CONFIG, FOREIGN, PLACEMENT, ERRORS],
     "entities": {
         "hosts": [HOST, "10.20.30.41"],
         "accounts": ["contoso\\svc-backup", NETWORK_SERVICE, "nt authority\\system"],
         "files": [r"C:\Windows\Temp\Microsoft.Exchange.Security.Interop.dll",
                   EXCH + r"\TransportRoles\Shared\agents.config", EXCH + r"\Bin\exdbdata.dll",
                   EXCH + r"\Bin\winmail.dat", r"C:\Windows\Temp\msinp.ps1",
                   r"$ex\TransportRoles\agents\Hygiene\Microsoft.Exchange.Security.Interop.dll", HYGIENE_DLL,
                   r"C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp\msmdat.xml"],
         "processes": ["cmd.exe", "WmiPrvSE.exe", "powershell.exe", "EdgeTransport.exe", "System"],
         "agents": ["Security Interop Agent"]},
     "evidence": 18, "alerts": 30, "chain": 17},
    {"severity": "critical", "start": "2026-11-23T14:05:11.000000Z", "end": "2026-11-23T14:06:30.000000Z",
     "rules": [SEED_NAME, CHILD, LIGHTNEURON, PICKUP],
     "entities": {
         "hosts": [HOST], "accounts": [NETWORK_SERVICE],
         "files": [r"C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp\winmail.dat",
                   EXCH + r"\TransportRoles\Pickup\msg130203359"],
         "processes": ["EdgeTransport.exe", "cmd.exe"], "agents": []},
     "evidence": 3, "alerts": 4, "chain": 0},
    {"severity": "high", "start": "2026-11-20T14:05:40.671875Z", "end": "2026-11-20T14:05:58.203125Z",
     "rules": [CMDLET],
     "entities": {
         "hosts": [HOST], "accounts": ["contoso.local/Users/exadmin"],
         "files": [EXCH + r"\TransportRoles\agents\Fabrikam\Fabrikam.Disclaimer.Agent.dll"],
         "processes": [], "agents": ["Fabrikam Disclaimer Agent"]},
     "evidence": 2, "alerts": 2, "chain": 0},
    {"severity": "high", "start": "2026-11-21T09:12:07.000000Z", "end": "2026-11-21T09:12:07.000000Z",
     "rules": [PICKUP],
     "entities": {"hosts": [HOST], "accounts": [NETWORK_SERVICE],
                  "files": [EXCH + r"\TransportRoles\Pickup\msg25478016"], "processes": ["EdgeTransport.exe"],
                  "agents": []},
     "evidence": 1, "alerts": 1, "chain": 0},
    {"severity": "medium", "start": "2026-11-22T11:40:12.000000Z", "end": "2026-11-22T11:40:12.000000Z",
     "rules": [ERRORS],
     "entities": {"hosts": [HOST], "accounts": [], "files": [], "processes": [], "agents": ["Security Interop Agent"]},
     "evidence": 1, "alerts": 1, "chain": 0},
]


def _detect(*args: str) -> str:
    code, out, err = run_cli(["detect", *args])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def demo_flat() -> list[dict[str, Any]]:
    return json.loads(_detect(str(DEMO), "-q", "-f", "json", "--flat", "-j", "1"))


@pytest.fixture(scope="module")
def demo_incidents() -> list[dict[str, Any]]:
    return json.loads(_detect(str(DEMO), "-q", "-f", "json", "-j", "1"))


def test_demo_is_five_incidents_on_one_server(demo_incidents: list[dict[str, Any]]) -> None:
    got = [{"severity": i["severity"], "start": i["start"], "end": i["end"], "rules": i["rules"],
            "entities": i["entities"], "evidence": len(i["evidence"]), "alerts": len(i["alerts"]),
            "chain": len(i["chain"])} for i in demo_incidents]
    assert got == DEMO_INCIDENTS
    assert {i["DeviceName"] for i in demo_incidents} == {HOST}
    assert len({i["incident_id"] for i in demo_incidents}) == 5
    first = demo_incidents[0]
    assert first["chain"][0].startswith("2026-11-21 02:05:10 agent cmdlet or config change: powershell.exe")
    assert first["chain"][-1] == ("2026-11-21 02:17:53 transport service restart: "
                                  "The Microsoft Exchange Transport service entered the running state.")


def test_demo_alerts_collapse_into_fewer_evidence(demo_incidents: list[dict[str, Any]],
                                                   demo_flat: list[dict[str, Any]]) -> None:
    n_alerts = sum(len(i["alerts"]) for i in demo_incidents)
    n_evidence = sum(len(i["evidence"]) for i in demo_incidents)
    print(f"demo/: {n_alerts} alerts, {n_evidence} evidence, {len(demo_incidents)} incidents")
    assert (n_alerts, n_evidence) == (38, 25)
    # every alert of the flat output is in exactly one incident, unchanged but for the added keys
    added = ("incident_id", "evidence_id", "found_by")
    inside = [{k: v for k, v in a.items() if k not in added} for i in demo_incidents for a in i["alerts"]]
    key = json.dumps
    assert sorted(map(key, inside)) == sorted(map(key, demo_flat))
    for incident in demo_incidents:
        ids = [a["alert_id"] for a in incident["alerts"]]
        assert sorted(ids) == sorted(x for ev in incident["evidence"] for x in ev["alert_ids"])
        by_evidence = {ev["evidence_id"]: ev for ev in incident["evidence"]}
        for alert in incident["alerts"]:
            assert alert["incident_id"] == incident["incident_id"]
            assert alert["found_by"] == by_evidence[alert["evidence_id"]]["rules"]
            assert alert["rule_name"] in alert["found_by"]
        times = [a["Timestamp"] for a in incident["alerts"]]
        assert times == sorted(times)


def test_demo_evidence_found_by_several_rules_is_shown_once(demo_incidents: list[dict[str, Any]]) -> None:
    evidence = {ev["Timestamp"]: ev for i in demo_incidents for ev in i["evidence"]}
    # the DLL written into the agents folder: a placement, a LightNeuron indicator and the seed rule's hit
    dll = evidence["2026-11-21T02:17:09.555000Z"]
    assert dll["rules"] == [SEED_NAME, LIGHTNEURON, PLACEMENT] and len(dll["alert_ids"]) == 3
    assert dll["severity"] == "critical"
    # the install command: the seed rule and the cmdlet rule kept its line, the chain its ReportId
    install = evidence["2026-11-21T02:05:10.100000Z"]
    assert install["rules"] == [SEED_NAME, CHAIN, CMDLET]
    # one PowerShell script block with three cmdlets: one rule, three alerts, one evidence
    block = evidence["2026-11-21T02:16:59.412000Z"]
    assert block["rules"] == [CMDLET] and len(block["alert_ids"]) == 3
    alerts = {a["alert_id"]: a for i in demo_incidents for a in i["alerts"]}
    assert {alerts[x]["found_by"] == dll["rules"] for x in dll["alert_ids"]} == {True}


def test_demo_jsonl_is_one_incident_per_line(demo_incidents: list[dict[str, Any]]) -> None:
    lines = _detect(str(DEMO), "-q", "-f", "jsonl", "-j", "1").splitlines()
    assert [json.loads(line) for line in lines] == demo_incidents


def test_demo_table_by_incident_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = _detect(str(DEMO), "-q", "-j", "1")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert lines[0] == "5 incident(s), 25 evidence, 38 alert(s)"
    headers = [line for line in lines if line.startswith("Incident ")]
    assert headers == [
        f"Incident 1/5 CRIT {HOST}  2026-11-21 02:04 - 02:18 UTC",
        f"Incident 2/5 CRIT {HOST}  2026-11-23 14:05 - 14:06 UTC",
        f"Incident 3/5 HIGH {HOST}  2026-11-20 14:05 UTC",
        f"Incident 4/5 HIGH {HOST}  2026-11-21 09:12 UTC",
        f"Incident 5/5 MED {HOST}  2026-11-22 11:40 UTC",
    ]
    rows = [line for line in lines if re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}  ", line)]
    assert len(rows) == 25  # one row per evidence, not per alert
    flat = " ".join(out.split())
    assert "2026-11-21 02:17 CRIT Exchange transport agent persistence (seed rule); LightNeuron (Turla) " \
           "transport-agent indicators; Executable written into an Exchange agent folder" in flat
    assert f"HIGH {CMDLET} (3 alerts)" in flat
    assert "chain (17 steps): 02:05:10 agent cmdlet or config change:" in flat
    assert "accounts: contoso.local/Users/exadmin · agents: Fabrikam Disclaimer Agent · files: " \
           "Fabrikam.Disclaimer.Agent.dll" in flat
    # the header's entity lines: at most two per incident
    for block in out.split("\nIncident ")[1:]:
        head = block.split("\n  chain (")[0].split("\nTime (")[0].splitlines()
        assert len(head) <= 6, block  # title, counts, rules (<= 2 lines), entities (<= 2 lines)


def test_demo_table_in_a_time_zone() -> None:
    out = _detect(str(DEMO), "-q", "-j", "1", "--timezone", "Europe/Berlin", "-r", "exchange-transport-agent-chain")
    flat = " ".join(out.split())
    assert f"Incident 1/1 CRIT {HOST} 2026-11-21 03:05 Europe/Berlin" in flat
    assert "chain (17 steps): 03:05:10 agent cmdlet" in flat  # the steps' UTC times moved too
    assert "times in Europe/Berlin" in flat


def test_flat_gives_one_record_per_alert_in_time_order(demo_flat: list[dict[str, Any]]) -> None:
    assert len(demo_flat) == 38
    assert [a["Timestamp"] for a in demo_flat] == sorted(a["Timestamp"] for a in demo_flat)
    assert not any("incident_id" in a or "found_by" in a for a in demo_flat)
    assert list(demo_flat[0])[:3] == ["alert_id", "rule_id", "rule_name"]
    lines = _detect(str(DEMO), "-q", "-f", "jsonl", "--flat", "-j", "1").splitlines()
    assert [json.loads(line) for line in lines] == demo_flat
    rows = list(csv.DictReader(io.StringIO(_detect(str(DEMO), "-q", "-f", "csv", "--flat", "-j", "1"))))
    assert len(rows) == 38 and "incident_id" not in rows[0]
    table = _detect(str(DEMO), "-q", "--flat", "-j", "1")
    assert table.splitlines()[0].startswith("Time (UTC)") and "Incident" not in table


def test_csv_is_one_row_per_alert_ordered_by_incident(demo_incidents: list[dict[str, Any]]) -> None:
    out = _detect(str(DEMO), "-q", "-f", "csv", "-j", "1")
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames is not None
    assert reader.fieldnames[:6] == ["alert_id", "incident_id", "incident_severity", "evidence_id", "found_by",
                                     "rule_id"]
    assert reader.fieldnames[-2:] == ["source_file", "source_record"]
    rows = list(reader)
    assert [r["alert_id"] for r in rows] == [a["alert_id"] for i in demo_incidents for a in i["alerts"]]
    assert [r["incident_id"] for r in rows] == [i["incident_id"] for i in demo_incidents for _ in i["alerts"]]
    assert [r["incident_severity"] for r in rows][:28] == ["critical"] * 28
    assert json.loads(rows[0]["found_by"]) == [LIGHTNEURON]


# -- servers, gaps and the window, on rows written here ----------------------------------


def _child(when: str, device: str, report: int, **extra: Any) -> dict[str, Any]:
    """A process the Exchange transport started: one seed-rule alert."""
    return dict(helpers.PROCESS_ROWS[0], Timestamp=when, DeviceName=device, ReportId=report, **extra)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("servers")
    rows = [_child("2026-03-01T10:00:00Z", "exch01.contoso.local", 1),
            _child("2026-03-01T10:10:00Z", "exch02.contoso.local", 2),
            _child("2026-03-01T10:40:00Z", "EXCH01", 3),                    # the same server, its short name
            _child("2026-03-01T12:00:00Z", "exch01.contoso.local", 4)]      # 80 minutes later
    helpers.write_jsonl(folder / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", rows)
    return folder


def _spans(folder: Path, *args: str) -> list[tuple[str, str, str, int]]:
    found = json.loads(_detect(str(folder), "-r", SEED, "-q", "-f", "json", "-j", "1", *args))
    return sorted((i["DeviceName"], i["start"][11:16], i["end"][11:16], len(i["evidence"])) for i in found)


def test_two_servers_and_a_gap_larger_than_the_window(servers: Path) -> None:
    assert _spans(servers) == [("exch01.contoso.local", "10:00", "10:40", 2),
                               ("exch01.contoso.local", "12:00", "12:00", 1),
                               ("exch02.contoso.local", "10:10", "10:10", 1)]


def test_incident_window_changes_the_grouping(servers: Path) -> None:
    assert _spans(servers, "--incident-window", "2h") == [("exch01.contoso.local", "10:00", "12:00", 3),
                                                          ("exch02.contoso.local", "10:10", "10:10", 1)]
    assert len(_spans(servers, "--incident-window", "30m")) == 4
    assert _spans(servers, "--incident-window", "PT1H20M") == _spans(servers, "--incident-window", "2h")


@pytest.mark.parametrize("bad", ["soon", "0m", "-5m", "1w"])
def test_a_bad_incident_window_is_one_line(servers: Path, bad: str) -> None:
    code, out, err = run_cli(["detect", str(servers), "-r", SEED, "--incident-window", bad])
    assert code == 2 and out == ""
    assert err.startswith("error: --incident-window:") and len(err.strip().splitlines()) == 1, err


def test_hostile_values_in_entities_stay_inert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    nasty = "=1+1\x1b]0;x\x07\x1b[2J\u202eexe.txt"
    helpers.write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents",
                        [_child("2026-03-01T10:00:00Z", "exch01\x1b[31m", 1, AccountName=nasty)])
    table = _detect(str(tmp_path), "-r", SEED, "-q")
    assert "\x1b" not in table and "\x07" not in table and "\u202e" not in table
    assert "accounts: =1+1\\x1b]0;x\\x07\\x1b[2J\\u202eexe.txt" in table
    assert "Incident 1/1 CRIT exch01\\x1b[31m " in table
    [incident] = json.loads(_detect(str(tmp_path), "-r", SEED, "-q", "-f", "json"))
    assert incident["entities"]["accounts"] == [nasty]  # JSON stays exact
    assert incident["DeviceName"] == "exch01\x1b[31m"
    rows = list(csv.DictReader(io.StringIO(_detect(str(tmp_path), "-r", SEED, "-q", "-f", "csv"))))
    assert rows[0]["AccountName"] == "'" + nasty
    assert rows[0]["DeviceName"] == "exch01\x1b[31m"  # not a formula: exact, as in the flat CSV
