"""Collections laid out for the audit tests: an Exchange install's folders on a drive folder, agent
lists written as Exchange writes them, and placeholder DLLs whose facts the tests decide.

A placeholder DLL is `MZ` + a marker + JSON saying what the real fact readers would find in a
real DLL (signer, .NET, factories, P/Invokes...); `fake_facts` and `fake_signature` read it back.
The tests that need real assemblies build them with tests/agent_build.py instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from exhunt.audit import builtins

MARKER = b"MZ\x90\x00exhunt-test-facts\n"
V15 = r"C:\Program Files\Microsoft\Exchange Server\V15"
V15_REL = "Program Files/Microsoft/Exchange Server/V15"
SMTP_FACTORY_BASE = "Microsoft.Exchange.Data.Transport.Smtp.SmtpReceiveAgentFactory"
ROUTING_FACTORY_BASE = "Microsoft.Exchange.Data.Transport.Routing.RoutingAgentFactory"
MS = {"signer": "Microsoft Corporation", "issuer": "Microsoft Code Signing PCA 2011", "microsoft": True}


@dataclass
class FakeSignature:
    present: bool = False
    valid: bool = False
    signer: str = ""
    issuer: str = ""
    microsoft: bool = False
    reason: str = ""


@dataclass
class FakeFacts:
    path: str
    exists: bool = True
    size: int = 0
    sha256: str = ""
    is_pe: bool = False
    is_dotnet: bool = False
    assembly_name: str = ""
    factory_found: bool = False
    factory_bases: list[str] = field(default_factory=list)
    derives_from_agent_factory: bool = False
    pinvokes: list[tuple[str, str]] = field(default_factory=list)
    signature: FakeSignature = field(default_factory=FakeSignature)
    known_hash: str = ""
    yara: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def placeholder(path: Path, factories: dict[str, list[str]] | None = None, dotnet: bool = True, signer: str = "",
                issuer: str = "", microsoft: bool = False, valid: bool = True, known_hash: str = "",
                yara: list[str] | None = None, pinvokes: list[list[str]] | None = None, name: str = "") -> Path:
    """A placeholder DLL: what the fact readers would find in it, as JSON after a marker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"factories": factories or {}, "dotnet": dotnet, "signer": signer, "issuer": issuer,
           "microsoft": microsoft, "valid": valid, "known_hash": known_hash, "yara": yara or [],
           "pinvokes": pinvokes or [], "name": name or path.stem}
    path.write_bytes(MARKER + json.dumps(doc).encode())
    return path


def _doc(path: Path) -> dict[str, Any] | None:
    data = path.read_bytes()
    return json.loads(data[len(MARKER):]) if data.startswith(MARKER) else None


def fake_signature(path: Path) -> FakeSignature:
    doc = _doc(path)
    if doc is None or not doc["signer"]:
        return FakeSignature()
    return FakeSignature(True, doc["valid"], doc["signer"], doc["issuer"], doc["microsoft"],
                         "" if doc["valid"] else "the digest does not match the file")


def fake_facts(path: Path, factory: str | None) -> FakeFacts:
    import hashlib

    data = path.read_bytes()
    facts = FakeFacts(str(path), True, len(data), hashlib.sha256(data).hexdigest(), data[:2] == b"MZ")
    doc = _doc(path)
    if doc is None:
        return facts
    facts.is_dotnet = doc["dotnet"]
    facts.assembly_name = doc["name"]
    bases = doc["factories"].get(factory or "", None)
    facts.factory_found = bases is not None
    facts.factory_bases = bases or []
    facts.derives_from_agent_factory = any(b in (SMTP_FACTORY_BASE, ROUTING_FACTORY_BASE) for b in bases or [])
    facts.pinvokes = [(a, b) for a, b in doc["pinvokes"]]
    facts.signature = fake_signature(path)
    facts.known_hash = doc["known_hash"]
    facts.yara = doc["yara"]
    return facts


def agents_config(agents: list[dict[str, Any]]) -> str:
    """An agents.config as Exchange writes it (two-space indents, one agent per line)."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>", "  <mexRuntime>", "    <monitoring>",
             '      <agentExecution timeLimitInMilliseconds="300000" />', '      <messageSnapshot enabled="true" />',
             "    </monitoring>", "    <agentList>"]
    for a in agents:
        enabled = a.get("enabled", True)
        lines.append(f"      <agent name={quoteattr(a['name'])} baseType={quoteattr(a.get('base', ''))} "
                     f"classFactory={quoteattr(a['factory'])} assemblyPath={quoteattr(a['path'])} "
                     f'enabled="{str(enabled).lower()}" />')
    lines += ["    </agentList>", "  </mexRuntime>", "</configuration>", ""]
    return "\n".join(lines)


#: agents.config's first agent is on this line (see agents_config).
FIRST_AGENT_LINE = 9


def builtin_agent(name: str, root: str = V15, enabled: bool = True) -> dict[str, Any]:
    b = builtins.BY_NAME[name.casefold()]
    return {"name": b.name, "factory": b.factory, "path": root + "\\" + b.assembly, "enabled": enabled,
            "base": "Microsoft.Exchange.Data.Transport.Smtp.SmtpReceiveAgent"}


#: The Hub agents Microsoft's v15 script installs, and the Edge ones (content.md §5.4).
HUB_DEFAULT = ["Transport Rule Agent", "Malware Agent"]
EDGE_DEFAULT = ["Connection Filtering Agent", "Content Filter Agent", "Sender Id Agent", "Sender Filter Agent",
                "Recipient Filter Agent", "Protocol Analysis Agent", "Address Rewriting Inbound Agent",
                "Edge Rule Agent", "Attachment Filtering Agent", "Address Rewriting Outbound Agent"]


def windows_to_local(drive_dir: Path, winpath: str) -> Path:
    return drive_dir.joinpath(*winpath[3:].split("\\"))


def install(drive_dir: Path, agents: list[dict[str, Any]], root: str = V15, dlls: bool = True,
            fet_agents: list[dict[str, Any]] | None = None, template: bool = True) -> Path:
    """An Exchange install under `drive_dir` (the folder standing for the root's drive): its
    lists, a template copy of the default, Bin\\ExSetup.exe, and a Microsoft-signed placeholder
    for every built-in agent listed. Returns the install's local folder."""
    local = windows_to_local(drive_dir, root)
    shared = local / "TransportRoles" / "Shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "agents.config").write_text(agents_config(agents), encoding="utf-8")
    (shared / "fetagents.config").write_text(agents_config(fet_agents or []), encoding="utf-8")
    if template:
        tdir = local / "TransportRoles" / "Agents"
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / "agents.config.template").write_text(agents_config([builtin_agent(n, root) for n in HUB_DEFAULT]),
                                                     encoding="utf-8")
    (local / "Bin").mkdir(parents=True, exist_ok=True)
    (local / "Bin" / "ExSetup.exe").write_bytes(MARKER + json.dumps({**MS, "factories": {}, "dotnet": False,
                                                                     "valid": True, "known_hash": "", "yara": [],
                                                                     "pinvokes": [], "name": "ExSetup"}).encode())
    if dlls:
        for a in agents + (fet_agents or []):
            b = builtins.BY_NAME.get(a["name"].casefold())
            if b is None or not a["path"].startswith(root):
                continue
            dll = windows_to_local(drive_dir, a["path"])
            factories = {}
            if dll.exists() and _doc(dll) is not None:
                factories = _doc(dll)["factories"]  # type: ignore[index]
            factories[b.factory] = [SMTP_FACTORY_BASE]
            placeholder(dll, factories, **MS)
    return local
