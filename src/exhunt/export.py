"""Rules out of exhunt: Sentinel analytic-rule YAML, an ARM template, Defender custom-detection JSON.

A rule file is already Sentinel YAML plus an `exhunt` block, so exporting is mostly
leaving things out and renaming. The query text is never touched: what the rule
tests ran is byte for byte what the platform gets.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import yaml

from exhunt import refdata, timespan, yamltext
from exhunt.errors import UsageError
from exhunt.kql import tree
from exhunt.rule import Rule

TARGETS = ("sentinel", "sentinel-arm", "defender")

#: Top-level fields of a Sentinel scheduled analytic rule, in the order Sentinel's own files use.
SENTINEL_FIELDS = (
    "id", "name", "description", "severity", "status", "requiredDataConnectors", "queryFrequency", "queryPeriod",
    "triggerOperator", "triggerThreshold", "tactics", "relevantTechniques", "tags", "query", "entityMappings",
    "customDetails", "alertDetailsOverride", "eventGroupingSettings", "incidentConfiguration", "suppressionDuration",
    "suppressionEnabled", "version", "kind",
)
_SENTINEL_SEVERITY = {"informational": "Informational", "low": "Low", "medium": "Medium", "high": "High",
                      "critical": "High"}
_ARM_OPERATOR = {"gt": "GreaterThan", "lt": "LessThan", "eq": "Equal", "ne": "NotEqual"}
#: Defender custom-detection run frequencies (ISO 8601, as Graph's ruleSchedule.frequency takes them)
#: and their hours; "PT0S" is a continuous (near-real-time) rule, for a Sentinel NRT rule only.
DEFENDER_FREQUENCIES = (("PT1H", 1), ("PT3H", 3), ("PT12H", 12), ("P1D", 24))
DEFENDER_NRT = "PT0S"
#: Sentinel entity type -> (Graph entityMappingConfiguration property, {Sentinel identifier: column property}).
DEFENDER_ENTITIES: dict[str, tuple[str, dict[str, str]]] = {
    "Account": ("accounts", {"Name": "nameColumn", "NTDomain": "ntDomainColumn", "DnsDomain": "dnsDomainColumn",
                             "UPNSuffix": "upnSuffixColumn", "Sid": "sidColumn", "AadUserId": "aadUserIdColumn"}),
    "Host": ("hosts", {"HostName": "nameColumn", "NTDomain": "ntDomainColumn", "DnsDomain": "dnsDomainColumn",
                       "NetBiosName": "netBiosNameColumn"}),
    "IP": ("ips", {"Address": "addressColumn", "AddressScope": "scopeColumn"}),
    "File": ("files", {"Name": "nameColumn"}),
    "Mailbox": ("mailboxes", {"MailboxPrimaryAddress": "primaryAddressColumn"}),
}


def sentinel_severity(rule: Rule) -> str:
    """Sentinel knows four severities; exhunt's "critical" goes out as High."""
    raw = str(rule.doc.get("severity") or rule.severity)
    return _SENTINEL_SEVERITY.get(raw.lower(), _SENTINEL_SEVERITY.get(rule.severity, "Medium"))


def sentinel_doc(rule: Rule) -> dict[str, Any]:
    """The rule's Sentinel fields only (the `exhunt` block and any other key left out)."""
    doc = {k: rule.doc[k] for k in SENTINEL_FIELDS if k in rule.doc}
    doc["severity"] = sentinel_severity(rule)
    doc.setdefault("kind", "Scheduled")
    return doc


def to_sentinel(rule: Rule) -> str:
    return yaml.dump(sentinel_doc(rule), Dumper=yamltext.BlockDumper, sort_keys=False, allow_unicode=True,
                     width=1 << 16)


def _arm_text(value: Any) -> Any:
    """ARM evaluates strings that start with `[` as expressions; `[[` is its escape."""
    if isinstance(value, str) and value.startswith("["):
        return "[" + value
    if isinstance(value, list):
        return [_arm_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _arm_text(v) for k, v in value.items()}
    return value


