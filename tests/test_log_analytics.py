"""The Log Analytics backend against a local fake of its query API (tests/la_fake.py), never the
network: rows, now() pinned in the query text, throttling, truncation and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_cli
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.backends.log_analytics import LogAnalyticsBackend
from exhunt.errors import RuleError, UsageError
from exhunt.replay import tables_of
from exhunt.rule import load_rules
from kusto_server import kusto_server, local_demo, remote_rows, sorted_rows
from la_fake import FakeWorkspace, Fault, error_body, fake_workspace

DEMO = REPO / "demo"
WORKSPACE = "00000000-0000-0000-0000-00000000beef"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file holding demo/ as `exhunt ingest --cluster` lays it out."""
    db = tmp_path_factory.mktemp("la") / "hunt.duckdb"
    with kusto_server(db) as url:
        code, _, err = run_cli(["ingest", str(DEMO), "--cluster", url, "--database", "hunt", "-q"])
        assert code == 0, err
    return db


@pytest.fixture(scope="module")
def workspace(demo_db: Path) -> Iterator[FakeWorkspace]:
    with fake_workspace(demo_db, WORKSPACE) as server:
        yield server


@pytest.fixture
def backend(workspace: FakeWorkspace) -> LogAnalyticsBackend:
    workspace.faults.clear()
    workspace.queries.clear()
    return LogAnalyticsBackend(WORKSPACE, endpoint=workspace.url)


def _rows(table: Any) -> list[dict[str, Any]]:
    return sorted_rows(remote_rows(table))


@pytest.fixture(scope="module")
def local() -> Iterator[DuckDBBackend]:
    with local_demo() as backend:
        yield backend


def test_the_workspace_tables_are_read_from_getschema(backend: LogAnalyticsBackend, local: DuckDBBackend) -> None:
    tables = backend.tables()
    assert set(tables) == set(local.session.tables)
    assert sorted(tables["DeviceProcessEvents"]) == sorted(local.tables()["DeviceProcessEvents"])


@pytest.mark.parametrize("rule", load_rules(None), ids=lambda r: r.slug)
def test_each_rule_gives_the_local_rows_with_now_pinned_in_the_text(
        backend: LogAnalyticsBackend, workspace: FakeWorkspace, local: DuckDBBackend, rule: Any) -> None:
    tables = tables_of(local, rule)
    ends = local.slice_ends(tables, rule.frequency)
    assert backend.slice_ends(tables, rule.frequency) == ends
    assert backend.time_span(tables) == local.time_span(tables)
    end = ends[len(ends) // 2]
    expected = _rows(local.query(rule.query, end, (end - rule.period, end)))
    assert _rows(backend.query(rule.query, end, (end - rule.period, end))) == expected
    sent = workspace.queries[-1]
    assert "now()" not in sent and "ago(" not in sent


def test_now_and_ago_read_the_pinned_time_and_strings_are_left_alone(
        backend: LogAnalyticsBackend, workspace: FakeWorkspace) -> None:
    kql = 'print n = now(), a = ago(1h), later = now(2d), s = "now() // ago(1h)" // now()'
    row = backend.query(kql, datetime(2026, 11, 20, 8, 30, 0, 5)).to_pylist()[0]
    assert row == {"n": datetime(2026, 11, 20, 8, 30, 0, 5), "a": datetime(2026, 11, 20, 7, 30, 0, 5),
                   "later": datetime(2026, 11, 22, 8, 30, 0, 5), "s": "now() // ago(1h)"}
    assert workspace.timespans[-1] is None  # the window is in the query, not the half-open timespan


def test_nested_clock_calls_are_refused_not_approximated(backend: LogAnalyticsBackend) -> None:
    with pytest.raises(RuleError, match="cannot be pinned"):
        backend.query("print x = ago(now() - ago(1h))", datetime(2026, 1, 1))


def test_throttled_queries_are_retried_after_the_service_says(
        backend: LogAnalyticsBackend, workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("exhunt.backends.parallel.time.sleep", waits.append)
    backend.tables()  # read once, before the service gets busy
    workspace.queries.clear()
    busy = Fault(429, error_body("ThrottledError", "Too many requests"), {"Retry-After": "7"})
    workspace.faults.extend([busy] * 5)
    assert backend.query("print x = 1").to_pylist() == [{"x": 1}]
    assert len(workspace.queries) == 6 and workspace.faults == []
    assert waits == [7.0] * 5
    workspace.faults.extend([busy] * 6)
    with pytest.raises(RuleError, match=r"throttling queries \(HTTP 429\); still refused after 6 attempts"):
        backend.query("print x = 1")


def test_a_truncated_result_fails_the_rule(backend: LogAnalyticsBackend, workspace: FakeWorkspace) -> None:
    partial = {"tables": [{"name": "PrimaryResult", "columns": [{"name": "x", "type": "long"}], "rows": [[1]]}],
               "error": {"code": "PartialError", "message": "Query result set has exceeded the internal limit"}}
    workspace.faults.append(Fault(200, partial))
    with pytest.raises(RuleError, match=r"only part of the result .*500,000 rows.*exceeded the internal limit"):
        backend.query("print x = 1")


def test_errors_name_the_permission_the_table_and_the_column(
        backend: LogAnalyticsBackend, workspace: FakeWorkspace) -> None:
    workspace.faults.append(Fault(403, error_body("InsufficientAccessError", "The provided credentials have "
                                                  "insufficient access to perform the requested operation")))
    with pytest.raises(RuleError, match=r"permission denied: .*Log Analytics Reader"):
        backend.query("DeviceProcessEvents | take 1")
    workspace.faults.append(Fault(400, error_body(
        "BadArgumentError", "The request had some invalid properties",
        "'where' operator: Failed to resolve scalar expression named 'NoSuchColumn'")))
    with pytest.raises(RuleError, match=r"column 'NoSuchColumn' does not exist in table DeviceProcessEvents"):
        backend.query("DeviceProcessEvents | where NoSuchColumn == 1")
    workspace.faults.append(Fault(400, error_body(
        "BadArgumentError", "The request had some invalid properties",
        "Failed to resolve table or column expression named 'NoSuchTable'")))
    with pytest.raises(RuleError, match=r"table 'NoSuchTable' does not exist in workspace"):
        backend.query("NoSuchTable | take 1")


def test_a_workspace_that_does_not_exist_is_named(workspace: FakeWorkspace) -> None:
    other = LogAnalyticsBackend("11111111-1111-1111-1111-111111111111", endpoint=workspace.url)
    with pytest.raises(RuleError, match="does not exist or is not visible"):
        other.query("print x = 1")


def test_plain_http_to_another_host_is_refused() -> None:
    with pytest.raises(UsageError, match="refusing plain http"):
        LogAnalyticsBackend(WORKSPACE, endpoint="http://logs.example.com")


def test_detect_on_a_workspace_gives_exactly_the_local_alerts(
        workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("EXHUNT_LOG_ANALYTICS_ENDPOINT", workspace.url)
    workspace.faults.clear()
    code, out, err = run_cli(["detect", str(DEMO), "-f", "json", "-q"])
    assert code == 0, err
    local = json.loads(out)
    code, out, err = run_cli(["detect", "--workspace", WORKSPACE, "-f", "json", "-q"])
    assert code == 0, err
    assert json.loads(out) == local
