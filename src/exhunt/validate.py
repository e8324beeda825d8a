"""`exhunt rules validate`: will this rule run here, in Sentinel, and in Defender?

Checks, each reported with the reason: the Sentinel fields are present and
within Sentinel's limits; the KQL is something the engine runs (the construct is
named when not); every column the query names exists in its table (run against
empty tables with the real schema, exactly as Defender would refuse it); and a
separate verdict on Defender custom-detection requirements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from exhunt.engine import Session
from exhunt.errors import RuleError
from exhunt.rule import SENTINEL_REQUIRED, Rule

MAX_QUERY = 10_000
MIN_SPAN, MAX_SPAN = timedelta(minutes=5), timedelta(days=14)
#: ATT&CK technique -> tactics it belongs to (the techniques this package deals with).
TECHNIQUE_TACTICS = {
    "T1505": {"Persistence"},
    "T1505.002": {"Persistence"},
    "T1059": {"Execution"},
    "T1059.001": {"Execution"},
    "T1114": {"Collection"},
    "T1114.002": {"Collection"},
    "T1020": {"Exfiltration"},
    "T1036": {"DefenseEvasion"},
    "T1036.005": {"DefenseEvasion"},
    "T1027": {"DefenseEvasion"},
    "T1070": {"DefenseEvasion"},
    "T1562": {"DefenseEvasion"},
    "T1569.002": {"Execution"},
    "T1071.003": {"CommandAndControl"},
    "T1001.002": {"CommandAndControl"},
}
ENTITY_IDENTIFIERS = {
    "Account": {"Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId", "AadUserId",
                "PUID", "IsDomainJoined", "DisplayName", "ObjectGuid"},
    "Host": {"DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID", "OMSAgentID",
             "OSFamily", "OSVersion", "IsDomainJoined"},
    "IP": {"Address"},
    "File": {"Directory", "Name"},
    "FileHash": {"Algorithm", "Value"},
    "Process": {"ProcessId", "CommandLine", "ElevationToken", "CreationTimeUtc"},
    "RegistryKey": {"Hive", "Key"},
    "RegistryValue": {"Name", "Value", "ValueType"},
    "URL": {"Url"},
    "MailMessage": {"Recipient", "Sender", "InternetMessageId", "NetworkMessageId", "Subject"},
}
DEFENDER_ENTITY_COLUMNS = {"DeviceId", "DeviceName", "RemoteDeviceName", "RecipientEmailAddress",
                           "SenderFromAddress", "SenderMailFromAddress", "RecipientObjectId", "AccountObjectId",
                           "AccountSid", "AccountUpn", "InitiatingProcessAccountSid",
                           "InitiatingProcessAccountUpn", "InitiatingProcessAccountObjectId"}


@dataclass
class Result:
    rule: Rule
    findings: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(level == "error" for level, _ in self.findings)

    def error(self, msg: str) -> None:
        self.findings.append(("error", msg))

    def warn(self, msg: str) -> None:
        self.findings.append(("warning", msg))

    def info(self, msg: str) -> None:
        self.findings.append(("info", msg))


def _sentinel(rule: Rule, res: Result) -> None:
    missing = [k for k in SENTINEL_REQUIRED if k not in rule.doc]
    if missing:
        res.error(f"Sentinel: missing field(s) {', '.join(missing)}")
    if len(rule.query) > MAX_QUERY:
        res.error(f"Sentinel: query is {len(rule.query)} characters; the limit is {MAX_QUERY}")
    freq, period = rule.frequency, rule.period
    for label, span in (("queryFrequency", freq), ("queryPeriod", period)):
        if not MIN_SPAN <= span <= MAX_SPAN:
            res.error(f"Sentinel: {label} {span} is outside 5m..14d")
    if period < freq:
        res.error(f"Sentinel: queryPeriod {period} is shorter than queryFrequency {freq}")
    sev = str(rule.doc.get("severity", ""))
    if sev not in ("Informational", "Low", "Medium", "High"):
        res.error(f"Sentinel: severity {sev!r} must be Informational, Low, Medium or High")
    tactics = set(rule.tactics)
    for tech in rule.techniques:
        expected = TECHNIQUE_TACTICS.get(tech) or TECHNIQUE_TACTICS.get(tech.split(".")[0])
        if expected is None:
            res.warn(f"Sentinel: technique {tech} is not in exhunt's tactic table; tactic not checked")
        elif not expected & tactics:
            res.error(f"Sentinel: technique {tech} belongs to {', '.join(sorted(expected))}, "
                      f"which is not among the rule's tactics ({', '.join(sorted(tactics)) or 'none'})")
    for mapping in rule.doc.get("entityMappings") or []:
        etype = mapping.get("entityType")
        if etype not in ENTITY_IDENTIFIERS:
            res.error(f"Sentinel: unknown entityType {etype!r}")
            continue
        for fm in mapping.get("fieldMappings") or []:
            ident = fm.get("identifier")
            if ident not in ENTITY_IDENTIFIERS[etype]:
                res.error(f"Sentinel: {etype} has no identifier {ident!r}")
            col = fm.get("columnName")
            if res.columns and col not in res.columns:
                res.error(f"Sentinel: entity {etype}.{ident} maps column {col!r}, which the query does not return")


def _defender(rule: Rule, res: Result) -> None:
    cols = set(res.columns)
    missing = [c for c in ("Timestamp", "ReportId") if c not in cols]
    entity = cols & DEFENDER_ENTITY_COLUMNS
    if missing or not entity:
        why = []
        if missing:
            why.append(f"result lacks {', '.join(missing)}")
        if not entity:
            why.append("result has no entity column (DeviceId, DeviceName, AccountSid, ...)")
        res.info("Defender custom detection: not deployable as is (" + "; ".join(why) + ")")
    else:
        res.info("Defender custom detection: deployable (Timestamp, ReportId and an entity column returned)")


def validate_rule(rule: Rule, session: Session) -> Result:
    res = Result(rule)
    try:
        session.translate(rule.query)
        table = session.query(rule.query)
        res.columns = list(table.column_names)
    except RuleError as exc:
        res.error(str(exc))
    for name in rule.required_tables:
        if name not in session.tables:
            res.error(f"requiredTables names unknown table {name!r}")
    _sentinel(rule, res)
    if res.columns:
        _defender(rule, res)
    return res


def validate_rules(rules: list[Rule]) -> list[Result]:
    with Session() as session:
        return [validate_rule(r, session) for r in rules]
