"""`rules validate` checks every rule and sums up; `rules test --junit` writes JUnit XML for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml

from conftest import run_cli

BASE: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000001", "name": "probe", "description": "probe rule", "severity": "High",
    "queryFrequency": "1h", "queryPeriod": "1h", "triggerOperator": "gt", "triggerThreshold": 0,
    "tactics": ["Persistence"], "relevantTechniques": ["T1505.002"],
    "query": "DeviceFileEvents | project Timestamp, DeviceName, ReportId, FileName",
    "entityMappings": [{"entityType": "Host",
                        "fieldMappings": [{"identifier": "HostName", "columnName": "DeviceName"}]}],
    "version": "1.0.0", "kind": "Scheduled",
}


def _squeeze(text: str) -> str:
    """Without whitespace: the console wraps long lines at its width."""
    return "".join(text.split())


def test_validate_checks_every_rule_lists_every_problem_and_sums_up(tmp_path: Path) -> None:
    """It used to stop at the first file that failed to load, with no summary."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a-not-yaml.yaml").write_text("query: [unclosed\n")
    (rules / "b-good.yaml").write_text(yaml.safe_dump(BASE))
    (rules / "c-no-query.yaml").write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "query"}))
    (rules / "d-bad-span.yaml").write_text(yaml.safe_dump({**BASE, "queryFrequency": "soon"}))
    (rules / "e-bad-column.yaml").write_text(yaml.safe_dump({**BASE, "query": "DeviceFileEvents | project Nope"}))
    (rules / "f-tactics-number.yaml").write_text(yaml.safe_dump({**BASE, "tactics": 5}))
    code, _, err = run_cli(["rules", "validate", str(rules)])
    assert code == 2
    names = ("a-not-yaml", "b-good", "c-no-query", "d-bad-span", "e-bad-column", "f-tactics-number")
    heads = [line.split()[:2] for line in err.splitlines() if line.startswith(("ok ", "FAIL "))]
    assert heads == [["ok" if name == "b-good" else "FAIL", name] for name in names]
    text = _squeeze(err)
    assert all(_squeeze(f"{name} ({rules / name}.yaml)") in text for name in names)
    def line(name: str, key: str) -> int:
        """The line of `key:` in a rule file (what each finding must name)."""
        lines = (rules / f"{name}.yaml").read_text().splitlines()
        return next(i for i, text in enumerate(lines, 1) if text.startswith(f"{key}:"))

    for problem in ("error: line 2: not valid YAML: while parsing a flow sequence",
                    "error: not a rule (a YAML mapping with a `query` is expected)",
                    f"error: line {line('d-bad-span', 'queryFrequency')}: queryFrequency: not a time span: 'soon' "
                    f"(use e.g. 5m, 1h, 1d or PT1H)",
                    f"error: line {line('e-bad-column', 'query')}: column 'Nope' does not exist in DeviceFileEvents",
                    f"error: line {line('f-tactics-number', 'tactics')}: tactics must be a list, not int"):
        assert _squeeze(problem) in text, problem
    assert err.splitlines()[-1] == "6 rules, 1 ok, 5 with problems"
    code, _, err = run_cli(["rules", "validate", str(rules / "b-good.yaml")])
    assert code == 0 and err.splitlines()[-1] == "1 rule, 1 ok, 0 with problems"


HOSTILE = "x<y>&\"q\"]]>\x1b[2J\x1b]0;title\x07\x00end"


def _rule_with_cases(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    rule = {**BASE, "query": "DeviceFileEvents | where FileName endswith '.dll' "
                             "| project Timestamp, DeviceName, ReportId, FileName"}
    (rules / "dlls.yaml").write_text(yaml.safe_dump(rule))
    event = {"Timestamp": "2026-01-01T10:00:00Z", "DeviceName": "exch01", "ReportId": 1}
    cases = {"rule": "dlls", "cases": [
        {"name": "a DLL alerts", "kind": "true-positive", "now": "2026-01-01T10:30:00Z",
         "events": {"DeviceFileEvents": [{**event, "FileName": "a.dll"}]}, "expect": [{"FileName": "a.dll"}]},
        {"name": f"hostile {HOSTILE}", "kind": "true-positive", "now": "2026-01-01T10:30:00Z",
         "events": {"DeviceFileEvents": [{**event, "FileName": f"{HOSTILE}.dll"}]},
         "expect": [{"FileName": "other.dll"}]},
        {"name": "a text file does not", "kind": "true-negative", "now": "2026-01-01T10:30:00Z",
         "events": {"DeviceFileEvents": [{**event, "FileName": "a.txt"}]}, "expect": []},
    ]}
    (rules / "tests" / "dlls.yaml").write_text(yaml.safe_dump(cases, allow_unicode=False))
    return rules / "dlls.yaml"


def test_rules_test_writes_junit_with_every_value_escaped(tmp_path: Path) -> None:
    rule = _rule_with_cases(tmp_path)
    report = tmp_path / "junit.xml"
    code, _, err = run_cli(["rules", "test", str(rule), "--junit", str(report)])
    assert code == 1 and err.splitlines()[-1] == "2 passed, 1 failed"
    raw = report.read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and b"\x07" not in raw
    root = ET.fromstring(raw)  # well-formed whatever the data held
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "3", "1")
    (suite,) = root
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("dlls", "3", "1")
    assert suite.get("file") == str(rule.parent / "tests" / "dlls.yaml")
    shown = "x<y>&\"q\"]]>\\x1b[2J\\x1b]0;title\\x07\\x00end"  # as text: controls escaped, markup kept as data
    assert [(c.get("classname"), c.get("name")) for c in suite] == [
        ("exhunt.rules.dlls", "a DLL alerts (true-positive)"),
        ("exhunt.rules.dlls", f"hostile {shown} (true-positive)"),
        ("exhunt.rules.dlls", "a text file does not (true-negative)")]
    assert [len(c) for c in suite] == [0, 1, 0]
    failure = suite[1][0]
    assert failure.tag == "failure" and failure.get("message") == "no alert matches {'FileName': 'other.dll'}"
    assert failure.text is not None and failure.text.splitlines() == [
        "no alert matches {'FileName': 'other.dll'}",
        "unexpected alert {'Timestamp': '2026-01-01T10:00:00.000000Z', 'DeviceName': 'exch01', 'ReportId': 1, "
        f"'FileName': '{shown}.dll', 'source_file': 'dlls.yaml#hostile {shown}', "
        "'source_record': 'DeviceFileEvents[1]'}"]


@pytest.mark.parametrize("where", ["missing/junit.xml", "."])
def test_junit_path_is_checked_before_the_tests_run(tmp_path: Path, where: str) -> None:
    rule = _rule_with_cases(tmp_path)
    code, _, err = run_cli(["rules", "test", str(rule), "--junit", str(tmp_path / where)])
    assert code == 2 and "passed" not in err and _squeeze(err).startswith(_squeeze("error: --junit:"))
