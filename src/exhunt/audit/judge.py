"""An agent and the facts about its DLL -> findings: alert dicts of `detect`'s schema, each with
the evidence that decided it.

Every agent gets at least one finding, so the output lists every registered agent with a
verdict (a built-in agent as shipped is an informational one). The agent's `Verdict` is the
verdict of its most severe finding, the same on each of its findings; `Evidence` says why
that one check fired, then what is known about the agent and its file.

The facts come from `exhunt.audit.assembly` (dnfile, signify, hashes, YARA) through
`Context.facts_of`, so tests can hand in facts of their own.
"""

from __future__ import annotations

import hashlib
import json
import ntpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from exhunt import tuning
from exhunt.audit import builtins
from exhunt.audit.checks import BY_ID, check
from exhunt.audit.collection import Collection, Found, find_assembly
from exhunt.audit.model import Agent, q
from exhunt.incidents import host_key, severity_rank


class SignatureLike(Protocol):
    present: bool
    valid: bool
    signer: str
    issuer: str
    microsoft: bool
    reason: str


class FactsLike(Protocol):
    path: str
    exists: bool
    size: int
    sha256: str
    is_pe: bool
    is_dotnet: bool
    assembly_name: str
    factory_found: bool
    factory_bases: list[str]
    derives_from_agent_factory: bool
    pinvokes: list[tuple[str, str]]
    signature: SignatureLike
    known_hash: str
    yara: list[str]
    errors: list[str]


FactsOf = Callable[[Path, str | None], FactsLike]
SignatureOf = Callable[[Path], SignatureLike]

#: Folders no product installs an agent into (matched inside the folded Windows path).
SUSPICIOUS_FOLDERS = ("\\windows\\temp\\", "\\temp\\", "\\tmp\\", "\\users\\", "\\programdata\\", "\\$recycle.bin\\",
                      "\\recycler\\", "\\perflogs\\", "\\appdata\\", "\\windows\\tasks\\", "\\windows\\debug\\",
                      "\\windows\\serviceprofiles\\", "\\system32\\spool\\", "\\windows\\fonts\\",
                      "\\inetpub\\wwwroot\\", "\\aspnet_client\\", "\\public\\")
#: Windows' own DLLs an agent may P/Invoke without it meaning anything.
SYSTEM_DLLS = frozenset({
    "kernel32", "kernelbase", "user32", "advapi32", "ntdll", "ole32", "oleaut32", "ws2_32", "crypt32", "shell32",
    "msvcrt", "secur32", "iphlpapi", "netapi32", "wininet", "winhttp", "bcrypt", "ncrypt", "dbghelp", "psapi",
    "version", "mpr", "rpcrt4", "userenv", "wtsapi32", "shlwapi", "gdi32", "comctl32", "mscoree", "dnsapi",
    "activeds", "wldap32", "credui", "sspicli", "cryptnet", "wintrust", "urlmon", "setupapi", "powrprof",
})


@dataclass
class Context:
    """What judging needs besides the agent: the collection, the fact readers, the server."""

    coll: Collection
    facts_of: FactsOf
    signature_of: SignatureOf
    device: str
    vendors: tuning.Tuning = field(default_factory=tuning.Tuning)
    #: Facts already read, by (file, factory): six built-in agents share the Hygiene DLL.
    cache: dict[tuple[str, str | None], FactsLike] = field(default_factory=dict)
    #: Every DLL an agent references (local path, folded): look-around leaves them alone.
    referenced: set[str] = field(default_factory=set)
    #: DLLs judged (facts read).
    judged: int = 0
    #: SHA-256 of each agent's DLL by the agent's `source` (for the baseline).
    hashes: dict[str, str] = field(default_factory=dict)

    def facts(self, local: Path, factory: str | None) -> FactsLike:
        key = (str(local), factory)
        if key not in self.cache:
            self.cache[key] = self.facts_of(local, factory)
            self.judged += 1
        return self.cache[key]


# -- findings ------------------------------------------------------------------------------------

