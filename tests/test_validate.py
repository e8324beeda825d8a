"""`exhunt rules validate`: schema columns, engine support, Sentinel limits, Defender verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, run_cli
from exhunt.engine import Session
from exhunt.kqlcheck import check
from exhunt.rule import load_rule, load_rules
from exhunt.validate import Result, validate_rule, validate_rules

HOST = {"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": "DeviceName"}]}
ACCOUNT = {"entityType": "Account", "fieldMappings": [{"identifier": "Name", "columnName": "AccountName"}]}
BAD_HOST = {"entityType": "Host", "fieldMappings": [{"identifier": "Hostname", "columnName": "DeviceName"}]}
BASE: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000001",
    "name": "probe",
    "description": "probe rule",
    "severity": "High",
    "queryFrequency": "1h",
    "queryPeriod": "1h",
    "triggerOperator": "gt",
    "triggerThreshold": 0,
    "tactics": ["Persistence"],
    "relevantTechniques": ["T1505.002"],
    "query": "DeviceFileEvents | project Timestamp, DeviceName, ReportId, FileName",
    "entityMappings": [HOST],
    "version": "1.0.0",
    "kind": "Scheduled",
}


@pytest.fixture(scope="module")
def session() -> Any:
    with Session(in_memory=True) as s:
        yield s


def _validate(tmp_path: Path, session: Session, **changes: Any) -> Result:
    doc = {**BASE, **changes}
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return validate_rule(load_rule(path), session)


def _errors(res: Result) -> list[str]:
    return [msg for level, msg in res.findings if level == "error"]


def test_every_shipped_rule_validates_clean() -> None:
    for res in validate_rules(load_rules()):
        problems = [f for f in res.findings if f[0] != "info"]
        assert problems == [], (res.rule.slug, problems)
        assert res.sentinel_ok, res.rule.slug


def test_defender_verdict_is_reported_per_rule() -> None:
    verdicts = {r.rule.slug: r.defender_ok for r in validate_rules(load_rules())}
    assert verdicts["exchange-transport-agent-errors"] is False  # Application log only: no ReportId
    assert verdicts["exchange-transport-agent-seed"] is False  # the seed projects no ReportId
    for slug in ("exchange-transport-agent-cmdlet", "exchange-agent-dll-placement", "lightneuron-indicators",
                 "exchange-transport-agent-chain", "exchange-transport-foreign-module"):
        assert verdicts[slug] is True, slug


def test_seed_verbatim_is_rejected_naming_column_and_table(session: Session) -> None:
    res = validate_rule(load_rule(REPO / "tests" / "fixtures" / "seed-verbatim.yaml"), session)
    assert not res.ok
    errors = " ".join(_errors(res))
    assert "AccountName" in errors and "DeviceFileEvents" in errors
    assert not res.sentinel_ok and not res.defender_ok


def test_cli_validate_exit_codes() -> None:
    code, _, err = run_cli(["rules", "validate", str(REPO / "tests" / "fixtures" / "seed-verbatim.yaml")])
    assert code == 2 and "AccountName" in err
    code, _, _ = run_cli(["rules", "validate"])
    assert code == 0


def test_unsupported_construct_is_named(tmp_path: Path, session: Session) -> None:
    query = "DeviceFileEvents | summarize s = make_set_if(FileName, true) by DeviceName"
    res = _validate(tmp_path, session, query=query)
    assert any("make_set_if" in e for e in _errors(res))
    res = _validate(tmp_path, session, query="DeviceFileEvents | extend x = geo_point_to_s2cell(1.0, 2.0)")
    assert any("geo_point_to_s2cell" in e for e in _errors(res))
    # parse_xml runs locally (a DuckDB function exhunt adds): no error
    res = _validate(tmp_path, session, query="DeviceFileEvents | extend x = parse_xml(FileName)")
    assert not any("parse_xml" in e for e in _errors(res))


def test_column_named_after_union_and_extend_is_checked_statically() -> None:
    tables = {"A": ["Timestamp", "X"], "B": ["Timestamp", "Y"]}
    q = ("let L = A | extend Z = X; let M = B | project Timestamp, W = Y;\n"
         "union L, M | where Z == 1 or W == 2 | project Timestamp, Q = strcat(X, V)")
    problems = check(q, tables)
    assert [p.column for p in problems] == ["V"]
    # strings, comments, function names, dynamic properties and scalar lets are not columns
    q2 = ('let R = @"(?i)x"; let D = dynamic(["a"]); A // Nope\n'
          '| extend P = parse_json(X) | where tostring(P.Nope) matches regex R and X in (D) '
          '| where Timestamp > ago(1h) and Timestamp < datetime(2026-01-01T00:00:00Z) | summarize c = count() by X')
    assert check(q2, tables) == []


def test_summarize_and_join_limits_of_the_static_check() -> None:
    tables = {"A": ["Timestamp", "X", "K"]}
    # after summarize only the named aggregates and the by-columns remain
    assert [p.column for p in check("A | summarize n = count() by K | project X", tables)] == ["X"]
    assert check("A | summarize arg_max(Timestamp, *) by K | project X", tables) == []
    # after a join the columns are not modelled: nothing is guessed, the sub-query is still checked
    problems = check("A | join kind=inner (A | project K, Bad) on K | project Whatever", tables)
    assert [p.column for p in problems] == ["Bad"]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"queryFrequency": "2h", "queryPeriod": "1h"}, "shorter than queryFrequency"),
        ({"queryFrequency": "1m"}, "outside 5m..14d"),
        ({"queryPeriod": "15d"}, "outside 5m..14d"),
        ({"query": "DeviceFileEvents | where FileName == 'x'" + " " * 10_001}, "limit is 10000"),
        ({"tactics": ["Execution"]}, "T1505.002 (Transport Agent) belongs to Persistence"),
        ({"severity": "Critical"}, "must be Informational, Low, Medium or High"),
        ({"entityMappings": [BAD_HOST]}, "Host has no identifier 'Hostname'"),
        ({"entityMappings": [ACCOUNT]}, "maps column 'AccountName', which the query does not return"),
        ({"entityMappings": [{"entityType": "Device", "fieldMappings": []}]}, "unknown entityType"),
        ({"alertDetailsOverride": {"alertDescriptionFormat": "{{Nope}} on {{DeviceName}}"}}, "names {{Nope}}"),
        ({"entityMappings": [HOST] * 11}, "limit is 10"),
    ],
)
def test_sentinel_limits(tmp_path: Path, session: Session, changes: dict[str, Any], needle: str) -> None:
    res = _validate(tmp_path, session, **changes)
    assert any(needle in e for e in _errors(res)), res.findings
    assert not res.sentinel_ok


def test_defender_verdict_separate_from_sentinel(tmp_path: Path, session: Session) -> None:
    res = _validate(tmp_path, session, query="Event | project Timestamp = TimeGenerated, DeviceName = Computer")
    assert res.ok and res.sentinel_ok and not res.defender_ok
    assert any("not deployable" in m and "ReportId" in m for _, m in res.findings)
    res = _validate(tmp_path, session)
    assert res.defender_ok


def test_unknown_table_is_reported(tmp_path: Path, session: Session) -> None:
    res = _validate(tmp_path, session, query="DeviceFileEventz | project Timestamp")
    assert any("DeviceFileEventz" in e for e in _errors(res))
