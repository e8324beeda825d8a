"""The audit's checks as data: what each finding means, how severe it is, and its verdict.

A check plays the part of a rule for `exhunt audit`: its id is the finding's `rule_id` (and
what a tuning file's `rule:` names), its name the `rule_name`. `as_rule` gives the
`exhunt.rule.Rule` the HTML report and tuning take, so audit findings go through the same
outputs as `detect`'s alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from exhunt.rule import Rule


@dataclass(frozen=True)
class Check:
    id: str
    name: str
    severity: str  # informational, low, medium, high, critical
    verdict: str  # the short verdict an agent gets when this is its most severe finding
    description: str
    confidence: str = "high"


#: In order of precedence: of two findings equally severe, the first gives the agent its verdict.
CHECKS: tuple[Check, ...] = (
    Check("audit-lightneuron-hash", "LightNeuron file (known hash)", "critical", "LightNeuron (known hash)",
          "The file's SHA-256 is one of the LightNeuron samples ESET published."),
    # -- what the agent is ------------------------------------------------------------------
    Check("audit-builtin-agent", "Built-in Exchange transport agent", "informational",
          "built-in agent as shipped",
          "The agent's name, factory and assembly path are those of an agent Exchange ships, in this "
          "install's folders, and its DLL is signed by Microsoft (or was not in the collection to check)."),
    Check("audit-known-vendor", "Known third-party transport agent", "informational", "known vendor",
          "Name, factory and path match an entry of exhunt's known-vendors file (the product's agent where "
          "its installer puts it). `--known-vendors` suppresses these."),
    Check("audit-third-party-signed", "Third-party transport agent (signed)", "low", "unknown third party, signed",
          "An agent exhunt does not know, whose DLL carries a valid Authenticode signature, trusted, by a "
          "publisher other than Microsoft. Confirm the product with its owner, then tune it."),
    Check("audit-third-party-unsigned", "Third-party transport agent (unsigned or untrusted)", "medium",
          "unknown third party, unsigned",
          "An agent exhunt does not know, whose DLL has no Authenticode signature, or one no trusted root "
          "vouches for (anyone can make a certificate in any name). Vendors sign their agents; an unsigned "
          "one is home-made, a sample, or an intruder's."),
    Check("audit-bad-signature", "Transport agent DLL with an invalid signature", "high", "signature does not verify",
          "The DLL carries an Authenticode signature that does not verify (altered after signing, or a "
          "broken chain): the file is not what its signer shipped."),
    Check("audit-builtin-impersonation", "Transport agent impersonating a built-in agent", "critical",
          "impersonates a built-in agent",
          "The agent copies a built-in agent (its name, its factory, or a Microsoft.Exchange name) while its "
          "assembly path or signer differ from what Exchange ships: LightNeuron's disguise."),
    # -- the DLL ------------------------------------------------------------------------------
    Check("audit-dll-missing", "Transport agent DLL missing", "medium", "DLL missing",
          "The drive is in the collection but the DLL the list names is not. On a full image Exchange cannot "
          "load the agent (the Transport service stops, event 7001); a triage collection may not have copied it."),
    Check("audit-dll-not-collected", "Transport agent DLL not in the collection", "low", "DLL not examined",
          "The DLL's drive or path is not in the collection (or could not be read), so the agent could not be "
          "judged by its file. Collect it, or map its drive with --drive.", "medium"),
    Check("audit-not-dotnet", "Transport agent DLL is not a .NET assembly", "high", "not a .NET assembly",
          "Exchange loads agents as .NET assemblies; this file is a native PE or not a PE at all."),
    Check("audit-factory-missing", "Transport agent factory not in its DLL", "high", "factory missing",
          "The factory class the list names is not defined in the DLL: the list was edited by hand, or the "
          "DLL was replaced."),
    Check("audit-not-agent-factory", "Transport agent factory is not an agent factory", "high",
          "not an agent factory",
          "The factory class does not derive (as far as the DLL's metadata says) from an Exchange agent "
          "factory (SmtpReceiveAgentFactory, RoutingAgentFactory, DeliveryAgentFactory).", "medium"),
    Check("audit-yara-match", "YARA rule matched a transport agent DLL", "high", "YARA match",
          "A YARA rule (shipped with exhunt, or from --yara) matched the DLL."),
    Check("audit-native-pinvoke", "Transport agent calls a native DLL in Exchange's folders", "high",
          "calls a native companion DLL",
          "The agent P/Invokes a native DLL that sits in Exchange's folders and is not signed by Microsoft: "
          "LightNeuron's agent hands every message to such a companion DLL."),
    # -- where and how it is registered -------------------------------------------------------
    Check("audit-suspicious-location", "Transport agent DLL in a user-writable or temporary folder", "high",
          "DLL in a suspicious folder",
          "The DLL lives in a temporary, profile, ProgramData, recycle-bin or drive-root folder: no product "
          "installs an agent there."),
    Check("audit-outside-exchange", "Transport agent DLL outside the Exchange install", "low",
          "outside the Exchange install",
          "The DLL is not under this Exchange install's folder. Vendors often install elsewhere; LightNeuron's "
          "look-alikes sit inside it, so this finding alone is context."),
    Check("audit-relative-path", "Transport agent registered by a relative path", "low", "relative assembly path",
          "The list names the DLL by a relative path or a variable. The cmdlets write full paths; a hand "
          "edit does not have to."),
    Check("audit-unc-path", "Transport agent registered from a network share", "high", "UNC assembly path",
          "The list names the DLL by a UNC path, which Install-TransportAgent refuses: the list was edited "
          "by hand. exhunt never follows it."),
    Check("audit-disabled-agent", "Transport agent registered but disabled", "low", "disabled",
          "The agent is in the list but disabled. Agents install disabled, and LightNeuron's installer "
          "enables its agent in a second step: a disabled unknown agent may be one waiting to be enabled."),
    Check("audit-duplicate-agent", "Two transport agents with one name", "medium", "duplicate name",
          "The list holds two agents with the same name, which the cmdlets never write."),
    # -- the lists themselves ------------------------------------------------------------------
    Check("audit-list-hostile", "Agent list with hostile XML", "high", "hostile list",
          "The agent list declares a DTD, entities or external references (XXE, entity expansion). Exchange "
          "never writes them; exhunt refused the file unexpanded."),
    Check("audit-list-malformed", "Agent list not readable", "medium", "malformed list",
          "The agent list is not well-formed XML or not an agent list: Exchange cannot load it either, and "
          "transport stops."),
    Check("audit-list-refused", "Agent list too large or not a file", "high", "list refused",
          "The agent list is larger than any Exchange writes, or not a regular file: refused unread."),
    Check("audit-list-differs", "Agent list differs from its copy", "low", "differs from a copy",
          "The live list and its template, .old or backup copy disagree on this agent (added, removed or "
          "changed since the copy was made)."),
    # -- around the agents ---------------------------------------------------------------------
    Check("audit-unlisted-pe", "Unlisted PE file in Exchange's folders not signed by Microsoft", "medium",
          "unlisted unsigned PE",
          "A PE file in Exchange's Bin or TransportRoles folders that no agent references and that Microsoft "
          "did not sign: a companion DLL, a tool, or a vendor's file to confirm."),
    Check("audit-lightneuron-file", "LightNeuron file name or place", "high", "LightNeuron artefact",
          "A file with a name and place LightNeuron (or its public emulation) uses: configuration, rules, "
          "logs, companion DLL or installer script."),
    Check("audit-pickup-lingering", "Messages lingering in the Pickup folder", "medium", "mail in Pickup",
          "msg* or .eml files in TransportRoles\\Pickup: Exchange sends and removes dropped mail within "
          "seconds, and LightNeuron sends its exfiltration mail this way."),
    # -- against a baseline ---------------------------------------------------------------------
    Check("audit-baseline-added", "Transport agent added since the baseline", "high", "added since baseline",
          "The agent is not in the baseline recorded on the known-good server."),
    Check("audit-baseline-removed", "Transport agent removed since the baseline", "medium", "removed since baseline",
          "An agent of the baseline is no longer registered (a security agent uninstalled?)."),
    Check("audit-baseline-repointed", "Transport agent re-pointed since the baseline", "high",
          "re-pointed since baseline",
          "The agent's assembly path or factory changed since the baseline."),
    Check("audit-baseline-reordered", "Transport agents re-ordered since the baseline", "low",
          "re-ordered since baseline",
          "The agent's priority among the baseline's agents changed (an agent moved ahead of the filters?)."),
    Check("audit-baseline-reenabled", "Transport agent enabled since the baseline", "medium",
          "enabled since baseline",
          "The agent was disabled in the baseline and is enabled now."),
    Check("audit-baseline-disabled", "Transport agent disabled since the baseline", "low", "disabled since baseline",
          "The agent was enabled in the baseline and is disabled now."),
    Check("audit-baseline-dll-changed", "Transport agent DLL changed since the baseline", "high",
          "DLL changed since baseline",
          "The agent's DLL has a different SHA-256 than in the baseline (an update, or a replaced file)."),
)

BY_ID: dict[str, Check] = {c.id: c for c in CHECKS}


def check(check_id: str) -> Check:
    return BY_ID[check_id]


#: How the table view and the HTML report sum up a finding (alertDescriptionFormat).
DESCRIPTION = "{{AgentName}} {{TransportService}} {{AssemblyPath}}: {{Verdict}}"


@cache
def as_rule(check_id: str) -> Rule:
    """The check as a Rule object (for the HTML report, tuning, and the incident outputs)."""
    c = BY_ID[check_id]
    doc = {"id": c.id, "name": c.name, "description": c.description, "severity": c.severity.capitalize(),
           "tactics": ["Persistence"], "relevantTechniques": ["T1505.002"], "query": "",
           "alertDetailsOverride": {"alertDescriptionFormat": DESCRIPTION}}
    return Rule(Path("audit") / f"{c.id}.yaml", doc, {"severity": c.severity, "confidence": c.confidence})
