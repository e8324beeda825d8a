"""Rules out of exhunt: Sentinel analytic-rule YAML, an ARM template, Defender custom-detection JSON.

A rule file is already Sentinel YAML plus an `exhunt` block, so exporting is mostly
leaving things out and renaming. The query text is never touched: what the rule
tests ran is byte for byte what the platform gets.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from exhunt import timespan, yamltext
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
#: Defender custom-detection frequencies and the lookback each one gets (the platform fixes the pair).
DEFENDER_SCHEDULES = (("1H", 1, 4), ("3H", 3, 12), ("12H", 12, 48), ("24H", 24, 720))
_DEVICE_IDENTIFIERS = {"deviceid": "deviceId", "devicename": "deviceName", "remotedevicename": "remoteDeviceName"}
_USER_IDENTIFIERS = {
    "accountobjectid": "accountObjectId", "accountsid": "accountSid", "accountupn": "accountUpn",
    "accountname": "accountName", "accountdomain": "accountDomain",
    "initiatingprocessaccountsid": "initiatingAccountSid", "initiatingprocessaccountname": "initiatingAccountName",
    "initiatingprocessaccountupn": "initiatingProcessAccountUpn",
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


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, so the query reads as it does in the rule file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_sentinel(rule: Rule) -> str:
    return yaml.dump(sentinel_doc(rule), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16)


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


def defender_period(rule: Rule, rowwise: bool) -> str:
    """The Defender frequency for a rule's Sentinel schedule.

    Defender pairs each frequency with a fixed lookback (1H/4h, 3H/12h, 12H/48h,
    24H/30d). A rule judged row by row only needs every row seen once, so it takes the
    shortest frequency at or above its queryFrequency; a rule that aggregates also needs
    a lookback covering its queryPeriod.
    """
    freq_h = rule.frequency.total_seconds() / 3600
    period_h = rule.period.total_seconds() / 3600
    for name, every, lookback in DEFENDER_SCHEDULES:
        if every >= freq_h and (rowwise or lookback >= period_h):
            return name
    return DEFENDER_SCHEDULES[-1][0]


def _impacted_assets(rule: Rule) -> list[dict[str, str]]:
    assets: list[dict[str, str]] = []
    for mapping in rule.doc.get("entityMappings") or []:
        for field in mapping.get("fieldMappings") or []:
            column = str(field.get("columnName", "")).lower()
            if column in _DEVICE_IDENTIFIERS:
                asset = {"@odata.type": "#microsoft.graph.security.impactedDeviceAsset",
                         "identifier": _DEVICE_IDENTIFIERS[column]}
            elif column in _USER_IDENTIFIERS:
                asset = {"@odata.type": "#microsoft.graph.security.impactedUserAsset",
                         "identifier": _USER_IDENTIFIERS[column]}
            else:
                continue
            if asset not in assets:
                assets.append(asset)
    return assets


def defender_rule(rule: Rule) -> dict[str, Any]:
    """A Microsoft Graph `detectionRule` (Defender XDR custom detection) body."""
    from exhunt.replay import rowwise

    doc = sentinel_doc(rule)
    tactics = [str(t) for t in doc.get("tactics") or []]
    return {
        "displayName": doc.get("name", rule.slug),
        "isEnabled": True,
        "queryCondition": {"queryText": doc.get("query", "")},
        "schedule": {"period": defender_period(rule, rowwise(rule))},
        "detectionAction": {
            "alertTemplate": {
                "title": doc.get("name", rule.slug),
                "description": str(doc.get("description", "")).strip(),
                "severity": doc["severity"].lower(),
                "category": tactics[0] if tactics else "SuspiciousActivity",
                "recommendedActions": None,
                "mitreTechniques": [str(t) for t in doc.get("relevantTechniques") or []],
                "impactedAssets": _impacted_assets(rule),
            },
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
    if not _impacted_assets(rule):
        out.append("no entity mapping names a Defender device or user column; set the impacted asset by hand")
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