def arm_template(rule: Rule) -> dict[str, Any]:
    """An ARM template deploying the rule as a scheduled analytic rule into a workspace."""
    doc = sentinel_doc(rule)
    techniques = [str(t) for t in doc.get("relevantTechniques") or []]
    props: dict[str, Any] = {
        "displayName": doc.get("name", rule.slug),
        "description": doc.get("description", ""),
        "severity": doc["severity"],
        "enabled": True,
        "query": doc.get("query", ""),
        "queryFrequency": timespan.iso(rule.frequency),
        "queryPeriod": timespan.iso(rule.period),
        "triggerOperator": _ARM_OPERATOR.get(str(doc.get("triggerOperator", "gt")).lower(),
                                             str(doc.get("triggerOperator", "GreaterThan"))),
        "triggerThreshold": int(doc.get("triggerThreshold", 0)),
        "suppressionDuration": timespan.iso(timespan.parse(str(doc.get("suppressionDuration", "5h")))),
        "suppressionEnabled": bool(doc.get("suppressionEnabled", False)),
        "tactics": list(doc.get("tactics") or []),
        "techniques": sorted({t.split(".")[0] for t in techniques}),
        "subTechniques": [t for t in techniques if "." in t],
    }
    for key in ("entityMappings", "customDetails", "alertDetailsOverride", "eventGroupingSettings",
                "incidentConfiguration"):
        if key in doc:
            props[key] = doc[key]
    props = {k: v for k, v in props.items() if v is not None}
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "workspace": {"type": "string", "metadata": {"description": "The Microsoft Sentinel workspace name"}},
        },
        "resources": [{
            "type": "Microsoft.OperationalInsights/workspaces/providers/alertRules",
            "apiVersion": "2023-12-01-preview",
            "name": f"[concat(parameters('workspace'), '/Microsoft.SecurityInsights/', '{rule.id}')]",
            "kind": str(doc.get("kind", "Scheduled")),
            "properties": _arm_text(props),
        }],
    }


def to_arm(rule: Rule) -> str:
    return json.dumps(arm_template(rule), indent=2, ensure_ascii=False) + "\n"


def defender_schedule(rule: Rule) -> dict[str, str]:
    """Graph's ruleSchedule for the rule's Sentinel schedule: the shortest Defender frequency at or
    above queryFrequency, and a lookback of queryPeriod (at least the frequency, as Graph requires).
    A Sentinel NRT rule runs continuously (frequency zero, no lookback)."""
    if str(rule.doc.get("kind", "")).upper() == "NRT":
        return {"frequency": DEFENDER_NRT}
    freq_h = rule.frequency.total_seconds() / 3600
    name, hours = next(((n, h) for n, h in DEFENDER_FREQUENCIES if h >= freq_h), DEFENDER_FREQUENCIES[-1])
    lookback = max(rule.period, timedelta(hours=hours))
    return {"frequency": name, "lookback": timespan.iso(lookback)}


def _tactics(rule: Rule) -> list[dict[str, Any]]:
    """alertTemplate.tactics: each rule tactic with its techniques (ATT&CK's own pairing; a technique
    ATT&CK does not place under any of the rule's tactics goes under the first), sub-techniques under
    their parent."""
    table, _ = refdata.attack()
    tactics = [str(t) for t in rule.doc.get("tactics") or []]
    placed: dict[str, dict[str, list[str]]] = {t: {} for t in tactics}
    for tech in [str(t) for t in rule.doc.get("relevantTechniques") or []]:
        known = table.get(tech)
        homes = [t for t in tactics if known and t in known.tactics] or tactics[:1]
        parent = tech.split(".")[0]
        for home in homes:
            subs = placed[home].setdefault(parent, [])
            if "." in tech and tech not in subs:
                subs.append(tech)
    return [{"tactic": t, "techniques": [{"technique": parent, "subTechniques": subs}
                                         for parent, subs in placed[t].items()]} for t in tactics]


def _entity_mappings(rule: Rule) -> dict[str, list[dict[str, str]]]:
    """alertTemplate.entityMappings from the Sentinel entity mappings: the identifiers Defender has a
    column property for; a FileHash's SHA1/SHA256 column joins the file mapping; a host gets the
    DeviceId column when the query names one (Defender's device actions need it)."""
    out: dict[str, list[dict[str, str]]] = {}
    hashes: dict[str, str] = {}
    for mapping in rule.doc.get("entityMappings") or []:
        etype = str(mapping.get("entityType"))
        fields = {str(f.get("identifier")): str(f.get("columnName")) for f in mapping.get("fieldMappings") or []}
        if etype == "FileHash" and "Value" in fields:
            kind = "sha256Column" if "256" in fields["Value"] else "sha1Column" if "sha1" in fields["Value"].lower() \
                else None
            if kind:
                hashes[kind] = fields["Value"]
            continue
        if etype not in DEFENDER_ENTITIES:
            continue
        prop, columns = DEFENDER_ENTITIES[etype]
        entry = {columns[i]: c for i, c in fields.items() if i in columns}
        if etype == "Host" and "deviceid" in tree.facts(rule.query).names:
            entry["deviceIdColumn"] = "DeviceId"
        if entry:
            out.setdefault(prop, []).append(entry)
    if hashes:
        files = out.setdefault("files", [{}])
        files[0].update(hashes)
    return out


