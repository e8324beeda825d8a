"""The Kusto backend over the real protocol: `demo/` ingested through exhunt into a local
`duckdb-kql serve` endpoint gives the same tables, time spans, slices and query results as the
local DuckDB engine over the same files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from conftest import REPO, run_cli
from exhunt import alerts as alerting
from exhunt.backends.base import SLICE_END
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.backends.kusto import KustoBackend
from exhunt.backends.parallel import run_windows
from exhunt.errors import RuleError
from exhunt.replay import rowwise, run_rule, schedule, tables_of
from exhunt.rule import load_rules
from kusto_server import kusto_server, local_demo, remote_rows, sorted_rows

DEMO = REPO / "demo"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KustoBackend]:
    """demo/ on a local Kusto endpoint, put there by `exhunt ingest --cluster`."""
    db = tmp_path_factory.mktemp("kusto") / "hunt.duckdb"
    with kusto_server(db) as url:
        code, _, err = run_cli(["ingest", str(DEMO), "--cluster", url, "--database", "hunt", "-q"])
        assert code == 0, err
        backend = KustoBackend(url, "hunt")
        yield backend
        backend.close()


@pytest.fixture(scope="module")
def local() -> Iterator[DuckDBBackend]:
    with local_demo() as backend:
        yield backend


def test_the_cluster_has_the_tables_the_local_run_has(cluster: KustoBackend, local: DuckDBBackend) -> None:
    remote = cluster.tables()
    assert set(remote) == set(local.session.tables)  # empty ones too: a rule naming one finds it empty
    schema = local.tables()
    for name in local.session.tables:
        # The same columns; in the order a query returns them (provenance before the input's
        # extra columns), which test_whole_rows_come_back_as_the_local_engine_gives_them checks.
        assert sorted(remote[name]) == sorted(schema[name]), name


def test_whole_rows_come_back_as_the_local_engine_gives_them(cluster: KustoBackend, local: DuckDBBackend) -> None:
    for name in cluster.tables():
        kql = f"{name} | sort by Timestamp asc, _record asc | take 1000"
        if "Timestamp" not in cluster.tables()[name]:
            kql = kql.replace("Timestamp", "TimeGenerated")
        got, expected = cluster.query(kql), local.query(kql)
        assert got.column_names == expected.column_names, name
        assert remote_rows(got) == remote_rows(expected), name


@pytest.mark.parametrize("rule", load_rules(None), ids=lambda r: r.slug)
def test_time_span_and_slices_are_the_local_ones(cluster: KustoBackend, local: DuckDBBackend, rule: Any) -> None:
    tables = tables_of(local, rule)
    assert cluster.time_span(tables) == local.time_span(tables)
    assert cluster.slice_ends(tables, rule.frequency) == local.slice_ends(tables, rule.frequency)
    assert cluster.slice_ends(tables, timedelta(minutes=7)) == local.slice_ends(tables, timedelta(minutes=7))


@pytest.mark.parametrize("rule", load_rules(None), ids=lambda r: r.slug)
def test_each_rule_gives_the_local_rows_in_every_window(cluster: KustoBackend, local: DuckDBBackend, rule: Any) -> None:
    tables = tables_of(local, rule)
    ends = local.slice_ends(tables, rule.frequency)
    assert ends, "demo/ holds rows for every shipped rule"
    for end in ends[:: max(1, len(ends) // 4)]:
        expected = remote_rows(local.query(rule.query, end, (end - rule.period, end)))
        got = remote_rows(cluster.query(rule.query, end, (end - rule.period, end)))
        assert sorted_rows(got) == sorted_rows(expected), (rule.slug, end)



@pytest.mark.parametrize("rule", [r for r in load_rules(None) if rowwise(r)], ids=lambda r: r.slug)
def test_a_row_by_row_replay_is_one_query_giving_the_local_rows(cluster: KustoBackend, local: DuckDBBackend,
                                                                rule: Any) -> None:
    expected = local.query_sliced(rule.query, rule.frequency)
    got = cluster.query_sliced(rule.query, rule.frequency)
    assert expected is not None and got is not None
    assert sorted_rows(remote_rows(got)) == sorted_rows(remote_rows(expected))


def test_a_clock_the_rows_cannot_carry_falls_back_to_windows(cluster: KustoBackend) -> None:
    kql = "DeviceProcessEvents | project Timestamp | where Timestamp > ago(1h)"
    assert cluster.query_sliced(kql, timedelta(hours=1)) is None
    window = (datetime(2026, 11, 21, 1), datetime(2026, 11, 21, 3))
    together = cluster.query_windows(kql, [window])
    assert together is not None and together.num_rows > 0
    assert together.drop_columns([SLICE_END]).to_pylist() == cluster.query(kql, window[1], window).to_pylist()


@pytest.mark.parametrize("rule", load_rules(None), ids=lambda r: r.slug)
def test_alerts_name_the_same_file_and_record_as_locally(cluster: KustoBackend, local: DuckDBBackend,
                                                        rule: Any) -> None:
    run = run_rule(local, rule)
    tables = tables_of(local, rule)
    expected = [(a["source_file"], a["source_record"]) for a in alerting.build(local, rule, run.rows)]
    found = cluster.sources(run.rows, tables)
    got = sorted((s or ("", "")) for s in found)
    assert got == sorted(expected)


def test_errors_name_the_table_and_the_column(cluster: KustoBackend) -> None:
    with pytest.raises(RuleError, match=r"table 'NoSuchTable' does not exist in database 'hunt'"):
        cluster.query("NoSuchTable | take 1")
    with pytest.raises(RuleError, match=r"column 'NoSuchColumn' does not exist in table DeviceProcessEvents"):
        cluster.query("DeviceProcessEvents | where NoSuchColumn == 1")


def test_an_unknown_database_is_named(cluster: KustoBackend) -> None:
    other = KustoBackend(cluster.url, "nosuchdb")
    with pytest.raises(RuleError, match=r"database 'nosuchdb' does not exist"):
        other.query("print x = 1")


@pytest.mark.parametrize("rule", [r for r in load_rules(None) if not rowwise(r)], ids=lambda r: r.slug)
def test_every_window_of_a_replay_in_few_queries_gives_the_local_runs(cluster: KustoBackend, local: DuckDBBackend,
                                                                      rule: Any) -> None:
    tables = tables_of(local, rule)
    plan = schedule(rule, local.slice_ends(tables, rule.frequency))
    expected = local.query_windows(rule.query, plan, rule.frequency)
    got = cluster.query_windows(rule.query, plan, rule.frequency)
    assert expected is not None
    if rule.slug == "exchange-transport-agent-chain":
        # `Steps` is both a `let` and a column it makes: renaming it per run could not be exact,
        # so the runs go one query each, a few at a time.
        assert got is None
        runs = run_windows(cluster, rule.query, plan, max_concurrency=3)
        got = pa.concat_tables([t.append_column(SLICE_END, pa.array([end] * t.num_rows, pa.timestamp("us")))
                                for t, (_, end) in zip(runs, plan, strict=True)])
    assert got is not None
    assert got.column_names[-1] == SLICE_END
    key = [c for c in got.column_names if c != SLICE_END]
    columns = [SLICE_END, *key]
    assert sorted_rows(remote_rows(got.select(columns))) == sorted_rows(remote_rows(expected.select(columns)))


def _json(args: list[str]) -> list[dict[str, Any]]:
    code, out, err = run_cli(args)
    assert code in (0, 1), err
    return json.loads(out)


def test_detect_on_the_cluster_gives_exactly_the_local_alerts(cluster: KustoBackend) -> None:
    local = _json(["detect", str(DEMO), "-f", "json", "-q"])
    remote = _json(["detect", "--cluster", cluster.url, "--database", "hunt", "-f", "json", "-q"])
    assert local  # demo/ raises alerts
    assert remote == local  # provenance included: the cluster holds _source_file and _record


def test_detect_with_now_and_a_time_range_on_the_cluster(cluster: KustoBackend) -> None:
    args = ["--now", "2026-11-21T03:00:00Z", "--from", "2026-11-21", "-f", "json", "-q"]
    assert _json(["detect", "--cluster", cluster.url, "--database", "hunt", *args]) == \
        _json(["detect", str(DEMO), *args])


def test_query_on_the_cluster_gives_the_local_rows(cluster: KustoBackend) -> None:
    kql = ('DeviceFileEvents | where FolderPath has @"\\TransportRoles\\agents\\" '
           "| project Timestamp, DeviceName, FolderPath, _source_file | sort by Timestamp asc")
    local = _json(["query", kql, str(DEMO), "-f", "json", "-q"])
    assert local
    assert _json(["query", kql, "--cluster", cluster.url, "--database", "hunt", "-f", "json", "-q"]) == local


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "http://127.0.0.1:9"], "--cluster and --database go together"),
    (["--cluster", "http://127.0.0.1:9", "--database", "d", str(DEMO)], "give no input paths"),
    (["--cluster", "http://127.0.0.1:9", "--database", "d", "--workspace", "w"], "choose one"),
    ([], "give the files or folders to hunt"),
])
def test_engine_options_that_make_no_sense_are_refused(args: list[str], message: str) -> None:
    code, _, err = run_cli(["detect", *args])
    assert code == 2 and message in err
