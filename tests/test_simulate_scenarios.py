"""Scenarios reach the rules for the right reason: a renamed PowerShell host is known by its original
file name, an -EncodedCommand is read through its decoded text, an updater's signature (not only its
place) decides, the Front End agent runs in its own process, a vendor's tuning leaves what its scenario
says, and a proxy module's cmdlet names reach the rule and are recognised."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt import tuning
from exhunt.hunt import HuntOptions, hunt, open_local
from exhunt.rule import load_rules
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import Scenario, parse, shipped

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


# -- scenarios of issue 13: the signature branch, the Front End service, a vendor under tuning, proxy modules --

RULES = {r.slug: r for r in load_rules(None)}
SLUG_OF = {r.id: r.slug for r in RULES.values()}
#: one format of each family (the matrix in test_simulate.py runs every one)
FAMILY_FORMATS = ["mde-csv", "evtx-json"]


def _alerts(scenario: Scenario, fmt: str, out: Path, *slugs: str) -> list[dict[str, object]]:
    writers()[fmt].write(generate([scenario]), out)
    rules = [RULES[s] for s in slugs] if slugs else list(RULES.values())
    result = hunt(sorted(p for p in out.iterdir() if p.is_file()), rules, HuntOptions(jobs=1))
    return [{**a, "rule": r.slug} for a, r in zip(result.alerts, result.rules, strict=True)]


def _variant(scenario: str, *edits: tuple[str, str, int]) -> Scenario:
    """A shipped scenario with pieces of its text changed: (old, new, how many times old occurs)."""
    text = SCENARIOS[scenario].path.read_text(encoding="utf-8")
    for old, new, count in edits:
        assert text.count(old) == count, (old, text.count(old))
        text = text.replace(old, new)
    return parse(text, SCENARIOS[scenario].path)


def test_issue13_scenarios_are_shipped() -> None:
    assert {
        "attack-frontend-agent",
        "attack-fake-exsetup",
        "benign-exchange-cu-tempcopy",
        "benign-vendor-agent-msi",
        "benign-nondefault-root",
        "benign-implicit-remoting-proxy",
    } <= set(SCENARIOS)


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_a_foreign_signature_in_an_updater_place_alerts(tmp_path: Path, fmt: str) -> None:
    alerts = _alerts(SCENARIOS["attack-fake-exsetup"], fmt, tmp_path, *WRITER_RULES)
    # (Defender writes the initiating process's path in lower case)
    got = sorted(
        (a["rule"], a["FileName"], str(a["InitiatingProcessFolderPath"]).lower(), a["WriterSigner"]) for a in alerts
    )
    assert got == [
        ("exchange-agent-config-tampering", "agents.config", r"c:\setup.exe", "not Microsoft (Tailspin Toys Ltd)"),
        (
            "exchange-agent-dll-placement",
            "Microsoft.Exchange.Transport.Agent.Routing.dll",
            r"c:\windows\temp\exchangesetup\exsetup.exe",
            "not Microsoft (unsigned)",
        ),
    ]


#: the rules that judge a file's writer by place and signature
WRITER_RULES = ("exchange-agent-dll-placement", "exchange-agent-config-tampering")


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_without_a_signature_on_record_the_places_decide(tmp_path: Path, fmt: str) -> None:
    """The control for the test above: the same writers with no signature facts pass by their places alone,
    so it is the signature that makes them alert."""
    sc = _variant("attack-fake-exsetup", ("      signed: false\n", "", 1), ("      signer: Tailspin Toys Ltd\n", "", 1))
    assert _alerts(sc, fmt, tmp_path, *WRITER_RULES) == []


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_the_cu_passes_on_microsoft_s_signature_not_its_place(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "ms").mkdir()
    assert _alerts(SCENARIOS["benign-exchange-cu-tempcopy"], fmt, tmp_path / "ms", *WRITER_RULES) == []
    foreign = _variant("benign-exchange-cu-tempcopy", ("signer: Microsoft Corporation", "signer: Tailspin Toys Ltd", 2))
    (tmp_path / "foreign").mkdir()
    got = sorted((a["rule"], a["FileName"]) for a in _alerts(foreign, fmt, tmp_path / "foreign", *WRITER_RULES))
    assert got == [
        ("exchange-agent-config-tampering", "agents.config"),
        ("exchange-agent-config-tampering", "fetagents.config"),
        ("exchange-agent-dll-placement", "Microsoft.Exchange.Data.Transport.dll"),
        ("exchange-agent-dll-placement", "Microsoft.Exchange.Transport.Agent.Malware.dll"),
    ]


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_front_end_agent_runs_in_the_front_end_process(tmp_path: Path, fmt: str) -> None:
    alerts = _alerts(
        SCENARIOS["attack-frontend-agent"], fmt, tmp_path, "exchange-transport-foreign-module",
        "exchange-transport-agent-chain", "exchange-agent-config-tampering",
    )
    by = {a["rule"]: a for a in alerts}
    assert len(alerts) == 3
    assert by["exchange-transport-foreign-module"]["InitiatingProcessFileName"] == "MSExchangeFrontendTransport.exe"
    assert by["exchange-agent-config-tampering"]["FileName"] == "fetagents.config"
    # the Front End Transport service's restart is the chain's restart stage (7036, its process, Restart-Service)
    assert by["exchange-transport-agent-chain"]["Stages"] == (
        "agent DLL placed, agent cmdlet or config change, transport service restart"
    )


def test_the_vendor_tuning_file_under_detect_tuning(tmp_path: Path) -> None:
    """`exhunt detect --tuning` with the vendor's entries leaves what the scenario's expect.tuned says, and
    every suppression is by one of its entries."""
    sc = SCENARIOS["benign-vendor-agent-msi"]
    assert isinstance(sc.tuning, Path)
    left = {}
    for fmt in FAMILY_FORMATS:
        out = tmp_path / fmt
        out.mkdir()
        writers()[fmt].write(generate([sc]), out)
        code, stdout, stderr = run_cli(
            ["detect", str(out), "--flat", "-f", "jsonl", "--show-suppressed", "--tuning", str(sc.tuning)]
        )
        assert code == 0, stderr
        rows = [json.loads(line) for line in stdout.splitlines()]
        kept = sorted(SLUG_OF[r["rule_id"]] for r in rows if r["suppressed_by"] is None)
        by_entry = Counter(r["suppressed_by"]["id"] for r in rows if r["suppressed_by"])
        left[fmt] = kept
        assert set(by_entry) == {"northwind-signature-agent", "northwind-installer-powershell",
                                 "northwind-agent-module"}, by_entry
        assert len(rows) > len(kept) + 4
    assert left == {
        "mde-csv": ["exchange-transport-agent-chain"],
        "evtx-json": ["exchange-agent-config-tampering", "exchange-transport-agent-chain"],
    }


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_an_impostor_under_the_vendor_s_name_is_not_tuned_away(tmp_path: Path, fmt: str) -> None:
    """The same install from another folder (a DLL the vendor does not ship): the entries no longer match."""
    sc = _variant(
        "benign-vendor-agent-msi",
        (
            r"C:\Program Files\Northwind\Signatures for Exchange\Northwind.Signatures.TransportAgent.dll",
            r"C:\ProgramData\Northwind\Northwind.Signatures.TransportAgent.dll",
            5,
        ),
    )
    alerts = _alerts(sc, fmt, tmp_path)
    outcome = tuning.apply(alerts, tuning.load([SCENARIOS["benign-vendor-agent-msi"].tuning]), [
        RULES[str(a["rule"])] for a in alerts])
    kept = {str(a["rule"]) for a in outcome.kept}
    assert {"exchange-transport-agent-cmdlet", "exchange-transport-agent-seed",
            "exchange-transport-foreign-module"} <= kept
    # only the Enable-TransportAgent of the cmdlet log (the agent's name alone) goes, as the entry says
    assert [(str(s.alert["rule"]), s.alert.get("Cmdlet")) for s in outcome.suppressed] == (
        [("exchange-transport-agent-cmdlet", "Enable-TransportAgent")] if fmt == "evtx-json" else []
    )


def _rows(out: Path, kql: str) -> list[dict[str, object]]:
    backend, _ = open_local(sorted(out.iterdir()), [kql], HuntOptions(jobs=1))
    with backend:
        return backend.query(kql).to_pylist()


@pytest.mark.parametrize("fmt", FAMILY_FORMATS)
def test_proxy_module_reaches_the_rule_and_is_recognised(tmp_path: Path, fmt: str) -> None:
    cmdlet = "exchange-transport-agent-cmdlet"
    (tmp_path / "proxy").mkdir()
    assert _alerts(SCENARIOS["benign-implicit-remoting-proxy"], fmt, tmp_path / "proxy", cmdlet) == []
    rows = _rows(
        tmp_path / "proxy",
        "DeviceEvents | extend C = tostring(parse_json(AdditionalFields).Command) | where C endswith '-TransportAgent'"
        " | summarize n = count() by C",
    )
    got = sorted((str(r["C"]), int(str(r["n"]))) for r in rows)
    if fmt == "evtx-json":
        # 4104 keeps the module's text, so its cmdlet names reach the rule, which knows the module;
        # Get-TransportAgent twice: listed in the module, then typed
        assert got == [("Enable-TransportAgent", 1), ("Get-TransportAgent", 2), ("Install-TransportAgent", 1)]
    else:
        # importing the module runs none of its functions: Defender records only the typed command
        assert got == [("Get-TransportAgent", 1)]
    # the control: the same block outside a proxy module (no tmp_ path, no proxy markers) is an install
    typed = _variant(
        "benign-implicit-remoting-proxy",
        (r"      path: 'C:\Users\exadmin\AppData\Local\Temp\tmp_q4vz1k0m.x2c\tmp_q4vz1k0m.x2c.psm1'" + "\n", "", 1),
        ("      runs: []\n", "", 1),
        ("            .ForwardHelpTargetName", "            .Synopsis", 1),
        ("'Import-RecipientDataProperty', 'Install-TransportAgent',", "'Import-RecipientDataProperty',", 1),
        ("'Enable-TransportAgent', 'Enable-TransportRule'", "'Enable-TransportRule'", 1),
    )
    (tmp_path / "typed").mkdir()
    alerts = _alerts(typed, fmt, tmp_path / "typed", cmdlet)
    assert sorted(str(a["Cmdlet"]) for a in alerts) == ["Install-TransportAgent"]
