"""Exchange's built-in transport agents as data: name, factory, and assembly relative to the
install's root (Microsoft's ReinstallDefaultTransportAgents.ps1 and the transport-agent
documentation, see ../shared/reference/content.md §5.4).

A built-in agent as shipped has all three, and a DLL Microsoft signed. An agent that copies
one of them (the name, the factory, a `Microsoft.Exchange.*` file name) while its path or
signer differ is LightNeuron's disguise ("Connection Filtering Agent" pointing at a
look-alike DLL in the Hygiene folder; "Content Filter Agent" from a Bin DLL).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltIn:
    name: str
    factory: str  # "" when no public source gives it
    assembly: str  # relative to the install's root ("" when unknown)


_AGENTS = r"TransportRoles\agents"
_HYGIENE = _AGENTS + r"\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll"
_EDGE = _AGENTS + r"\EdgeMessagingPolicies\Microsoft.Exchange.MessagingPolicies.EdgeAgents.dll"
_INTERCEPTOR = _AGENTS + r"\InterceptorAgent\Microsoft.Exchange.Transport.Agent.InterceptorAgent.dll"
_ABP = _AGENTS + r"\AddressBookPolicyRoutingAgent\Microsoft.Exchange.Transport.Agent.AddressBookPolicyRoutingAgent.dll"
_STOREDRIVER = r"Bin\Microsoft.Exchange.StoreDriver.dll"  # Exchange 2010 Hub agents: ..\..\bin from agents

BUILT_INS: tuple[BuiltIn, ...] = (
    BuiltIn("Connection Filtering Agent",
            "Microsoft.Exchange.Transport.Agent.ConnectionFiltering.ConnectionFilteringAgentFactory", _HYGIENE),
    BuiltIn("Content Filter Agent", "Microsoft.Exchange.Transport.Agent.ContentFilter.ContentFilterAgentFactory",
            _HYGIENE),
    BuiltIn("Sender Id Agent", "Microsoft.Exchange.Transport.Agent.SenderId.SenderIdAgentFactory", _HYGIENE),
    BuiltIn("Sender Filter Agent", "Microsoft.Exchange.Transport.Agent.ProtocolFilter.SenderFilterAgentFactory",
            _HYGIENE),
    BuiltIn("Recipient Filter Agent", "Microsoft.Exchange.Transport.Agent.ProtocolFilter.RecipientFilterAgentFactory",
            _HYGIENE),
    BuiltIn("Protocol Analysis Agent",
            "Microsoft.Exchange.Transport.Agent.ProtocolAnalysis.ProtocolAnalysisAgentFactory", _HYGIENE),
    BuiltIn("Address Rewriting Inbound Agent", "Microsoft.Exchange.MessagingPolicies.AddressRewrite.FactoryInbound",
            _EDGE),
    BuiltIn("Edge Rule Agent", "Microsoft.Exchange.MessagingPolicies.EdgeRuleAgent.EdgeRuleAgentFactory", _EDGE),
    BuiltIn("Attachment Filtering Agent", "Microsoft.Exchange.MessagingPolicies.AttachFilter.Factory", _EDGE),
    BuiltIn("Address Rewriting Outbound Agent", "Microsoft.Exchange.MessagingPolicies.AddressRewrite.FactoryOutbound",
            _EDGE),
    BuiltIn("Transport Rule Agent", "Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.TransportRuleAgentFactory",
            _AGENTS + r"\Rule\Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.dll"),
    BuiltIn("Malware Agent", "Microsoft.Exchange.Transport.Agent.Malware.MalwareAgentFactory",
            _AGENTS + r"\Antimalware\Microsoft.Exchange.Transport.Agent.Malware.dll"),
    BuiltIn("UnJournal Agent", "Microsoft.Exchange.MessagingPolicies.UnJournalAgent.UnwrapJournalAgentFactory",
            _AGENTS + r"\Journaling\Microsoft.Exchange.MessagingPolicies.UnJournalAgent.dll"),
    BuiltIn("Journaling Agent", "Microsoft.Exchange.MessagingPolicies.Journaling.JournalAgentFactory",
            _AGENTS + r"\Journaling\Microsoft.Exchange.MessagingPolicies.JournalAgent.dll"),
    BuiltIn("Prelicensing Agent", "Microsoft.Exchange.MessagingPolicies.RmSvcAgent.PrelicenseAgentFactory",
            _AGENTS + r"\RmSvc\Microsoft.Exchange.MessagingPolicies.RmSvcAgent.dll"),
    BuiltIn("Interceptor Routing Agent", "Microsoft.Exchange.Transport.Agent.InterceptorRoutingAgentFactory",
            _INTERCEPTOR),
    BuiltIn("Interceptor Smtp Receive Agent", "Microsoft.Exchange.Transport.Agent.InterceptorSmtpAgentFactory",
            _INTERCEPTOR),
    BuiltIn("ABP Routing Agent",
            "Microsoft.Exchange.Transport.Agent.AddressBookPolicyRoutingAgent.AddressBookPolicyRoutingAgentFactory",
            _ABP),
    # Visible on 2016/2019 Mailbox servers; no public source gives their factory or assembly.
    BuiltIn("DLP Policy Agent", "", ""),
    BuiltIn("Retention Policy Agent", "", ""),
    BuiltIn("Supervisory Review Agent", "", ""),
    BuiltIn("Text Messaging Routing Agent", "", ""),
    BuiltIn("Text Messaging Delivery Agent", "", ""),
    BuiltIn("System Probe Drop Smtp Agent", "", ""),
    BuiltIn("System Probe Drop Routing Agent", "", ""),
)

#: Assemblies of built-in agents whose names vary by version (Exchange 2010's StoreDriver agents).
BUILT_IN_ASSEMBLIES: tuple[str, ...] = (_STOREDRIVER,)

BY_NAME: dict[str, BuiltIn] = {b.name.casefold(): b for b in BUILT_INS}
BY_FACTORY: dict[str, BuiltIn] = {b.factory: b for b in BUILT_INS if b.factory}


def assemblies() -> set[str]:
    """Every built-in assembly path relative to an install's root, folded."""
    return {b.assembly.casefold() for b in BUILT_INS if b.assembly} | {a.casefold() for a in BUILT_IN_ASSEMBLIES}


def expected_path(builtin: BuiltIn, exchange_root: str) -> str:
    """Where the built-in agent's DLL lives under `exchange_root` ("" when unknown)."""
    if not builtin.assembly or not exchange_root:
        return ""
    return exchange_root.rstrip("\\") + "\\" + builtin.assembly


def is_builtin_path(windows_path: str, exchange_root: str) -> bool:
    """Whether `windows_path` is one of the built-in assemblies of the install at `exchange_root`
    (compared case-insensitively; with no known root, by the path's tail)."""
    low = windows_path.casefold()
    if exchange_root:
        prefix = exchange_root.rstrip("\\").casefold() + "\\"
        return low.startswith(prefix) and low[len(prefix):] in assemblies()
    return any(low.endswith("\\" + rel) for rel in assemblies())