def finding(ctx: Context, check_id: str, evidence: list[str], fields: dict[str, Any], source: tuple[str, str],
            identity: list[Any]) -> dict[str, Any]:
    """One alert dict of `check_id` (HEAD fields first, provenance last). Its id hashes the check,
    the server and `identity` (what the finding is about), never where it was read."""
    c = check(check_id)
    digest = hashlib.sha256(json.dumps([c.id, host_key(ctx.device), identity], ensure_ascii=False,
                                       default=str).encode("utf-8")).hexdigest()[:16]
    alert: dict[str, Any] = {"alert_id": digest, "rule_id": c.id, "rule_name": c.name, "severity": c.severity,
                             "confidence": c.confidence, "tactics": ["Persistence"], "techniques": ["T1505.002"],
                             "Timestamp": None, "DeviceName": ctx.device}
    alert.update(fields)
    alert.setdefault("Verdict", c.verdict)
    alert["Evidence"] = evidence
    alert["source_file"], alert["source_record"] = source
    return alert


def source_of(agent: Agent) -> tuple[str, str]:
    """("C/.../agents.config", "line 12") from the agent's `source`."""
    file, sep, line = agent.source.rpartition(":")
    if sep and line.isdigit():
        return file, f"line {line}"
    return agent.source, ""


def agent_fields(agent: Agent, found: Found | None = None, facts: FactsLike | None = None) -> dict[str, Any]:
    sig = facts.signature if facts is not None and facts.exists else None
    return {
        "AgentName": agent.name, "TransportService": agent.service, "Enabled": agent.enabled,
        "Priority": agent.order + 1, "AssemblyPath": agent.assembly_path, "FactoryType": agent.factory,
        "ExchangeRoot": agent.exchange_root,
        "ResolvedPath": found.windows if found is not None else "",
        "CollectedFile": "",
        "SHA256": facts.sha256 if facts is not None and facts.exists else "",
        "Signer": sig.signer if sig is not None and sig.present else "",
    }


def settle_verdicts(findings: list[dict[str, Any]]) -> None:
    """Give every finding of one agent the verdict of its most severe finding about the agent
    itself (a difference from a copy or a baseline is context, not what the agent is)."""
    judged = [f for f in findings if not str(f["rule_id"]).startswith(CONTEXT_CHECKS)] or findings
    if not judged:
        return
    worst = max(judged, key=lambda f: (severity_rank(f["severity"]), -CHECK_ORDER[f["rule_id"]]))
    verdict = BY_ID[worst["rule_id"]].verdict
    for f in findings:
        f["Verdict"] = verdict


#: Checks that compare an agent with a copy or a baseline: they do not make its verdict.
CONTEXT_CHECKS = ("audit-list-differs", "audit-baseline-")
CHECK_ORDER = {c: i for i, c in enumerate(BY_ID)}


# -- one agent -----------------------------------------------------------------------------------

def _fold(text: str) -> str:
    return text.strip().casefold()


def _in_install(windows: str, root: str) -> bool:
    return bool(windows and root) and _fold(windows).startswith(_fold(root).rstrip("\\") + "\\")


def _suspicious(windows: str) -> str:
    low = _fold(windows)
    for folder in SUSPICIOUS_FOLDERS:
        if folder in low:
            return folder.strip("\\")
    if low.count("\\") == 1:
        return "the drive's root"
    return ""


def signature_line(sig: SignatureLike) -> str:
    if not sig.present:
        return "Authenticode: not signed"
    state = "valid" if sig.valid else f"does not verify ({sig.reason or 'no reason given'})"
    who = f"signed by {sig.signer or '(no subject)'}" + (f", issued by {sig.issuer}" if sig.issuer else "")
    mark = " (Microsoft)" if sig.microsoft else ""
    trust = f"; {sig.reason}" if sig.valid and sig.reason else ""
    return f"Authenticode: {who}{mark}, {state}{trust}"


