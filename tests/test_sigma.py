"""Sigma rules as input (exhunt.sigmarule): converted with pySigma's Kusto backend and exhunt's
pipelines, run on simulated EVTX-style and Defender data, exact alerts asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from exhunt.errors import RuleError
from exhunt.rule import load_rule
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import shipped

SIGMA = Path(__file__).parent / "fixtures" / "sigma"
CMDLINE = "5b0e3c1a-7d42-4f86-9a1e-2c6b8d4f0e71"
CMDLET_LOG = "0f6d2b84-3c1e-4a57-b9d0-8e4a1c7f3b26"
CMDLET_FAILED = "9a3c5e17-6b2d-4f08-8c41-d7e2a9b06f53"
EDGE_CHILD = "2e7b9d40-1f3a-4c6e-a5b8-6d0c3f9e7a12"


def _simulate(tmp_path: Path, scenario: str, fmt: str) -> Path:
    out = tmp_path / f"{scenario}-{fmt}"
    out.mkdir()
    found = {s.id: s for s in shipped()}[scenario]
    writers()[fmt].write(generate([found]), out)
    return out


def _alerts(rules: Path | str, data: Path) -> list[tuple[str, ...]]:
    code, out, err = run_cli(["detect", "-r", str(rules), "--flat", "--format", "jsonl", str(data)])
    assert code in (0, 1), err
    rows = []
    for line in out.splitlines():
        a = json.loads(line)
        what = a.get("ProcessCommandLine") or f"{a.get('CmdletName')} {a.get('Status')} {a.get('EventID')}"
        rows.append((a["rule_id"], a["Timestamp"][:19], a.get("FileName") or "", what[:60],
                     str(a.get("source_record"))))
    return sorted(rows)


PS = '"powershell.exe" & {Add-PSSnapin Microsoft.Exchange.Manageme'  # cut at 60


@pytest.mark.parametrize(("scenario", "fmt", "expected"), [
    ("atomic-t1505-002", "evtx-json", [
        # Sysmon 1 and Security 4688 both record the PowerShell start
        (CMDLINE, "2026-11-21T02:00:05", "powershell.exe", PS, "line 3"),
        (CMDLINE, "2026-11-21T02:00:05", "powershell.exe", PS, "line 4"),
        # the install failed (event 6): the keyword rule and the failure rule
        (CMDLET_LOG, "2026-11-21T02:00:08", "", "Install-TransportAgent Failure 6", "line 6"),
        (CMDLET_FAILED, "2026-11-21T02:00:08", "", "Install-TransportAgent Failure 6", "line 6"),
    ]),
    ("atomic-t1505-002", "mde-csv", [
        (CMDLINE, "2026-11-21T02:00:05", "powershell.exe", PS, "line 3"),
    ]),
    ("atomic-t1505-002", "exchange-admin-audit", [
        # the admin audit export has no event id: EventID 6 became Status "Failure"
        (CMDLET_LOG, "2026-11-21T02:00:08", "", "Install-TransportAgent Failure None", "line 3"),
        (CMDLET_FAILED, "2026-11-21T02:00:08", "", "Install-TransportAgent Failure None", "line 3"),
    ]),
    ("lightneuron-emulation", "evtx-json", [
        (CMDLET_LOG, "2026-11-21T02:00:38", "", "Install-TransportAgent Success 1", "line 12"),
        (EDGE_CHILD, "2026-11-21T02:46:05", "cmd.exe", "cmd /C whoami /all", "line 25"),
        (EDGE_CHILD, "2026-11-21T02:46:05", "cmd.exe", "cmd /C whoami /all", "line 26"),
    ]),
    ("lightneuron-emulation", "mde-csv", [
        (EDGE_CHILD, "2026-11-21T02:46:05", "cmd.exe", "cmd /C whoami /all", "line 7"),
    ]),
    ("attack-remote-ems-install", "evtx-json", [
        (CMDLET_LOG, "2026-11-21T02:00:02", "", "Install-TransportAgent Success 1", "line 1"),
    ]),
    # the cmdlet ran in a remote Exchange session: no command line carries it
    ("attack-remote-ems-install", "mde-csv", []),
])
def test_sigma_rules_on_simulated_data(tmp_path: Path, scenario: str, fmt: str,
                                       expected: list[tuple[str, ...]]) -> None:
    data = _simulate(tmp_path, scenario, fmt)
    assert _alerts(SIGMA, data) == sorted(expected)


EXCHANGE_BIN = r"C:\Program Files\Microsoft\Exchange Server\V15\Bin"


def test_edgetransport_filters(tmp_path: Path) -> None:
    """conhost.exe and OleConverter.exe in Exchange's Bin folder are left out; an OleConverter.exe
    elsewhere and cmd.exe alert; a child of another parent does not."""
    parent = f"EdgeTransport.exe,{EXCHANGE_BIN}\\EdgeTransport.exe"
    rows = [
        ("conhost.exe", r"C:\Windows\System32\conhost.exe", parent),
        ("OleConverter.exe", f"{EXCHANGE_BIN}\\OleConverter.exe", parent),
        ("OleConverter.exe", r"C:\Users\Public\Bin\OleConverter.exe", parent),
        ("cmd.exe", r"C:\Windows\System32\cmd.exe", parent),
        ("cmd.exe", r"C:\Windows\System32\cmd.exe", r"w3wp.exe,C:\Windows\System32\inetsrv\w3wp.exe"),
    ]
    lines = ["Timestamp,DeviceId,DeviceName,ActionType,FileName,FolderPath,ProcessCommandLine,"
             "InitiatingProcessFileName,InitiatingProcessFolderPath,ReportId"]
    lines += [f"2026-11-21T03:00:0{i}Z,d1,exch01,ProcessCreated,{name},{path},{name},{par},{i + 1}"
              for i, (name, path, par) in enumerate(rows)]
    (tmp_path / "DeviceProcessEvents.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _alerts(SIGMA / "edgetransport-child.yml", tmp_path) == [
        (EDGE_CHILD, "2026-11-21T03:00:02", "OleConverter.exe", "OleConverter.exe", "line 4"),
        (EDGE_CHILD, "2026-11-21T03:00:03", "cmd.exe", "cmd.exe", "line 5"),
    ]


def test_conversion_queries_and_metadata() -> None:
    rule = load_rule(SIGMA / "transport-agent-cmdlet-failed.yml")
    assert rule.query.splitlines() == [
        "ExchangeAdminAuditLogs",
        '| extend EventText = strcat_delim(" ", CmdletName, CmdletParameters, Caller, TargetObject, RunspaceType, '
        'HostProcess, ErrorMessage)',
        '| where Status =~ "Failure" and EventText contains "Install-TransportAgent"',
        "| extend Timestamp = TimeGenerated, DeviceName = Computer",
    ]
    assert (rule.id, rule.severity, rule.tactics, rule.techniques) == (
        CMDLET_FAILED, "high", ["Persistence"], ["T1505.002"])
    assert rule.meta["falsePositives"] == ["An administrator's failed attempt at an approved agent"]
    assert rule.meta["sigma"]["status"] == "experimental" and rule.meta["sigma"]["author"] == "exhunt tests"
    edge = load_rule(SIGMA / "edgetransport-child.yml")
    assert edge.severity == "critical" and edge.doc["severity"] == "High"
    assert edge.query.startswith(
        'DeviceProcessEvents\n| where InitiatingProcessFolderPath endswith "\\\\EdgeTransport.exe"')


def test_other_windows_logs_search_the_rendered_text(tmp_path: Path) -> None:
    rule = tmp_path / "sys.yml"
    rule.write_text("title: t\nlogsource:\n  product: windows\n  service: system\ndetection:\n"
                    "  keywords:\n    - 'MSExchangeTransport'\n  sel:\n    Provider_Name: 'Service Control Manager'\n"
                    "  condition: keywords and sel\n", encoding="utf-8")
    assert load_rule(rule).query.splitlines() == [
        "Event", '| where EventLog =~ "System"',
        '| where RenderedDescription contains "MSExchangeTransport" and Source =~ "Service Control Manager"',
        "| extend Timestamp = TimeGenerated, DeviceName = Computer"]


def test_convert_writes_a_valid_rule(tmp_path: Path) -> None:
    for src in sorted(SIGMA.glob("*.yml")):
        out = tmp_path / f"{src.stem}.yaml"
        code, _, err = run_cli(["rules", "convert", str(src), "-o", str(out)])
        assert code == 0, err
        doc = yaml.safe_load(out.read_text(encoding="utf-8"))
        assert doc["query"] == load_rule(src).query and "title" not in doc
        code, _, err = run_cli(["rules", "validate", str(out)])
        assert code == 0, err
    doc = yaml.safe_load((tmp_path / "transport-agent-cmdline.yaml").read_text(encoding="utf-8"))
    assert doc["exhunt"]["references"] == ["https://attack.mitre.org/techniques/T1505/002/"]
    assert doc["exhunt"]["sigma"]["date"] == "2026-12-02"
    # the converted file hunts exactly as the Sigma file does
    data = _simulate(tmp_path, "atomic-t1505-002", "mde-csv")
    assert _alerts(tmp_path / "transport-agent-cmdline.yaml", data) == _alerts(
        SIGMA / "transport-agent-cmdline.yml", data)


def test_validate_and_show_take_sigma_files() -> None:
    code, _, err = run_cli(["rules", "validate", str(SIGMA)])
    assert code == 0 and "4 rules, 4 ok" in " ".join(err.split()), err
    code, out, _ = run_cli(["rules", "show", str(SIGMA / "edgetransport-child.yml")])
    assert code == 0 and "severity critical" in out and "DeviceProcessEvents" in out


BAD = [
    ("  product: windows\n  service: msexchange-management", "    Foo: bar",
     "bad.yml:7: field 'Foo' has no mapping to ExchangeAdminAuditLogs; use one of Caller, CmdletName"),
    ("  category: process_creation\n  product: windows", "    Foo: bar",
     "bad.yml:7: field 'Foo' has no mapping to DeviceProcessEvents"),
    ("  category: process_creation\n  product: windows", "    CommandLine|nosuchmod: bar",
     "bad.yml:7: Sigma conversion failed: Unknown modifier 'nosuchmod'"),
    ("  product: windows\n  service: nosuchservice", "    EventID: 1",
     "bad.yml:4: Windows log source service 'nosuchservice' has no known channel"),
    ("  product: windows\n  service: system", "    ServiceName: x",
     "bad.yml:7: field 'ServiceName' has no mapping to Event; use one of Channel"),
    ("  category: nosuchcat", "    Foo: x",
     "bad.yml:3: log source category 'nosuchcat' has no Defender table"),
]


@pytest.mark.parametrize(("logsource", "selection", "message"), BAD)
def test_conversion_errors_name_file_and_line(tmp_path: Path, logsource: str, selection: str, message: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(f"title: bad\nlogsource:\n{logsource}\ndetection:\n  selection:\n{selection}\n"
                   "  condition: selection\n", encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rule(bad)
    assert str(info.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":" + message.split(":", 1)[1])
    code, _, err = run_cli(["detect", "-r", str(bad), str(tmp_path)])
    assert code == 2 and "Traceback" not in err and "bad.yml" in err


def test_condition_error_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "cond.yml"
    bad.write_text("title: x\nlogsource: {category: process_creation}\ndetection:\n  sel:\n    CommandLine: a\n"
                   "  condition: sel and\n", encoding="utf-8")
    code, _, err = run_cli(["rules", "convert", str(bad)])
    assert code == 2 and f"{bad}:6: Sigma condition not understood" in " ".join(err.split()), err


# --- SigmaHQ's own rules, where a checkout is at hand -------------------------------------------

SIGMAHQ_RULES = {
    "rules/windows/builtin/msexchange/win_exchange_transportagent.yml": "4fe151c2-ecf9-4fae-95ae-b88ec9c2fca6",
    "rules/windows/builtin/msexchange/win_exchange_transportagent_failed.yml": "c7d16cae-aaf3-42e5-9c1c-fb8553faa6fa",
    "rules/windows/process_creation/proc_creation_win_powershell_msexchange_transport_agent.yml":
        "83809e84-4475-4b69-bc3e-4aad8568612f",
    "rules/windows/process_creation/proc_creation_win_wmi_backdoor_exchange_transport_agent.yml":
        "797011dc-44f4-4e6f-9f10-a8ceefbe566b",
}


def _sigmahq() -> Path:
    candidates = [os.environ.get("EXHUNT_SIGMAHQ", ""), "/work/shared/sigma", "/work/shared/repos/sigma"]
    for c in candidates:
        if c and (Path(c) / next(iter(SIGMAHQ_RULES))).is_file():
            return Path(c)
    pytest.skip("no SigmaHQ/sigma checkout: set EXHUNT_SIGMAHQ to one (looked in /work/shared/sigma, "
                "/work/shared/repos/sigma)")


def test_sigmahq_rules_convert_and_alert(tmp_path: Path) -> None:
    """The four SigmaHQ rules for T1505.002 convert, validate and alert as our own rules of the
    same shapes do (tests/fixtures/sigma: keyword, EventID 6 + Data|contains, CommandLine|contains,
    the EdgeTransport.exe child with its filters)."""
    root = _sigmahq()
    rules = tmp_path / "sigmahq"
    rules.mkdir()
    for rel in SIGMAHQ_RULES:
        (rules / Path(rel).name).write_bytes((root / rel).read_bytes())
    code, _, err = run_cli(["rules", "validate", str(rules)])
    assert code == 0, err
    ours = {CMDLET_LOG: SIGMAHQ_RULES[next(iter(SIGMAHQ_RULES))], CMDLET_FAILED: list(SIGMAHQ_RULES.values())[1],
            CMDLINE: list(SIGMAHQ_RULES.values())[2], EDGE_CHILD: list(SIGMAHQ_RULES.values())[3]}
    for scenario, fmt in [("atomic-t1505-002", "evtx-json"), ("lightneuron-emulation", "mde-csv")]:
        data = _simulate(tmp_path, scenario, fmt)
        expected = sorted((ours[r[0]], *r[1:]) for r in _alerts(SIGMA, data))
        assert _alerts(rules, data) == expected


def test_rules_test_runs_cases_beside_a_sigma_rule() -> None:
    rules = [str(SIGMA / "edgetransport-child.yml"), str(SIGMA / "transport-agent-cmdlet-failed.yml")]
    code, _, err = run_cli(["rules", "test", "-v", *rules])
    assert code == 0 and "4 passed, 0 failed" in err, err


def test_several_channels_and_hostile_values_stay_literals(tmp_path: Path) -> None:
    rule = tmp_path / "ps.yml"
    rule.write_text("title: t\nlogsource:\n  product: windows\n  service: powershell\ndetection:\n"
                    "  keywords:\n    - 'a\" or true //'\n  condition: keywords\n", encoding="utf-8")
    assert load_rule(rule).query.splitlines()[:3] == [
        "Event",
        '| where EventLog in~ ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")',
        '| where RenderedDescription contains "a\\" or true //"']
    code, _, err = run_cli(["rules", "validate", str(rule)])
    assert code == 0, err


def test_security_log_rules_read_security_event(tmp_path: Path) -> None:
    """`service: security` -> SecurityEvent, Sigma's EventData names being its columns."""
    rule = tmp_path / "sec.yml"
    rule.write_text("title: 4688 under EdgeTransport\nlogsource:\n  product: windows\n  service: security\n"
                    "detection:\n  selection:\n    EventID: 4688\n"
                    "    ParentProcessName|endswith: '\\EdgeTransport.exe'\n"
                    "  condition: selection\nlevel: high\n", encoding="utf-8")
    assert load_rule(rule).query.splitlines()[:2] == [
        "SecurityEvent", '| where EventID == 4688 and ParentProcessName endswith "\\\\EdgeTransport.exe"']
    code, out, err = run_cli(["detect", "-r", str(rule), "--flat", "--format", "jsonl",
                              str(_simulate(tmp_path, "lightneuron-emulation", "evtx-json"))])
    found = [(a["NewProcessName"], a["DeviceName"], a["source_record"]) for a in map(json.loads, out.splitlines())]
    assert code in (0, 1) and found == [(r"C:\Windows\System32\cmd.exe", "exch01.contoso.local", "line 26")], err
