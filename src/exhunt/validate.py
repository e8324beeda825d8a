"""`exhunt rules validate`: will this rule run here, in Sentinel, and in Defender?

Checks, each reported with the reason and the line of the rule file it is about (every
problem of a file at once, not the first): the Sentinel fields are present and within
Sentinel's limits; the tactics are Sentinel's and every technique is in ATT&CK Enterprise
with one of them (refdata/attack_enterprise.tsv, generated from MITRE's STIX data); the
entity mappings use Sentinel's entity types and identifiers (refdata/sentinel_entities.yaml);
the KQL is something the engine runs (the construct is named when not); every column the
query names exists in its table (run against empty tables with the real schema, exactly as
Defender would refuse it); every constant regular expression compiles in RE2 (which refuses
some only once a row reaches them); and a separate verdict on Defender custom-detection
requirements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from exhunt import kqlcheck, refdata, sqlguard, timespan, yamltext
from exhunt.backends.duckdb import DuckDBBackend, regex_message
from exhunt.engine import Session
from exhunt.errors import RuleError
from exhunt.kql import tree
from exhunt.rule import SENTINEL_REQUIRED, Rule, load_each, severity_rank, tables_named_in

MAX_QUERY = 10_000
MIN_SPAN, MAX_SPAN = timedelta(minutes=5), timedelta(days=14)
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


#: A place in the rule file: the keys and list indexes leading to a value.
Where = tuple[Any, ...]


def line_map(text: str) -> dict[Where, int]:
    """The 1-based line of each key and list item in a rule file, by its path (("entityMappings", 2,
    "entityType"),...); ("query", "@body") is the line the query's text starts on. Empty when the
    text is not YAML (that is reported on its own)."""
    try:
        root = yamltext.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[Where, int] = {}
    stack: list[tuple[yaml.Node, Where]] = [(root, ())] if root is not None else []
    while stack:
        node, at = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    here = (*at, key.value)
                    out.setdefault(here, key.start_mark.line + 1)
                    stack.append((value, here))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out.setdefault((*at, i), item.start_mark.line + 1)
                stack.append((item, (*at, i)))
        elif at == ("query",) and isinstance(node, yaml.ScalarNode):
            block = node.style in ("|", ">")
            out[("query", "@body")] = node.start_mark.line + (2 if block else 1)
    return out


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
        marks = re.findall(r"line (\d+), column \d+", self.message)  # the last is where it went wrong
        return [("error", f"line {marks[-1]}: {self.message}" if marks else self.message)]


@dataclass
class Result:
    rule: Rule
    findings: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    sentinel_ok: bool = False
    defender_ok: bool = False
    #: Lines of the rule file by key path (line_map); findings name the line of what they are about.
    lines: dict[Where, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(level == "error" for level, _ in self.findings)

    @property
    def slug(self) -> str:
        return self.rule.slug

    @property
    def path(self) -> Path:
        return self.rule.path

    def _at(self, msg: str, at: Where | int | None) -> str:
        if isinstance(at, int):
            return f"line {at}: {msg}"
        while at:
            if at in self.lines:
                return f"line {self.lines[at]}: {msg}"
            at = at[:-1]
        return msg

    def error(self, msg: str, at: Where | int | None = None) -> None:
        self.findings.append(("error", self._at(msg, at)))

    def warn(self, msg: str, at: Where | int | None = None) -> None:
        self.findings.append(("warning", self._at(msg, at)))

    def info(self, msg: str, at: Where | int | None = None) -> None:
        self.findings.append(("info", self._at(msg, at)))

    def query_line(self, word: str) -> int | None:
        """The file line of the first query line naming `word` (a column a check is about)."""
        start = self.lines.get(("query", "@body"))
        if start is None:
            return None
        for i, text in enumerate(self.rule.query.splitlines()):
            if re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text.split("//", 1)[0]):
                return start + i
        return self.lines.get(("query",))


def _span(rule: Rule, key: str, res: Result) -> timedelta | None:
    try:
        return timespan.parse(str(rule.doc.get(key, "1h")))
    except ValueError as exc:
        res.error(f"{key}: {exc}", (key,))
        return None


def _techniques(rule: Rule, res: Result, tactics: set[str]) -> None:
    """Each technique against ATT&CK Enterprise (refdata): known, current, and of one of the tactics."""
    table, header = refdata.attack()
    version = f"ATT&CK Enterprise v{header.get('attack_version', '?')}"
    for i, tech in enumerate(rule.techniques):
        at = ("relevantTechniques", i)
        found = table.get(tech)
        if found is None:
            res.error(f"Sentinel: technique {tech!r} is not in {version}", at)
            continue
        if found.status != "active":
            instead = f"; use {found.replaced_by} ({table[found.replaced_by].name}) instead" \
                if found.replaced_by in table else ""
            res.warn(f"Sentinel: technique {tech} ({found.name}) is {found.status} in {version}{instead}", at)
            continue
        if found.tactics and not found.tactics & tactics:
            res.error(f"Sentinel: technique {tech} ({found.name}) belongs to {', '.join(sorted(found.tactics))}, "
                      f"which is not among the rule's tactics ({', '.join(sorted(tactics)) or 'none'})", at)


def _entities(rule: Rule, res: Result) -> None:
    """Entity mappings against Sentinel's entity types: type, identifiers, required and strong sets."""
    types = refdata.entity_types()
    mappings = rule.doc.get("entityMappings") or []
    if len(mappings) > MAX_ENTITY_MAPPINGS:
        res.error(f"Sentinel: {len(mappings)} entity mappings; the limit is {MAX_ENTITY_MAPPINGS}",
                  ("entityMappings",))
    if not mappings:
        res.warn("Sentinel: no entityMappings (alerts will carry no host, account, file or process entity)")
    for i, mapping in enumerate(mappings):
        at: Where = ("entityMappings", i)
        if not isinstance(mapping, dict) or not isinstance(mapping.get("fieldMappings") or [], list):
            res.error("Sentinel: an entity mapping must be a mapping with entityType and a list of fieldMappings", at)
            continue
        etype = mapping.get("entityType")
        fields = [fm for fm in mapping.get("fieldMappings") or [] if isinstance(fm, dict)]
        if len(fields) > MAX_IDENTIFIERS:
            res.error(f"Sentinel: entity {etype} maps more than {MAX_IDENTIFIERS} identifiers", (*at, "fieldMappings"))
        known = types.get(str(etype))
        if known is None or not known.mappable:
            why = "a type Sentinel describes but a rule cannot map" if known else "unknown entityType"
            res.error(f"Sentinel: {why} {etype!r} (one of {', '.join(n for n, t in types.items() if t.mappable)})",
                      (*at, "entityType"))
            continue
        named = set()
        for j, fm in enumerate(fields):
            ident, fat = fm.get("identifier"), (*at, "fieldMappings", j)
            named.add(str(ident))
            if ident not in known.identifiers:
                res.error(f"Sentinel: {etype} has no identifier {ident!r} ({', '.join(known.identifiers)})",
                          (*fat, "identifier"))
            col = fm.get("columnName")
            if res.columns and col not in res.columns:
                res.error(f"Sentinel: entity {etype}.{ident} maps column {col!r}, which the query does not return",
                          (*fat, "columnName"))
        missing = [r for r in known.required if r not in named]
        if missing:
            res.error(f"Sentinel: a {etype} entity needs {', '.join(missing)}", at)
        elif (known.strong or known.weak) and not any(s <= named for s in known.strong + known.weak):
            sets = ", ".join("+".join(sorted(s)) for s in known.strong + known.weak)
            res.info(f"Sentinel: the {etype} mapping ({', '.join(sorted(named)) or 'nothing'}) is no identifier set "
                     f"Sentinel recognises an entity by ({sets}); it is shown but not matched across alerts", at)