def _unmapped(rule: Rule) -> list[str]:
    """Sentinel entity types the Defender export leaves out."""
    carried = set(DEFENDER_ENTITIES) | {"FileHash"}
    return sorted({str(m.get("entityType")) for m in rule.doc.get("entityMappings") or []} - carried)


def defender_rule(rule: Rule) -> dict[str, Any]:
    """A Microsoft Graph `detectionRule` (Defender XDR custom detection) body, for
    POST https://graph.microsoft.com/beta/security/rules/detectionRules.

    Shape as Microsoft Learn's Graph reference gives it (read 2026-12-02): `schedule` is a
    ruleSchedule with `frequency` (ISO 8601 duration; Defender runs PT1H, PT3H, PT12H, P1D, or PT0S
    for continuous) and, in beta, `lookback`; the `period` string (0/1H/3H/12H/24H) it replaced was
    removed on 2026-10-01. The alertTemplate holds title, description, severity, recommendedActions,
    `tactics` (mitreTactic: tactic + techniques/subTechniques) and `entityMappings` (an
    entityMappingConfiguration: accounts, hosts, files, ips, mailboxes... each naming result columns),
    which replaced the removed `category`, `mitreTechniques` and `impactedAssets`.
    """
    doc = sentinel_doc(rule)
    template: dict[str, Any] = {
        "title": doc.get("name", rule.slug),
        "description": str(doc.get("description", "")).strip(),
        "severity": doc["severity"].lower(),
        "recommendedActions": None,
        "tactics": _tactics(rule),
        "entityMappings": _entity_mappings(rule),
    }
    custom = doc.get("customDetails")
    if isinstance(custom, dict) and custom:
        template["customDetails"] = {str(k): str(v) for k, v in custom.items()}
    return {
        "displayName": doc.get("name", rule.slug),
        "isEnabled": True,
        "queryCondition": {"queryText": doc.get("query", "")},
        "schedule": defender_schedule(rule),
        "detectionAction": {
            "alertTemplate": template,
            "organizationalScope": None,
            "responseActions": [],
        },
    }


def to_defender(rule: Rule) -> str:
    return json.dumps(defender_rule(rule), indent=2, ensure_ascii=False) + "\n"


#: Operators after which a result column exists only if the query names it.
_SHAPES_RESULT = frozenset({"project", "project-keep", "summarize", "count", "distinct", "make-series",
                            "top-nested", "top-hitters", "reduce", "sample-distinct"})


def defender_warnings(rule: Rule) -> list[str]:
    """What Defender will refuse or change: its required result columns, its fixed schedules."""
    out = []
    shaped = tree.operators(rule.query) & _SHAPES_RESULT
    if shaped and "reportid" not in tree.facts(rule.query).names:
        out.append("Defender requires Timestamp, ReportId and an entity column in the results; "
                   "this query's results have no ReportId, so Defender will reject it until it projects one")
    mapped = _entity_mappings(rule)
    if not {"hosts", "accounts", "mailboxes"} & set(mapped):
        out.append("no entity mapping names a host, account or mailbox for Defender; add one by hand")
    left = _unmapped(rule)
    if left:
        out.append(f"Defender's entity mappings have no place for {', '.join(left)}; left out")
    schedule = defender_schedule(rule)
    if schedule["frequency"] != DEFENDER_NRT:
        every = timedelta(hours=dict(DEFENDER_FREQUENCIES)[schedule["frequency"]])
        if every != rule.frequency:
            out.append(f"Defender runs it every {schedule['frequency']} (its nearest frequency), not every "
                       f"{rule.doc.get('queryFrequency')}; a query that filters on ago() of its own frequency "
                       f"misses rows in between")
    return out


def export(rule: Rule, target: str) -> str:
    """The rule in the target platform's format, as text."""
    if target == "sentinel":
        return to_sentinel(rule)
    if target == "sentinel-arm":
        return to_arm(rule)
    if target == "defender":
        return to_defender(rule)
    raise UsageError(f"--to must be one of {', '.join(TARGETS)}, not {target!r}")


def exported_query(text: str, target: str) -> str:
    """The query inside an export (for round-trip checks), with ARM's `[[` escape undone."""
    if target == "sentinel":
        return str(yamltext.load(text)["query"])
    if target == "sentinel-arm":
        query = str(json.loads(text)["resources"][0]["properties"]["query"])
        return query[1:] if query.startswith("[[") else query
    if target == "defender":
        return str(json.loads(text)["queryCondition"]["queryText"])
    raise UsageError(f"unknown export target {target!r}")
