"""`exhunt audit` on real agent DLLs (compiled with mono-mcs, signed with osslsigncode by
tests/agent_build.py) laid out as a KAPE collection: the real readers (dnfile, signify, YARA)
decide every verdict. Skipped, with the reason, where those tools are missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from audit_layout import HUB_DEFAULT, V15, V15_REL, agents_config, builtin_agent, windows_to_local
from conftest import run_cli
from exhunt.audit import authenticode


@pytest.fixture
def trusting(agent_dlls: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Trust the test CA, and take the stand-in root for one of Microsoft's."""
    monkeypatch.setattr(authenticode, "TRUST", authenticode.Trust(
        extra_roots=(agent_dlls.test_ca_pem, agent_dlls.standin_ms_root_pem),
        microsoft_roots=authenticode.MICROSOFT_ROOTS | {agent_dlls.standin_ms_root_sha1}))
    return agent_dlls


def put(src: Path, drive: Path, winpath: str) -> str:
    dest = windows_to_local(drive, winpath)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return winpath


def test_real_dlls(tmp_path: Path, trusting: Any) -> None:
    from agent_build import LIGHTNEURON_FACTORY, OTHER_FACTORY, ROUTING_FACTORY

    b = trusting
    top = tmp_path / "EXCH01"
    c = top / "C"
    agents = [
        {"name": "Contoso Archive (Microsoft-signed)", "factory": ROUTING_FACTORY,
         "path": put(b.signed_standin_ms, c, V15 + r"\TransportRoles\agents\Archive\Contoso.Mail.Archive.dll")},
        {"name": "Contoso Archive", "factory": ROUTING_FACTORY,
         "path": put(b.signed_valid, c, r"C:\Program Files\Contoso\Archive\Contoso.Mail.Archive.dll")},
        {"name": "Contoso Archive (tampered)", "factory": ROUTING_FACTORY,
         "path": put(b.signed_invalid, c, r"C:\Program Files\Contoso\Tampered\Contoso.Mail.Archive.dll")},
        {"name": "Unsigned Archive", "factory": ROUTING_FACTORY,
         "path": put(b.routing, c, r"C:\ProgramData\Cache\Contoso.Mail.Archive.dll")},
        {"name": "Transport Rule Agent", "factory": builtin_agent("Transport Rule Agent")["factory"],
         "path": put(b.signed_untrusted_ms, c, builtin_agent("Transport Rule Agent")["path"])},
        {"name": "Content Filter Agent", "factory": LIGHTNEURON_FACTORY,
         "path": put(b.lightneuron_like, c, V15 + r"\Bin\Microsoft.Exchange.Security.Interop.dll")},
        {"name": "Notes", "factory": OTHER_FACTORY,
         "path": put(b.other_base, c, r"C:\Program Files\Contoso\Notes\Contoso.Mail.Notes.dll")},
        {"name": "Native", "factory": "Native.Factory", "path": put(b.native, c, r"C:\Program Files\Native\n.dll")},
    ]
    put(b.native, c, V15 + r"\Bin\exdbdata.dll")
    shared = windows_to_local(c, V15 + r"\TransportRoles\Shared")
    shared.mkdir(parents=True)
    (shared / "agents.config").write_text(agents_config(agents))
    put(b.signed_standin_ms, c, V15 + r"\Bin\ExSetup.exe")
    code, out, err = run_cli(["audit", str(top), "-f", "json", "--flat"])
    assert code == 0, err
    rows = json.loads(out)
    got = sorted((r["AgentName"] or r["FolderPath"], r["rule_id"]) for r in rows)
    assert got == sorted([
        ("Contoso Archive (Microsoft-signed)", "audit-builtin-agent"),
        ("Contoso Archive", "audit-third-party-signed"),
        ("Contoso Archive", "audit-outside-exchange"),
        ("Contoso Archive (tampered)", "audit-bad-signature"),
        ("Contoso Archive (tampered)", "audit-outside-exchange"),
        ("Unsigned Archive", "audit-third-party-unsigned"),
        ("Unsigned Archive", "audit-suspicious-location"),
        ("Transport Rule Agent", "audit-builtin-impersonation"),
        ("Transport Rule Agent", "audit-factory-missing"),
        ("Content Filter Agent", "audit-builtin-impersonation"),
        ("Content Filter Agent", "audit-native-pinvoke"),
        ("Content Filter Agent", "audit-yara-match"),
        ("Notes", "audit-not-agent-factory"),
        ("Notes", "audit-third-party-unsigned"),
        ("Notes", "audit-outside-exchange"),
        ("Native", "audit-not-dotnet"),
        ("Native", "audit-yara-match"),  # the companion's configuration keys
        ("Native", "audit-third-party-unsigned"),
        ("Native", "audit-outside-exchange"),
    ])
    by = {(r["AgentName"], r["rule_id"]): r for r in rows}
    assert by[("Contoso Archive", "audit-third-party-signed")]["Signer"] == "Contoso Mail Tools"
    ms = by[("Contoso Archive (Microsoft-signed)", "audit-builtin-agent")]
    assert (ms["Signer"], ms["Verdict"]) == ("Microsoft Corporation", "built-in agent as shipped")
    fake_ms = by[("Transport Rule Agent", "audit-builtin-impersonation")]
    assert fake_ms["Signer"] == "Microsoft Corporation"  # says so, but its chain is no Microsoft root
    assert any(line.startswith("the DLL is not signed by Microsoft") for line in fake_ms["Evidence"])
    interop = by[("Content Filter Agent", "audit-native-pinvoke")]
    assert interop["Evidence"][0] == f"P/Invoke exdbdata.dll!MessageValidator -> {V15}\\Bin\\exdbdata.dll"
    assert by[("Content Filter Agent", "audit-yara-match")]["Evidence"][0].startswith("YARA rule(s) matched: ")
    tampered = by[("Contoso Archive (tampered)", "audit-bad-signature")]
    assert tampered["Verdict"] == "signature does not verify"


