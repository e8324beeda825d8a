"""`exhunt rules validate`: will this rule run here, in Sentinel, and in Defender?

Checks, each reported with the reason: the Sentinel fields are present and
within Sentinel's limits; the KQL is something the engine runs (the construct is
named when not); every column the query names exists in its table (run against
empty tables with the real schema, exactly as Defender would refuse it); every constant
regular expression compiles in RE2 (which refuses some only once a row reaches them); and a
separate verdict on Defender custom-detection requirements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from exhunt import kqlcheck, sqlguard
from exhunt.backends.duckdb import DuckDBBackend, regex_message
from exhunt.engine import Session
from exhunt.errors import RuleError
from exhunt.kql import tree
from exhunt.rule import SENTINEL_REQUIRED, Rule, load_each, tables_named_in

MAX_QUERY = 10_000
MIN_SPAN, MAX_SPAN = timedelta(minutes=5), timedelta(days=14)
#: ATT&CK technique -> tactics it belongs to (the techniques this package deals with).
TECHNIQUE_TACTICS = {
    "T1505": {"Persistence"},
    "T1505.002": {"Persistence"},
    "T1059": {"Execution"},
    "T1059.001": {"Execution"},
    "T1059.003": {"Execution"},
    "T1021.002": {"LateralMovement"},
    "T1570": {"LateralMovement"},
    "T1041": {"Exfiltration"},
    "T1105": {"CommandAndControl"},
    "T1553.002": {"DefenseEvasion"},
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
MAX_ENTITY_MAPPINGS, MAX_IDENTIFIERS = 10, 3
#: Tables Defender XDR does not have (Log Analytics / Sentinel only).
SENTINEL_ONLY_TABLES = {"Event", "SecurityEvent", "ExchangeAdminAuditLogs"}
#: Constructs duckdb-kql 1.1.2 does not run, named when translation fails without naming one.
UNSUPPORTED_FUNCTIONS = {
    "column_ifexists": "column_ifexists", "make_set_if": "make_set_if", "make_list_if": "make_list_if",
    "ingestion_time": "ingestion_time", "ipv4_is_private": "ipv4_is_private", "bag_keys": "bag_keys",
    "parse_path": "parse_path", "parse_xml": "parse_xml", "hash": "hash()",
    "row_number": "serialize / window functions", "prev": "serialize / window functions",
    "next": "serialize / window functions",
}
UNSUPPORTED_OPERATORS = {
    "evaluate": "bag_unpack / evaluate", "externaldata": "externaldata", "search": "search",
    "serialize": "serialize / window functions", "make-series": "make-series", "mv-apply": "mv-apply",
    "project-reorder": "project-reorder", "project-keep": "project-keep", "top-nested": "top-nested",
}
DEFENDER_ENTITY_COLUMNS = {"DeviceId", "DeviceName", "RemoteDeviceName", "RecipientEmailAddress",
                           "SenderFromAddress", "SenderMailFromAddress", "RecipientObjectId", "AccountObjectId",
                           "AccountSid", "AccountUpn", "InitiatingProcessAccountSid",
                           "InitiatingProcessAccountUpn", "InitiatingProcessAccountObjectId"}


@dataclass
class Unloadable:
    """A rule file that could not be loaded at all (not YAML, not a rule, a bad field)."""

    path: Path
    message: str
    ok = False

    @property
    def slug(self) -> str:
        return self.path.stem

    @property
    def findings(self) -> list[tuple[str, str]]:
        return [("error", self.message)]


@dataclass
class Result:
    rule: Rule
    findings: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    sentinel_ok: bool = False
    defender_ok: bool = False

    @property
    def ok(self) -> bool:
        return not any(level == "error" for level, _ in self.findings)

    @property
    def slug(self) -> str:
        return self.rule.slug

    @property
    def path(self) -> Path:
        return self.rule.path

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
    mappings = rule.doc.get("entityMappings") or []
    if len(mappings) > MAX_ENTITY_MAPPINGS:
        res.error(f"Sentinel: {len(mappings)} entity mappings; the limit is {MAX_ENTITY_MAPPINGS}")
    if not mappings:
        res.warn("Sentinel: no entityMappings (alerts will carry no host, account, file or process entity)")
    override = rule.doc.get("alertDetailsOverride") or {}
    for key, fmt in override.items():
        for col in re.findall(r"\{\{(\w+)\}\}", str(fmt)):
            if res.columns and col not in res.columns:
                res.error(f"Sentinel: alertDetailsOverride.{key} names {{{{{col}}}}}, which the query does not return")
    for mapping in mappings:
        etype = mapping.get("entityType")
        if len(mapping.get("fieldMappings") or []) > MAX_IDENTIFIERS:
            res.error(f"Sentinel: entity {etype} maps more than {MAX_IDENTIFIERS} identifiers")
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


def _defender(rule: Rule, res: Result, tables: list[str]) -> None:
    cols = set(res.columns)
    missing = [c for c in ("Timestamp", "ReportId") if c not in cols]
    entity = cols & DEFENDER_ENTITY_COLUMNS
    why = []
    if missing:
        why.append(f"result lacks {', '.join(missing)}")
    if not entity:
        why.append("result has no entity column (DeviceId, DeviceName, AccountSid, ...)")
    only_sentinel = [t for t in tables if t in SENTINEL_ONLY_TABLES]
    if only_sentinel and len(only_sentinel) == len(tables):
        why.append(f"reads only Sentinel tables ({', '.join(only_sentinel)})")
    res.defender_ok = not why
    if why:
        res.info("Defender custom detection: not deployable as is (" + "; ".join(why) + ")")
        return
    note = ""
    if only_sentinel:
        note = (f"; the {', '.join(only_sentinel)} part runs only where the Sentinel workspace is connected "
                f"to the Defender portal, and those rows carry no ReportId")
    res.info("Defender custom detection: deployable (Timestamp, ReportId and an entity column returned" + note + ")")


def _unsupported(kql: str) -> list[str]:
    """Known-unsupported constructs the query uses, read from its parse tree (a name in a
    string or a comment is not a construct); from its tokens when it does not parse."""
    found = tree.facts(kql)
    named = [UNSUPPORTED_FUNCTIONS[f] for f in sorted(found.functions) if f in UNSUPPORTED_FUNCTIONS]
    named += [UNSUPPORTED_OPERATORS[o] for o in sorted(found.operators) if o in UNSUPPORTED_OPERATORS]
    root = tree.parse(kql)
    if root is not None and _tabular_let_function(root):
        named.append("tabular let function")
    if root is not None and _datetime_diff_in_summarize(root):
        named.append("datetime_diff in summarize")
    if root is None and _between_with_arithmetic(kql):
        named.append("between with an unparenthesized column bound")
    return list(dict.fromkeys(named))


def _nodes(root: Any, kind: str) -> list[Any]:
    return [n for n in tree.walk(root) if tree.node_kind(n) == kind]


def _tabular_let_function(root: Any) -> bool:
    """`let f = (...) { T | ... }`: a function whose body is a pipeline."""
    return any(_nodes(body, "PipedOperator") for decl in _nodes(root, "LetFunctionDeclaration")
               for body in _nodes(decl, "LetFunctionBody"))


def _datetime_diff_in_summarize(root: Any) -> bool:
    return any(tree.call_name(call) == "datetime_diff" for op in _nodes(root, "SummarizeOperator")
               for call in _nodes(op, "NamedFunctionCallExpression"))


def _between_with_arithmetic(kql: str) -> bool:
    """`between (a .. b + 1)`: a bound computed without parentheses, which the grammar refuses."""
    toks = [t for t in tree.tokens(kql) if t.kind != "COMMENT"]
    for i, t in enumerate(toks):
        if t.kind != "BETWEEN" or i + 1 >= len(toks) or toks[i + 1].text != "(":
            continue
        depth, j = 0, i + 1
        while j < len(toks):
            depth += {"(": 1, ")": -1}.get(toks[j].text, 0)
            if depth == 0:
                break
            if depth == 1 and toks[j].text in ("+", "-") and toks[j - 1].kind in ("IDENTIFIER", "CLOSEPAREN"):
                return True
            j += 1
    return False


def _static(rule: Rule, session: Session, res: Result) -> list[str]:
    tables = {name: t.names + list(t.aliases) for name, t in session.tables.items()}
    problems = kqlcheck.check(rule.query, tables)
    for p in problems:
        res.error(str(p))
    return [p.column for p in problems]


#: Fields whose value must be a list (of text, or of mappings for the entity mappings).
LIST_FIELDS = ("tactics", "relevantTechniques", "entityMappings", "requiredDataConnectors")


def _shape(rule: Rule, res: Result) -> None:
    """Fields of the wrong kind, named before any check trips over them."""
    for key in LIST_FIELDS:
        value = rule.doc.get(key)
        if value is not None and not isinstance(value, list):
            res.error(f"{key} must be a list, not {type(value).__name__}")
    for key in ("alertDetailsOverride",):
        value = rule.doc.get(key)
        if value is not None and not isinstance(value, dict):
            res.error(f"{key} must be a mapping, not {type(value).__name__}")
    if not isinstance(rule.doc.get("query"), str):
        res.error("query must be text")


def validate_rule(rule: Rule, session: Session) -> Result:
    res = Result(rule)
    _shape(rule, res)
    if not res.ok:
        return res
    static_columns = _static(rule, session, res)
    engine = DuckDBBackend(session)
    try:
        tr = engine.translate(rule.query)
    except RuleError as exc:
        named = _unsupported(rule.query)
        said = str(exc)
        hint = f" (unsupported construct: {', '.join(named)})" if named and not any(
            w in said for w in ("construct", "not supported", "deprecated", "does not support")) else ""
        res.error(str(exc) + hint)
    else:
        # RE2 refuses some patterns only when a row reaches them: compile each one now.
        for pattern, why in sqlguard.regex_problems(session.con, tr.sql, tr.params):
            res.error(regex_message(pattern, why))
        try:
            table = engine.query(rule.query)
            res.columns = list(table.column_names)
        except RuleError as exc:
            if not any(f"'{c}'" in str(exc) or f"`{c}`" in str(exc) for c in static_columns):
                res.error(str(exc))
    for name in rule.required_tables:
        if name not in session.tables:
            res.error(f"requiredTables names unknown table {name!r}")
    read = tables_named_in(rule.query, session.tables)
    unlisted = [t for t in read if t not in rule.required_tables]
    if rule.required_tables and unlisted:
        res.warn(f"the query reads {', '.join(unlisted)}, which requiredTables does not list")
    before = len([f for f in res.findings if f[0] == "error"])
    _sentinel(rule, res)
    res.sentinel_ok = res.ok and len([f for f in res.findings if f[0] == "error"]) == before
    res.info("Sentinel analytic rule: " + ("valid" if res.sentinel_ok else "not valid (see the errors above)"))
    if res.columns:
        _defender(rule, res, read)
    else:
        res.defender_ok = False
        res.info("Defender custom detection: not checked (the query did not run)")
    return res


def validate_rules(rules: list[Rule]) -> list[Result]:
    with Session() as session:
        return [validate_rule(r, session) for r in rules]


def _checked(rule: Rule, session: Session) -> Result:
    """validate_rule, a rule whose fields break a check (a list where text belongs...) reported
    as its problem instead of ending the run."""
    try:
        return validate_rule(rule, session)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        res = Result(rule)
        res.error(f"the rule could not be checked: {type(exc).__name__}: {exc}")
        return res


def validate_all(refs: list[str] | None) -> list[Result | Unloadable]:
    """Every rule named (default: shipped), each checked whatever the others hold."""
    loaded = load_each(refs)
    with Session() as session:
        return [_checked(r, session) if isinstance(r, Rule) else Unloadable(*r) for r in loaded]


def render(results: list[Result | Unloadable], console: Any) -> bool:
    """Each rule with its findings, then a summary line; True when any rule has problems."""
    from exhunt.safetext import markup

    for res in results:
        status = "[green]ok[/green]" if res.ok else "[red]FAIL[/red]"
        console.print(f"{status} {markup(res.slug)} ({markup(res.path)})")
        for level, msg in res.findings:
            colour = {"error": "red", "warning": "yellow"}.get(level, "dim")
            console.print(f"   [{colour}]{level}[/{colour}]: {markup(msg)}")
    bad = sum(not r.ok for r in results)
    n = len(results)
    console.print(f"{n} rule{'' if n == 1 else 's'}, {n - bad} ok, {bad} with problems")
    return bad > 0