def describe(agent: Agent, found: Found, facts: FactsLike | None, shown_local: str) -> list[str]:
    """What is known about the agent and its file, as evidence lines."""
    enabled = "enabled" if agent.enabled else "disabled" if agent.enabled is False else \
        "enabled attribute missing or not true/false"
    lines = [f"registered at {agent.source} as {q(agent.name)} ({agent.service or 'service unknown'}, "
             f"priority {agent.order + 1}, {enabled})",
             f"factory {q(agent.factory)}" + (f", baseType {q(agent.base_type)}" if agent.base_type else ""),
             f"assemblyPath {q(agent.assembly_path)}" + (f" -> {found.windows}" if found.windows and
                                                         _fold(found.windows) != _fold(agent.assembly_path) else "")]
    lines += found.notes
    if found.local is not None:
        lines.append(f"file in the collection: {shown_local}")
    elif found.problem:
        lines.append(f"file: {found.problem}")
    if facts is not None and facts.exists:
        lines.append(f"SHA-256 {facts.sha256}, {facts.size} bytes")
        lines.append(signature_line(facts.signature))
        if facts.is_dotnet:
            lines.append(f".NET assembly {q(facts.assembly_name)}")
        if facts.known_hash:
            lines.append(f"hash known as: {facts.known_hash}")
        lines += [f"could not read: {e}" for e in facts.errors]
    return lines


