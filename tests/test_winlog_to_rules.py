"""Windows logs end to end: reader -> mapping -> shipped rule, with the parsed agent parameters.

The rules' own cases feed table rows directly; these tests make sure the rows the
Windows-log readers write carry what the rules read (script text key, Parameters bag).
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from winlog_gen import EXCHANGE, PS_OP, Ev, evtx_json, write_jsonl

SCRIPT = (
    "Install-TransportAgent -Name 'Security Interop Agent' "
    "-TransportAgentFactory Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory "
    "-AssemblyPath 'C:\\Windows\\Temp\\Microsoft.Exchange.Security.Interop.dll'\r\n"
    "Enable-TransportAgent -Identity 'Security Interop Agent'\r\n"
)


def _cmdlet_alerts(path: Path) -> list[dict[str, object]]:
    code, out, err = run_cli(["detect", str(path), "-f", "jsonl", "--flat", "-r", "exchange-transport-agent-cmdlet",
                              "--now", "2026-03-01T10:30:00Z"])
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_script_block_4104_reaches_the_cmdlet_rule_with_its_parameters(tmp_path: Path) -> None:
    block = Ev(PS_OP, 4104, 501, "2026-03-01T10:00:00Z", {
        "MessageNumber": 1, "MessageTotal": 1, "ScriptBlockText": SCRIPT,
        "ScriptBlockId": "5d0c3a54-1b8e-4f5e-9c37-0e6f1e2a9b11", "Path": "C:\\Windows\\Temp\\msinp.ps1"})
    alerts = _cmdlet_alerts(write_jsonl(tmp_path / "ps.jsonl", [evtx_json(block)]))
    dll = "C:\\Windows\\Temp\\Microsoft.Exchange.Security.Interop.dll"
    got = sorted((a["Cmdlet"], a["AgentName"], a["AssemblyPath"]) for a in alerts)
    assert got == [
        ("Enable-TransportAgent", "Security Interop Agent", dll),
        ("Install-TransportAgent", "Security Interop Agent", dll),
    ]
    assert {a["Escalation"] for a in alerts} == {"critical"}


def test_exchange_cmdlet_log_event_6_reaches_the_cmdlet_rule(tmp_path: Path) -> None:
    failed = Ev(EXCHANGE, 6, 77, "2026-03-01T10:00:00Z", [
        "Install-TransportAgent",
        "-Name \"Evil\" -TransportAgentFactory \"Evil.Factory\" -AssemblyPath \"C:\\Users\\Public\\evil.dll\"",
        "contoso.local/Users/attacker", "S-1-5-21-1-2-3-1104", "S-1-5-21-1-2-3-1104",
        "Remote-ManagementShell-Unknown", "8372 w3wp#MSExchangePowerShellAppPool", "", "", "", "",
        "The assembly could not be loaded."])
    alerts = _cmdlet_alerts(write_jsonl(tmp_path / "mgmt.jsonl", [evtx_json(failed)]))
    assert [(a["Cmdlet"], a["AgentName"], a["AssemblyPath"], a["Status"]) for a in alerts] == [
        ("Install-TransportAgent", "Evil", "C:\\Users\\Public\\evil.dll", "Failure")]