def _sentinel(rule: Rule, res: Result, bad: set[str]) -> None:
    missing = [k for k in SENTINEL_REQUIRED if k not in rule.doc]
    if missing:
        res.error(f"Sentinel: missing field(s) {', '.join(missing)}", 1)
    if "query" not in bad and len(rule.query) > MAX_QUERY:
        res.error(f"Sentinel: query is {len(rule.query)} characters; the limit is {MAX_QUERY}", ("query",))
    freq, period = _span(rule, "queryFrequency", res), _span(rule, "queryPeriod", res)
    for label, span in (("queryFrequency", freq), ("queryPeriod", period)):
        if span is not None and not MIN_SPAN <= span <= MAX_SPAN:
            res.error(f"Sentinel: {label} {span} is outside 5m..14d", (label,))
    if freq is not None and period is not None and period < freq:
        res.error(f"Sentinel: queryPeriod {period} is shorter than queryFrequency {freq}", ("queryPeriod",))
    sev = str(rule.doc.get("severity", ""))
    if sev not in ("Informational", "Low", "Medium", "High"):
        res.error(f"Sentinel: severity {sev!r} must be Informational, Low, Medium or High", ("severity",))
    if rule.meta.get("severity") is not None:
        try:
            severity_rank(rule.severity)
        except RuleError as exc:
            res.error(f"exhunt.severity: {exc}", ("exhunt", "severity"))
    if not {"tactics", "relevantTechniques"} & bad:
        for i, tactic in enumerate(rule.tactics):
            if tactic not in refdata.SENTINEL_TACTICS:
                res.error(f"Sentinel: unknown tactic {tactic!r} (one of {', '.join(refdata.SENTINEL_TACTICS)})",
                          ("tactics", i))
        _techniques(rule, res, set(rule.tactics))
    override = rule.doc.get("alertDetailsOverride") or {}
    if "alertDetailsOverride" not in bad:
        for key, fmt in override.items():
            for col in re.findall(r"\{\{(\w+)\}\}", str(fmt)):
                if res.columns and col not in res.columns:
                    res.error(f"Sentinel: alertDetailsOverride.{key} names {{{{{col}}}}}, which the query does not "
                              f"return", ("alertDetailsOverride", key))
    if "entityMappings" not in bad:
        _entities(rule, res)


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
        res.error(str(p), res.query_line(p.column) or ("query",))
    return [p.column for p in problems]


