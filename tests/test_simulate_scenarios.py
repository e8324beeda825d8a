"""The evasion scenarios reach the cmdlet rule for the right reason: a renamed PowerShell host is
known by its original file name, and an -EncodedCommand is read through its decoded text."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import load_rules
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import shipped

SCENARIOS = {s.id: s for s in shipped()}
CMDLET_RULE = [r for r in load_rules(None) if r.slug == "exchange-transport-agent-cmdlet"]
#: The formats that hold process starts (the admin audit log holds cmdlets only).
PROCESS_FORMATS = sorted(f for f, w in writers().items() if w.kinds is None or "process" in w.kinds)


def _process_alerts(scenario: str, fmt: str, out: Path) -> list[dict[str, object]]:
    writers()[fmt].write(generate([SCENARIOS[scenario]]), out)
    result = hunt(sorted(p for p in out.iterdir() if p.is_file()), CMDLET_RULE, HuntOptions(jobs=1))
    return [a for a in result.alerts if str(a.get("Source", "")).startswith("process command line")]


def test_new_scenarios_are_shipped() -> None:
    assert {
        "attack-remote-ems-install",
        "attack-agents-config-edit",
        "attack-encoded-command",
        "attack-renamed-powershell",
        "attack-nondefault-root-dll",
        "benign-exchange-su-msiexec",
    } <= set(SCENARIOS)


@pytest.mark.parametrize("fmt", PROCESS_FORMATS)
def test_renamed_host_is_powershell_by_original_name(tmp_path: Path, fmt: str) -> None:
    rows = _process_alerts("attack-renamed-powershell", fmt, tmp_path)
    got = sorted((r["FileName"], r["Source"], r["AgentName"]) for r in rows)
    powershell = ("msupdate.exe", "process command line (PowerShell)", "Header Agent")
    if writers()[fmt].family == "windows":
        # Sysmon 1 carries OriginalFileName; Security 4688 has no version info, so its row is a plain process
        assert got == [("msupdate.exe", "process command line", "Header Agent"), powershell]
    else:
        assert got == [powershell]


@pytest.mark.parametrize("fmt", PROCESS_FORMATS)
def test_encoded_command_is_read_decoded(tmp_path: Path, fmt: str) -> None:
    rows = _process_alerts("attack-encoded-command", fmt, tmp_path)
    # one process start: Sysmon 1 and Security 4688 on a Windows host, one row on a Defender host
    assert len(rows) == (2 if writers()[fmt].family == "windows" else 1)
    for row in rows:
        assert "-EncodedCommand" in str(row["ProcessCommandLine"])
        assert "Install-TransportAgent" not in str(row["ProcessCommandLine"])
        assert (row["Cmdlets"], row["AgentName"], row["TransportAgentFactory"]) == (
            "Install-TransportAgent, Enable-TransportAgent",
            "Mail Archive Agent",
            "Contoso.Archive.ArchiveAgentFactory",
        )