def test_default_install_with_real_dlls_and_baseline(tmp_path: Path, trusting: Any) -> None:
    """Built-in agents whose DLLs are signed by the stand-in Microsoft root: a clean audit; the
    baseline then catches one DLL swapped for the vendor-signed build."""
    b = trusting
    top = tmp_path / "EXCH02"
    c = top / "C"
    agents = [builtin_agent(n) for n in HUB_DEFAULT]
    for a in agents:
        put(b.signed_standin_ms, c, a["path"])
    shared = c / V15_REL / "TransportRoles" / "Shared"
    shared.mkdir(parents=True)
    (shared / "agents.config").write_text(agents_config(agents))
    (c / V15_REL / "Bin").mkdir()
    put(b.signed_standin_ms, c, V15 + r"\Bin\ExSetup.exe")
    base = tmp_path / "baseline.json"
    code, out, err = run_cli(["audit", str(top), "-f", "json", "--flat", "--save-baseline", str(base)])
    assert code == 0, err
    rows = json.loads(out)
    # The stand-in DLL defines none of the built-in factories: that much the metadata says.
    assert sorted((r["AgentName"], r["rule_id"]) for r in rows) == [
        ("Malware Agent", "audit-builtin-agent"), ("Malware Agent", "audit-factory-missing"),
        ("Transport Rule Agent", "audit-builtin-agent"), ("Transport Rule Agent", "audit-factory-missing")]
    put(b.signed_valid, c, agents[1]["path"])
    _, out, _ = run_cli(["audit", str(top), "-f", "json", "--flat", "--baseline", str(base)])
    rows = json.loads(out)
    assert sorted((r["AgentName"], r["rule_id"]) for r in rows if r["AgentName"] == "Malware Agent") == [
        ("Malware Agent", "audit-baseline-dll-changed"), ("Malware Agent", "audit-builtin-impersonation"),
        ("Malware Agent", "audit-factory-missing")]


def test_a_signature_no_trusted_root_vouches_for_is_no_better_than_none(tmp_path: Path, agent_dlls: Any) -> None:
    from agent_build import ROUTING_FACTORY

    top = tmp_path / "EXCH03"
    c = top / "C"
    path = put(agent_dlls.signed_valid, c, r"C:\Program Files\Contoso\Archive\Contoso.Mail.Archive.dll")
    shared = c / V15_REL / "TransportRoles" / "Shared"
    shared.mkdir(parents=True)
    (shared / "agents.config").write_text(agents_config([{"name": "Contoso Archive", "factory": ROUTING_FACTORY,
                                                          "path": path}]))
    code, out, err = run_cli(["audit", str(top), "-f", "json", "--flat"])
    assert code == 0, err
    (unsigned,) = [r for r in json.loads(out) if r["rule_id"] == "audit-third-party-unsigned"]
    assert unsigned["Signer"] == "Contoso Mail Tools"
    assert unsigned["Evidence"][0].startswith("signed as Contoso Mail Tools, but by no publisher a trusted root "
                                              "vouches for: the certificate chain does not end at a root trusted")