#: Fields whose value must be a list (of text, or of mappings for the entity mappings).
LIST_FIELDS = ("tactics", "relevantTechniques", "entityMappings", "requiredDataConnectors")


def _shape(rule: Rule, res: Result) -> set[str]:
    """Fields of the wrong kind, named before any check trips over them; the checks that read
    them are skipped (the rest still run, so every problem of the file is listed)."""
    bad = set()
    for key in LIST_FIELDS:
        value = rule.doc.get(key)
        if value is not None and not isinstance(value, list):
            res.error(f"{key} must be a list, not {type(value).__name__}", (key,))
            bad.add(key)
    for key in ("alertDetailsOverride",):
        value = rule.doc.get(key)
        if value is not None and not isinstance(value, dict):
            res.error(f"{key} must be a mapping, not {type(value).__name__}", (key,))
            bad.add(key)
    if not isinstance(rule.doc.get("query"), str):
        res.error("query must be text", ("query",))
        bad.add("query")
    return bad


def _query(rule: Rule, session: Session, res: Result) -> list[str]:
    """Run the query on empty tables: the engine's verdict, RE2, requiredTables; the tables read."""
    static_columns = _static(rule, session, res)
    engine = DuckDBBackend(session)
    try:
        tr = engine.translate(rule.query)
    except RuleError as exc:
        named = _unsupported(rule.query)
        said = str(exc)
        hint = f" (unsupported construct: {', '.join(named)})" if named and not any(
            w in said for w in ("construct", "not supported", "deprecated", "does not support")) else ""
        res.error(str(exc) + hint, ("query",))
    else:
        # RE2 refuses some patterns only when a row reaches them: compile each one now.
        for pattern, why in sqlguard.regex_problems(session.con, tr.sql, tr.params):
            res.error(regex_message(pattern, why), ("query",))
        try:
            table = engine.query(rule.query)
            res.columns = list(table.column_names)
        except RuleError as exc:
            if not any(f"'{c}'" in str(exc) or f"`{c}`" in str(exc) for c in static_columns):
                res.error(str(exc), ("query",))
    for i, name in enumerate(rule.required_tables):
        if name not in session.tables:
            res.error(f"requiredTables names unknown table {name!r}", ("exhunt", "requiredTables", i))
    read = tables_named_in(rule.query, session.tables)
    unlisted = [t for t in read if t not in rule.required_tables]
    if rule.required_tables and unlisted:
        res.warn(f"the query reads {', '.join(unlisted)}, which requiredTables does not list",
                 ("exhunt", "requiredTables"))
    return read


def validate_rule(rule: Rule, session: Session) -> Result:
    """Every check on one rule; each finding names the line of the rule file it is about."""
    try:
        lines = line_map(rule.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    res = Result(rule, lines=lines)
    bad = _shape(rule, res)
    read = _query(rule, session, res) if "query" not in bad else []
    before = len([f for f in res.findings if f[0] == "error"])
    _sentinel(rule, res, bad)
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
