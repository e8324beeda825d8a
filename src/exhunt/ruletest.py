"""`exhunt rules test`: run the cases written beside each rule and compare alerts exactly.

A rule `rules/<slug>.yaml` has its cases in `rules/tests/<slug>.yaml`:

    rule: <slug>
    defaults:                       # optional, merged into every row of that table
      DeviceFileEvents: {DeviceName: exch01, ActionType: FileCreated}
    cases:
      - name: DLL dropped into TransportRoles\\agents
        kind: true-positive         # true-positive | false-positive | true-negative
        why: the reason this case exists
        now: 2026-01-02T00:00:00Z   # optional: one pinned run; default replays the schedule
        events:
          DeviceFileEvents:
            - {Timestamp: 2026-01-01T10:00:00Z, FileName: evil.dll, ...}
        expect:                     # the exact alert list (order ignored); listed keys compared
          - {DetectionType: Exchange_Transport_DLL_Write, FileName: evil.dll}

A case passes when the rule raises exactly as many alerts as `expect` lists and
each expected alert matches a different actual one on every key it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from exhunt import alerts as alerting
from exhunt.backends.base import Backend
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.errors import RuleError
from exhunt.replay import run_rule
from exhunt.rule import Rule, load_yaml
from exhunt.sources.base import FileReport, RowBuffer

KINDS = ("true-positive", "false-positive", "true-negative")


@dataclass
class CaseResult:
    rule: Rule
    name: str
    kind: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


def cases_path(rule: Rule) -> Path:
    return rule.path.parent / "tests" / f"{rule.slug}.yaml"


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return alerting.iso(value.replace(tzinfo=None) if value.tzinfo is None else value)
    return str(value)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, datetime):
        from datetime import UTC

        exp = expected.astimezone(UTC).replace(tzinfo=None) if expected.tzinfo else expected
        return alerting.iso(exp) == actual
    if isinstance(expected, (list, dict)) or expected is None:
        return bool(expected == actual)
    return str(expected) == ("" if actual is None else str(actual))


def _match(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Problems with the pairing of expected and actual alerts (empty when they agree)."""
    problems: list[str] = []
    if len(expected) != len(actual):
        problems.append(f"expected {len(expected)} alert(s), got {len(actual)}")
    left = list(range(len(actual)))
    for exp in expected:
        hit = next((i for i in left if all(_same(v, actual[i].get(k)) for k, v in exp.items())), None)
        if hit is None:
            problems.append(f"no alert matches {exp}")
        else:
            left.remove(hit)
    for i in left:
        meta = alerting.HEAD[:alerting.HEAD.index("Timestamp")]  # the rule's facts, not the event's
        shown = {k: v for k, v in actual[i].items() if k not in meta and v not in (None, "")}
        problems.append(f"unexpected alert {shown}")
    return problems


def _parse_now(value: Any) -> datetime | None:
    if value is None:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if t.tzinfo is not None:
        from datetime import UTC

        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def load_cases(rule: Rule) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path = cases_path(rule)
    if not path.exists():
        raise RuleError(f"{rule.slug}: no tests at {path}")
    doc = load_yaml(path) or {}
    if not isinstance(doc, dict):
        raise RuleError(f"{path}: not a rule's tests (a YAML mapping with `cases` is expected)")
    cases = doc.get("cases") or []
    if not isinstance(cases, list) or not cases:
        raise RuleError(f"{path}: no cases")
    return doc.get("defaults") or {}, cases


def run_case(session: Session, rule: Rule, defaults: dict[str, Any], case: dict[str, Any],
             backend: Backend | None = None) -> CaseResult:
    """Load the case's events into `session` (emptied first) and run the rule over them through
    `backend` (by default DuckDB over `session`)."""
    if backend is None:
        backend = DuckDBBackend(session)
    name = str(case.get("name", "?"))
    kind = str(case.get("kind", "true-positive"))
    result = CaseResult(rule, name, kind, passed=False)
    if kind not in KINDS:
        result.problems.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        return result
    session.clear()
    report = FileReport(f"{cases_path(rule).name}#{name}")
    buf = RowBuffer()
    for table, rows in (case.get("events") or {}).items():
        if table not in session.tables:
            result.problems.append(f"unknown table {table!r} in events")
            return result
        for i, row in enumerate(rows or [], 1):
            merged = {**(defaults.get(table) or {}), **row}
            merged = {k: _as_text(v) if isinstance(v, datetime) else v for k, v in merged.items()}
            batch = buf.add(table, merged, f"{table}[{i}]")
            if batch is not None:
                session.insert(batch, report, report.path)
    for batch in buf.drain():
        session.insert(batch, report, report.path)
    if report.total_skipped or report.coerced:
        result.problems.extend(report.messages)
    try:
        run = run_rule(backend, rule, _parse_now(case.get("now")))
    except RuleError as exc:
        result.problems.append(str(exc))
        return result
    result.alerts = alerting.build(backend, rule, run.rows)
    result.problems.extend(_match(list(case.get("expect") or []), result.alerts))
    result.passed = not result.problems
    return result


def run_tests(rules: list[Rule]) -> list[CaseResult]:
    out: list[CaseResult] = []
    with Session(in_memory=True) as session, DuckDBBackend(session) as backend:
        for rule in rules:
            defaults, cases = load_cases(rule)
            for case in cases:
                out.append(run_case(session, rule, defaults, case, backend))
    return out


#: Characters XML 1.0 cannot hold even escaped (C0 controls but tab, LF, CR; surrogates; U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """Text an XML 1.0 parser accepts: what it cannot hold is shown as a `\\xNN`/`\\uNNNN`
    escape (markup characters are escaped by the writer)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def junit_xml(results: list[CaseResult]) -> str:
    """JUnit XML for CI: one testsuite per rule, one testcase per case, a failure per failing
    case with its first problem as message and all of them as text. Every value is data
    (rule files and events may be anyone's): escaped as XML, never markup."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="exhunt rules test", tests=str(len(results)),
                      failures=str(sum(not r.passed for r in results)))
    suites: dict[str, ET.Element] = {}
    for res in results:
        suite = suites.get(res.rule.slug)
        if suite is None:
            suite = suites[res.rule.slug] = ET.SubElement(
                root, "testsuite", name=_xml_safe(res.rule.slug), file=_xml_safe(str(cases_path(res.rule))),
                tests="0", failures="0")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        case = ET.SubElement(suite, "testcase", classname=_xml_safe(f"exhunt.rules.{res.rule.slug}"),
                             name=_xml_safe(f"{res.name} ({res.kind})"))
        if not res.passed:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            problems = [_xml_safe(p) for p in res.problems] or ["failed"]
            failure = ET.SubElement(case, "failure", message=problems[0], type=_xml_safe(res.kind))
            failure.text = "\n".join(problems)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