def judge_agent(ctx: Context, agent: Agent) -> list[dict[str, Any]]:
    """Every finding about one agent of a live list (at least one)."""
    found = find_assembly(ctx.coll, agent.assembly_path, agent.exchange_root)
    facts: FactsLike | None = None
    unreadable = ""
    if found.local is not None:
        unreadable = ctx.coll.regular_file(found.local)
        if unreadable:
            found.problem = f"{ctx.coll.shown(found.local)}: {unreadable}"
            ctx.coll.skip(ctx.coll.shown(found.local), f"DLL of agent {q(agent.name)} not read: {unreadable}")
        else:
            ctx.referenced.add(str(found.local).casefold())
            facts = ctx.facts(found.local, agent.factory or None)
    shown_local = ctx.coll.shown(found.local) if found.local is not None else ""
    base = describe(agent, found, facts, shown_local)
    fields = agent_fields(agent, found, facts)
    fields["CollectedFile"] = shown_local
    source = source_of(agent)
    identity = [agent.service, _fold(agent.name), agent.factory, _fold(agent.assembly_path), agent.exchange_root]
    out: list[dict[str, Any]] = []

    def emit(check_id: str, *why: str) -> None:
        out.append(finding(ctx, check_id, [*why, *base], dict(fields), source, identity))

    root = agent.exchange_root
    windows = found.windows
    have = facts is not None and facts.exists
    if have and facts is not None:
        ctx.hashes[agent.source] = facts.sha256
    sig = facts.signature if facts is not None and have else None
    microsoft = sig is not None and sig.present and sig.valid and sig.microsoft
    known_builtin_hash = have and facts is not None and facts.known_hash.lower().startswith("built-in")

    claims, mismatch, reference = _claims(agent, windows, root)
    if claims and reference is None and not have and claims[0].startswith("it uses Microsoft.Exchange"):
        base.insert(0, f"{claims[0]}, yet it is none of the built-in agents exhunt knows")

    # -- how the path is written ------------------------------------------------------------
    if found.unc:
        emit("audit-unc-path", f"assemblyPath {q(agent.assembly_path)} is a network share: never followed")
    elif found.relative or "%" in agent.assembly_path or "$env:" in agent.assembly_path.lower():
        emit("audit-relative-path", f"assemblyPath {q(agent.assembly_path)} is not a full path")

    # -- the file ----------------------------------------------------------------------------
    if facts is None and not found.unc:
        if found.drive_present and found.local is None and not found.problem.startswith(("a link", "cannot")) \
                and "link leading out" not in found.problem:
            emit("audit-dll-missing", f"{windows} is not in the collection, though its drive is")
        else:
            emit("audit-dll-not-collected", f"the DLL could not be examined: {found.problem or unreadable}")
    if facts is not None and not facts.exists:
        emit("audit-dll-missing", f"{windows} could not be read")
    if have and facts is not None:
        if facts.known_hash.lower().startswith("lightneuron"):
            emit("audit-lightneuron-hash", f"SHA-256 {facts.sha256} is {facts.known_hash}")
        if facts.yara:
            emit("audit-yara-match", "YARA rule(s) matched: " + ", ".join(facts.yara))
        if sig is not None and sig.present and not sig.valid:
            emit("audit-bad-signature", f"the signature does not verify: {sig.reason or 'no reason given'}")
        if not facts.is_pe:
            emit("audit-not-dotnet", "the file is not a PE (no MZ/PE header): Exchange cannot load it as an agent")
        elif not facts.is_dotnet:
            emit("audit-not-dotnet", "a native PE without .NET metadata: not loadable as an agent")
        elif agent.factory and not facts.factory_found:
            emit("audit-factory-missing", f"no type {q(agent.factory)} is defined in {facts.assembly_name or 'it'}")
        elif agent.factory and not facts.derives_from_agent_factory:
            chain = " <- ".join(facts.factory_bases) or "(no base type recorded)"
            emit("audit-not-agent-factory", f"{agent.factory} derives from {chain}, no Exchange agent factory")
        if facts.is_dotnet:
            _pinvokes(ctx, agent, found, facts, emit, microsoft)

    # -- what it claims to be -----------------------------------------------------------------
    if claims and have and not microsoft and not known_builtin_hash:
        mismatch.append("the DLL is not signed by Microsoft ("
                        + (signature_line(sig).removeprefix("Authenticode: ") if sig is not None else "no signature")
                        + ")")
    shipped = shipped_elsewhere = False
    if claims and mismatch:
        emit("audit-builtin-impersonation", *claims, *mismatch)
    elif claims and (reference is not None or microsoft or known_builtin_hash):
        shipped = True
        note = [] if have else ["the DLL was not examined: its signature is not verified"]
        emit("audit-builtin-agent", *claims, *note)
    elif have and (microsoft or known_builtin_hash) and _in_install(windows, root):
        shipped = True
        emit("audit-builtin-agent", "not in exhunt's table of built-in agents, but signed by Microsoft "
                                    "inside the Exchange install")
    elif have:
        vendor = _vendor(ctx, agent, found)
        if vendor:
            shipped_elsewhere = True
            emit("audit-known-vendor", vendor)
        elif sig is not None and sig.present and sig.valid and not getattr(sig, "trusted", True):
            emit("audit-third-party-unsigned", f"signed as {sig.signer or '(no subject)'}, but by no publisher "
                                               f"a trusted root vouches for: {sig.reason or 'untrusted chain'}")
        elif sig is not None and sig.present and sig.valid:
            emit("audit-third-party-signed", f"signed by {sig.signer or '(no subject)'}"
                 + (" (Microsoft, outside the Exchange install)" if microsoft else ", not Microsoft"))
        elif sig is None or not sig.present:
            emit("audit-third-party-unsigned", "the DLL has no Authenticode signature")

    if shipped:  # a built-in as Exchange registers it: a relative path or a DLL not collected is no finding
        dropped = ("audit-relative-path",) if have else ("audit-relative-path", "audit-dll-missing",
                                                          "audit-dll-not-collected")
        out[:] = [f for f in out if f["rule_id"] not in dropped]

    # -- where it is ----------------------------------------------------------------------------
    if windows and not shipped:
        place = _suspicious(windows)
        if place:
            emit("audit-suspicious-location", f"{windows} is in {place}")
        elif root and not _in_install(windows, root) and not shipped_elsewhere:
            emit("audit-outside-exchange", f"{windows} is outside the Exchange install {root}")
    if agent.enabled is False and not shipped:
        emit("audit-disabled-agent", "the agent is registered disabled")
    if not out:  # never silent about an agent
        emit("audit-dll-not-collected", "nothing decided the agent's verdict")
    settle_verdicts(out)
    return out


#: LightNeuron's own names (ESET's paper as the Atomic Red Team test and Petri report it).
LIGHTNEURON_NAMES = {"security interop agent": "agent name", "microsoft.exchange.security.interop.dll": "DLL name",
                     "microsoft.exchange.security.interop.securityinteropagentfactory": "factory"}


