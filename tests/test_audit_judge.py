"""exhunt.audit.judge and run: each agent's findings on collections laid out here, with the facts of
placeholder DLLs (tests/audit_layout.py) so every verdict is decided by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit_layout import (
    EDGE_DEFAULT,
    FIRST_AGENT_LINE,
    HUB_DEFAULT,
    MS,
    SMTP_FACTORY_BASE,
    V15,
    V15_REL,
    builtin_agent,
    fake_facts,
    fake_signature,
    install,
    placeholder,
    windows_to_local,
)
from exhunt.audit import builtins
from exhunt.audit.run import AuditOptions, AuditResult, audit

LIST = f"C/{V15_REL}/TransportRoles/Shared/agents.config"
ALL_BUILTINS = [b.name for b in builtins.BUILT_INS if b.assembly]


def run(top: Path, **options: Any) -> AuditResult:
    return audit(top, AuditOptions(facts_of=fake_facts, signature_of=fake_signature, **options))


def got(result: AuditResult) -> list[tuple[str, str, str, str]]:
    """(rule_id, severity, subject, verdict) of every finding, sorted."""
    return sorted((f["rule_id"], f["severity"], f["AgentName"] or f.get("FolderPath") or f["source_file"],
                   f["Verdict"]) for f in result.findings)


def server(tmp_path: Path, extra: list[dict[str, Any]], **kw: Any) -> Path:
    top = tmp_path / "EXCH01"
    install(top / "C", [builtin_agent(n) for n in HUB_DEFAULT] + extra, template=False, **kw)
    return top


SHIPPED = [("audit-builtin-agent", "informational", n, "built-in agent as shipped") for n in sorted(HUB_DEFAULT)]


def test_default_install_every_builtin_as_shipped(tmp_path: Path) -> None:
    top = tmp_path / "EXCH01"
    install(top / "C", [builtin_agent(n) for n in ALL_BUILTINS], template=False)
    result = run(top)
    assert got(result) == sorted(("audit-builtin-agent", "informational", n, "built-in agent as shipped")
                                 for n in ALL_BUILTINS)
    assert (result.device, result.agents, result.judged) == ("EXCH01", 18, 18)
    first = min(result.findings, key=lambda f: int(f["source_record"][5:]))
    assert first["source_file"] == LIST and first["source_record"] == f"line {FIRST_AGENT_LINE}"
    assert first["TransportService"] == "Hub" and first["Signer"] == "Microsoft Corporation"
    assert first["Evidence"][:2] == ["the name 'Connection Filtering Agent' is that of Exchange's built-in "
                                     "Connection Filtering Agent",
                                     f"{V15}\\TransportRoles\\agents\\Hygiene\\Microsoft.Exchange.Transport.Agent."
                                     "Hygiene.dll is a built-in agent's assembly"]


def test_default_install_without_its_dlls_collected(tmp_path: Path) -> None:
    top = tmp_path / "EXCH01"
    install(top / "C", [builtin_agent(n) for n in HUB_DEFAULT], template=False, dlls=False)
    result = run(top)
    assert got(result) == SHIPPED
    assert "the DLL was not examined: its signature is not verified" in result.findings[0]["Evidence"]


def test_edge_server(tmp_path: Path) -> None:
    top = tmp_path / "EDGE01"
    local = install(top / "C", [builtin_agent(n) for n in EDGE_DEFAULT], template=False)
    (local / "TransportRoles" / "data" / "Adam").mkdir(parents=True)
    result = run(top)
    assert {f["TransportService"] for f in result.findings} == {"Edge"}
    assert len(result.findings) == 10 and {f["rule_id"] for f in result.findings} == {"audit-builtin-agent"}


def test_evil_agent_outside_exchange(tmp_path: Path) -> None:
    top = server(tmp_path, [{"name": "Mail Archiver", "factory": "Evil.ArchiverFactory",
                             "path": r"C:\Windows\Temp\arch.dll"}])
    placeholder(top / "C" / "Windows" / "Temp" / "arch.dll", {"Evil.ArchiverFactory": [SMTP_FACTORY_BASE]})
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-suspicious-location", "high", "Mail Archiver", "DLL in a suspicious folder"),
        ("audit-third-party-unsigned", "medium", "Mail Archiver", "DLL in a suspicious folder")])
    evil = next(f for f in result.findings if f["rule_id"] == "audit-suspicious-location")
    assert evil["Evidence"][0] == r"C:\Windows\Temp\arch.dll is in windows\temp"
    assert evil["source_record"] == f"line {FIRST_AGENT_LINE + 2}"
    assert evil["CollectedFile"] == "C/Windows/Temp/arch.dll"


def test_builtin_name_with_a_foreign_path(tmp_path: Path) -> None:
    lookalike = V15 + r"\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.ConnectionFiltering.dll"
    factory = "Microsoft.Exchange.Transport.Agent.ConnectionFiltering.ConnectionFilteringAgentFactory"
    top = server(tmp_path, [{"name": "Connection Filtering Agent", "factory": factory, "path": lookalike}])
    placeholder(windows_to_local(top / "C", lookalike), {factory: [SMTP_FACTORY_BASE]},
                pinvokes=[["exdbdata.dll", "MessageValidator"], ["kernel32.dll", "LoadLibraryW"]])
    placeholder(top / "C" / V15_REL / "Bin" / "exdbdata.dll", dotnet=False)
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-builtin-impersonation", "critical", "Connection Filtering Agent", "impersonates a built-in agent"),
        ("audit-native-pinvoke", "high", "Connection Filtering Agent", "impersonates a built-in agent")])
    crit = next(f for f in result.findings if f["rule_id"] == "audit-builtin-impersonation")
    assert crit["Evidence"][:3] == [
        "the name 'Connection Filtering Agent' is that of Exchange's built-in Connection Filtering Agent",
        f"Exchange's Connection Filtering Agent loads {V15}\\TransportRoles\\agents\\Hygiene\\"
        f"Microsoft.Exchange.Transport.Agent.Hygiene.dll, not {lookalike}",
        "the DLL is not signed by Microsoft (not signed)"]
    pinvoke = next(f for f in result.findings if f["rule_id"] == "audit-native-pinvoke")
    assert pinvoke["Evidence"][:2] == [f"P/Invoke exdbdata.dll!MessageValidator -> {V15}\\Bin\\exdbdata.dll",
                                       "Authenticode: not signed"]


def test_lightneuron_agent_in_bin(tmp_path: Path) -> None:
    dll = V15 + r"\Bin\Microsoft.Exchange.Security.Interop.dll"
    factory = "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory"
    top = server(tmp_path, [{"name": "Security Interop Agent", "factory": factory, "path": dll}])
    placeholder(windows_to_local(top / "C", dll), {factory: [SMTP_FACTORY_BASE]},
                known_hash="LightNeuron Transport Agent (ESET)", yara=["LightNeuron_TransportAgent_Names"],
                signer="Microsoft Corporation", valid=False)
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-bad-signature", "high", "Security Interop Agent", "LightNeuron (known hash)"),
        ("audit-builtin-impersonation", "critical", "Security Interop Agent", "LightNeuron (known hash)"),
        ("audit-lightneuron-hash", "critical", "Security Interop Agent", "LightNeuron (known hash)"),
        ("audit-yara-match", "high", "Security Interop Agent", "LightNeuron (known hash)")])


@pytest.mark.parametrize(("facts", "expected"), [
    ({"dotnet": False}, ("audit-not-dotnet", "high", "not a .NET assembly")),
    ({"factories": {"Other.Factory": [SMTP_FACTORY_BASE]}}, ("audit-factory-missing", "high", "factory missing")),
    ({"factories": {"Contoso.F": ["Contoso.Base", "System.Object"]}},
     ("audit-not-agent-factory", "high", "not an agent factory")),
])
def test_dll_content(tmp_path: Path, facts: dict[str, Any], expected: tuple[str, str, str]) -> None:
    path = r"C:\Program Files\Contoso\c.dll"
    top = server(tmp_path, [{"name": "Contoso", "factory": "Contoso.F", "path": path}])
    placeholder(windows_to_local(top / "C", path), signer="Contoso Ltd", issuer="Contoso CA", **facts)
    check_id, severity, verdict = expected
    assert got(run(top)) == sorted([*SHIPPED,
        (check_id, severity, "Contoso", verdict),
        ("audit-outside-exchange", "low", "Contoso", verdict),
        ("audit-third-party-signed", "low", "Contoso", verdict)])


def test_relative_path_missing_dll_unc_and_disabled(tmp_path: Path) -> None:
    top = server(tmp_path, [
        {"name": "Rel", "factory": "R.F", "path": r"TransportRoles\agents\Rel\rel.dll"},
        {"name": "Gone", "factory": "G.F", "path": r"C:\Program Files\Gone\g.dll"},
        {"name": "Share", "factory": "S.F", "path": r"\\files\agents\s.dll"},
        {"name": "Other Drive", "factory": "O.F", "path": r"F:\Vendor\o.dll"},
        {"name": "Waiting", "factory": "W.F", "path": V15 + r"\TransportRoles\agents\W\w.dll", "enabled": False},
    ])
    placeholder(top / "C" / V15_REL / "TransportRoles" / "agents" / "Rel" / "rel.dll", {"R.F": [SMTP_FACTORY_BASE]},
                signer="Rel Ltd")
    placeholder(top / "C" / V15_REL / "TransportRoles" / "agents" / "W" / "w.dll", {"W.F": [SMTP_FACTORY_BASE]},
                signer="W Ltd")
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-relative-path", "low", "Rel", "unknown third party, signed"),
        ("audit-third-party-signed", "low", "Rel", "unknown third party, signed"),
        ("audit-dll-missing", "medium", "Gone", "DLL missing"),
        ("audit-outside-exchange", "low", "Gone", "DLL missing"),
        ("audit-unc-path", "high", "Share", "UNC assembly path"),
        ("audit-dll-not-collected", "low", "Other Drive", "DLL not examined"),
        ("audit-outside-exchange", "low", "Other Drive", "DLL not examined"),
        ("audit-disabled-agent", "low", "Waiting", "unknown third party, signed"),
        ("audit-third-party-signed", "low", "Waiting", "unknown third party, signed")])
    rel = next(f for f in result.findings if f["rule_id"] == "audit-relative-path")
    assert f"relative path read against the Exchange install {V15}" in rel["Evidence"]
    other = next(f for f in result.findings if f["rule_id"] == "audit-dll-not-collected")
    assert other["Evidence"][0] == "the DLL could not be examined: drive F: is not in the collection"


def test_v14_storedriver_relative_to_the_agents_folder(tmp_path: Path) -> None:
    root = r"C:\Program Files\Microsoft\Exchange Server\V14"
    top = tmp_path / "EXCH14"
    install(top / "C", [{"name": "Mailbox Rules Agent", "factory": "Microsoft.Exchange.MailboxTransport.X",
                         "path": r"..\..\bin\Microsoft.Exchange.StoreDriver.dll"}], root=root, template=False)
    placeholder(windows_to_local(top / "C", root + r"\Bin\Microsoft.Exchange.StoreDriver.dll"),
                {"Microsoft.Exchange.MailboxTransport.X": [SMTP_FACTORY_BASE]}, **MS)
    result = run(top)
    assert got(result) == [
        ("audit-builtin-agent", "informational", "Mailbox Rules Agent", "built-in agent as shipped")]
    assert f"relative path read against the Exchange install {root}\\TransportRoles\\agents" in \
        result.findings[0]["Evidence"]


def test_duplicate_names(tmp_path: Path) -> None:
    top = server(tmp_path, [builtin_agent("Malware Agent")])
    found = [f for f in run(top).findings if f["rule_id"] == "audit-duplicate-agent"]
    assert [(f["AgentName"], f["source_record"], f["Evidence"][0]) for f in found] == [
        ("Malware Agent", f"line {FIRST_AGENT_LINE + 2}",
         f"'Malware Agent' at {LIST}:{FIRST_AGENT_LINE + 2} is also registered at {LIST}:{FIRST_AGENT_LINE + 1}")]


SYMANTEC = {"name": "SMSMSERoutingAgent",
            "factory": "Symantec.MailSecurity.Server.TransportAgent.SMSMSERoutingAgentFactory",
            "path": r"E:\Program Files (x86)\Symantec\SMSMSE\7.5\Server"
                    r"\Symantec.MailSecurity.Server.TransportAgent.dll"}


def test_known_vendor(tmp_path: Path) -> None:
    top = server(tmp_path, [SYMANTEC])
    placeholder(windows_to_local(top / "E", SYMANTEC["path"]), {SYMANTEC["factory"]: [SMTP_FACTORY_BASE]},
                signer="Symantec Corporation", issuer="Symantec Class 3 SHA256 Code Signing CA")
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-known-vendor", "informational", "SMSMSERoutingAgent", "known vendor")])
    vendor = next(f for f in result.findings if f["rule_id"] == "audit-known-vendor")
    assert vendor["Evidence"][0].startswith("matches known-vendors entry symantec-smsmse-routing-agent: Symantec")


def test_list_problems(tmp_path: Path) -> None:
    top = server(tmp_path, [])
    shared = top / "C" / V15_REL / "TransportRoles" / "Shared"
    (shared / "fetagents.config").write_text('<!DOCTYPE x [<!ENTITY a "b">]><configuration>&a;</configuration>')
    (shared / "agents.config.old").write_text("<configuration><mexRuntime>")
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-list-hostile", "high", f"C/{V15_REL}/TransportRoles/Shared/fetagents.config", "hostile list"),
        ("audit-list-malformed", "medium", f"C/{V15_REL}/TransportRoles/Shared/agents.config.old",
         "malformed list")])


def test_template_and_old_copies_are_diffed(tmp_path: Path) -> None:
    top = server(tmp_path, [{"name": "Mail Archiver", "factory": "Contoso.F", "path": r"C:\Program Files\C\c.dll"}])
    shared = top / "C" / V15_REL / "TransportRoles" / "Shared"
    from audit_layout import agents_config

    (shared / "agents.config.old").write_text(agents_config(
        [builtin_agent("Transport Rule Agent"), dict(builtin_agent("Malware Agent"), enabled=False),
         builtin_agent("Journaling Agent")]))
    placeholder(top / "C" / "Program Files" / "C" / "c.dll", {"Contoso.F": [SMTP_FACTORY_BASE]}, signer="Contoso")
    diffs = sorted((f["AgentName"], f["Difference"], f["Evidence"][0], f["Verdict"]) for f in run(top).findings
                   if f["rule_id"] == "audit-list-differs")
    old = f"C/{V15_REL}/TransportRoles/Shared/agents.config.old"
    assert diffs == [
        ("Journaling Agent", "removed", f"'Journaling Agent' is in old copy {old}:{FIRST_AGENT_LINE + 2} but not "
                                        "in the live list", "differs from a copy"),
        ("Mail Archiver", "added", f"'Mail Archiver' is in the live list but not in old copy {old}",
         "unknown third party, signed"),
        ("Malware Agent", "changed", f"'Malware Agent' differs from old copy {old}: enabled false -> true",
         "built-in agent as shipped")]


def test_look_around(tmp_path: Path) -> None:
    top = server(tmp_path, [])
    c = top / "C"
    placeholder(c / V15_REL / "Bin" / "helper.dll", dotnet=False)  # unsigned, unlisted
    placeholder(c / V15_REL / "Bin" / "Microsoft.Exchange.Foo.dll", dotnet=True, **MS)  # Microsoft-signed: fine
    placeholder(c / V15_REL / "Bin" / "exrwdb.dll", dotnet=False)  # LightNeuron's companion name, no agent uses it
    placeholder(c / V15_REL / "Bin" / "exdbdata.dll", dotnet=False, **MS)  # that name, but Microsoft's
    placeholder(c / V15_REL / "TransportRoles" / "agents" / "X" / "x.dll", signer="X Ltd")  # signed, not Microsoft
    (c / V15_REL / "TransportRoles" / "Logs").mkdir(parents=True)
    (c / V15_REL / "TransportRoles" / "Logs" / "log.dll").write_bytes(b"MZ")  # data folders are not searched
    (c / V15_REL / "Bin" / "readme.txt").write_text("not a PE")
    temp = c / "Windows" / "ServiceProfiles" / "NetworkService" / "AppData" / "Local" / "Temp"
    temp.mkdir(parents=True)
    (temp / "winmail.dat").write_bytes(b"\x00" * 16)
    (c / "Windows" / "System32").mkdir(parents=True)
    (c / "Windows" / "System32" / "msinp.ps1").write_text("Install-TransportAgent ...")
    pickup = c / V15_REL / "TransportRoles" / "Pickup"
    pickup.mkdir(parents=True)
    for name in ("msg7785421.eml", "msg7785999", "report.eml", "notes.txt"):
        (pickup / name).write_text("From: a@b\r\n\r\nx")
    result = run(top)
    assert got(result) == sorted([*SHIPPED,
        ("audit-lightneuron-file", "high", r"C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp\winmail.dat",
         "LightNeuron artefact"),
        ("audit-lightneuron-file", "high", r"C:\Windows\System32\msinp.ps1", "LightNeuron artefact"),
        ("audit-lightneuron-file", "high", V15 + r"\Bin\exrwdb.dll", "LightNeuron artefact"),
        ("audit-pickup-lingering", "medium", V15 + r"\TransportRoles\Pickup", "mail in Pickup"),
        ("audit-unlisted-pe", "medium", V15 + r"\Bin\exrwdb.dll", "unlisted unsigned PE"),
        ("audit-unlisted-pe", "medium", V15 + r"\Bin\helper.dll", "unlisted unsigned PE"),
        ("audit-unlisted-pe", "medium", V15 + r"\TransportRoles\agents\X\x.dll", "unlisted unsigned PE")])
    pickup_finding = next(f for f in result.findings if f["rule_id"] == "audit-pickup-lingering")
    assert pickup_finding["Evidence"] == [
        "3 mail file(s) waiting to be sent, 2 named msg* (LightNeuron names its outgoing mail msg<tick count>)",
        f"C/{V15_REL}/TransportRoles/Pickup/msg7785421.eml", f"C/{V15_REL}/TransportRoles/Pickup/msg7785999",
        f"C/{V15_REL}/TransportRoles/Pickup/report.eml"]
    assert (result.around.pe, result.around.signatures) == (6, 6)


def test_look_around_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.audit import around

    top = server(tmp_path, [])
    for i in range(12):
        placeholder(top / "C" / V15_REL / "Bin" / f"tool{i:02}.dll", dotnet=False)
    monkeypatch.setattr(around, "MAX_SIGNATURES", 5)
    result = run(top)
    assert len([f for f in result.findings if f["rule_id"] == "audit-unlisted-pe"]) == 5
    assert (V15, "8 signed PE file(s) past the first 5 verified: not signature-checked") in result.collection.skipped


def test_a_single_agents_config_alone(tmp_path: Path) -> None:
    from audit_layout import agents_config

    path = tmp_path / "agents.config"
    path.write_text(agents_config([builtin_agent("Transport Rule Agent"),
                                   {"name": "X", "factory": "X.F", "path": r"C:\Windows\Temp\x.dll"}]))
    result = run(path)
    assert got(result) == [
        ("audit-builtin-agent", "informational", "Transport Rule Agent", "built-in agent as shipped"),
        ("audit-dll-not-collected", "low", "X", "DLL in a suspicious folder"),
        ("audit-suspicious-location", "high", "X", "DLL in a suspicious folder")]
    assert result.device == tmp_path.name


def test_a_list_inside_a_collection_finds_its_drives(tmp_path: Path) -> None:
    top = server(tmp_path, [{"name": "X", "factory": "X.F", "path": r"C:\Windows\Temp\x.dll"}])
    placeholder(top / "C" / "Windows" / "Temp" / "x.dll", {"X.F": [SMTP_FACTORY_BASE]})
    result = run(top / "C" / V15_REL / "TransportRoles" / "Shared" / "agents.config")
    assert result.device == "EXCH01"
    assert got(result) == sorted([*SHIPPED,
        ("audit-suspicious-location", "high", "X", "DLL in a suspicious folder"),
        ("audit-third-party-unsigned", "medium", "X", "DLL in a suspicious folder")])
    assert result.findings[0]["source_file"] == LIST


def test_server_name_from_message_tracking(tmp_path: Path) -> None:
    top = server(tmp_path, [])
    logs = top / "C" / V15_REL / "TransportRoles" / "Logs" / "MessageTracking"
    logs.mkdir(parents=True)
    (logs / "MSGTRK2026112001-1.LOG").write_text(
        "#Software: Microsoft Exchange Server\r\n#Version: 15.02.1544.004\r\n#Log-type: Message Tracking Log\r\n"
        "#Date: 2026-11-20T01:00:00.000Z\r\n#Fields: date-time,client-ip,client-hostname,server-ip,"
        "server-hostname,source-context\r\n2026-11-20T01:00:01.000Z,,,10.0.0.5,EXCH01.contoso.local,x\r\n")
    result = run(top)
    assert (result.device, result.device_from) == ("EXCH01.contoso.local", f"message tracking log of {V15}")
    assert {f["DeviceName"] for f in result.findings} == {"EXCH01.contoso.local"}


def test_no_exchange_is_a_clear_error(tmp_path: Path) -> None:
    from exhunt.errors import UsageError

    (tmp_path / "host" / "C" / "Windows").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"no Exchange install found \(drives in the collection: C:"):
        run(tmp_path / "host")