def _claims(agent: Agent, windows: str, root: str) -> tuple[list[str], list[str], builtins.BuiltIn | None]:
    """(what makes the agent look built in, what contradicts it, the built-in it copies)."""
    by_name = builtins.BY_NAME.get(_fold(agent.name))
    by_factory = builtins.BY_FACTORY.get(agent.factory.strip())
    file_name = ntpath.basename(windows or agent.assembly_path.replace("/", "\\"))
    claims: list[str] = []
    mismatch: list[str] = []
    if by_name is not None:
        claims.append(f"the name {q(agent.name)} is that of Exchange's built-in {by_name.name}")
    if by_factory is not None and by_factory is not by_name:
        claims.append(f"the factory is that of Exchange's built-in {by_factory.name}")
    if windows and builtins.is_builtin_path(windows, root):
        claims.append(f"{windows} is a built-in agent's assembly")
    for value in (agent.name, file_name, agent.factory):
        what = LIGHTNEURON_NAMES.get(_fold(value))
        if what:
            claims.append(f"LightNeuron's {what} {q(value)}")
    if any(c.startswith("LightNeuron's") for c in claims):
        mismatch.append("Exchange ships no agent by LightNeuron's names: they are its disguise")
    if not claims and (agent.factory.startswith("Microsoft.Exchange.") or
                       _fold(file_name).startswith("microsoft.exchange.")):
        claims.append("it uses Microsoft.Exchange names (factory or file name)")
        if windows and root and not _in_install(windows, root):
            mismatch.append(f"{windows} is not in the Exchange install")
    reference = by_name or by_factory
    if reference is not None:
        if reference.factory and _fold(agent.factory) != _fold(reference.factory):
            mismatch.append(f"Exchange's {reference.name} is made by {reference.factory}")
        expected = builtins.expected_path(reference, root)
        if reference.assembly and windows:
            same = _fold(windows) == _fold(expected) if expected else \
                _fold(windows).endswith("\\" + _fold(reference.assembly))
            if not same:
                mismatch.append(f"Exchange's {reference.name} loads {expected or reference.assembly}, not {windows}")
    return claims, mismatch, reference


def _vendor(ctx: Context, agent: Agent, found: Found) -> str:
    probe = {"AgentName": agent.name, "FactoryType": agent.factory,
             "AssemblyPath": found.windows or agent.assembly_path}
    for entry in ctx.vendors.entries:
        if entry.matches(probe):
            return f"matches known-vendors entry {entry.id or entry.where}: {entry.reason}"
    return ""


def _pinvokes(ctx: Context, agent: Agent, found: Found, facts: FactsLike, emit: Callable[..., None],
              microsoft: bool) -> None:
    """P/Invoke targets that are not Windows' own DLLs, looked for beside the agent and in the
    install's Bin and TransportRoles\\agents folders."""
    if microsoft or found.local is None:
        return
    seen: set[str] = set()
    for dll, function in facts.pinvokes:
        name = ntpath.basename(dll.replace("/", "\\"))
        stem = _fold(name).removesuffix(".dll")
        if stem in SYSTEM_DLLS or stem.startswith("api-ms-") or stem in seen:
            continue
        seen.add(stem)
        file_name = name if "." in name else name + ".dll"
        places = [found.local.parent]
        if agent.exchange_root:
            for rel in ("Bin", "TransportRoles\\agents"):
                hit = ctx.coll.find(agent.exchange_root.rstrip("\\") + "\\" + rel, "")
                if hit.local is not None:
                    places.append(hit.local)
        for place in places:
            local = ctx.coll.child(place, file_name)
            if local is None or ctx.coll.regular_file(local):
                continue
            sig = ctx.signature_of(local)
            if sig.present and sig.valid and sig.microsoft:
                continue
            ctx.referenced.add(str(local).casefold())
            windows = ctx.coll.windows_of(local) or ctx.coll.shown(local)
            emit("audit-native-pinvoke", f"P/Invoke {dll}!{function} -> {windows}", signature_line(sig))
            break
