"""KQL written for remote engines (exhunt.backends.kqltext), cluster ingest with hostile values,
and the parallel runner; against duckdb-kql (in process, or its local Kusto endpoint)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb_kql
import pyarrow as pa
import pytest

from conftest import run_cli
from exhunt.backends import kqltext, kusto_ingest
from exhunt.backends.kusto import KustoBackend, check_url, credential
from exhunt.backends.parallel import bounded_map
from exhunt.errors import RuleError, UsageError
from kusto_server import kusto_server

HOSTILE = [
    'quote " inside', "single ' quote", "back\\slash\\", "ends with backslash \\", 'escaped \\" quote',
    "new\nline", "carriage\rreturn", "tab\there", "pipe | where 1 == 1", '"]; .drop table DeviceEvents //',
    "nul\x00byte", "escape \x1b[31mred\x1b[0m", "bell\x07 vt\x0b ff\x0c del\x7f c1\x85", "line\u2028separator",
    "para\u2029graph", "emoji \U0001F600 and é", "// not a comment", '@"verbatim"', "``` fence", "",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_string_literal_holds_exactly_its_value(value: str) -> None:
    if any(ch in value for ch in kqltext.LINE_SEPARATORS):
        with pytest.raises(kqltext.Unquotable):
            kqltext.string(value)
        return
    literal = kqltext.string(value)
    assert "\n" not in literal and "\r" not in literal
    con = duckdb_kql.connect()
    assert duckdb_kql.kql(con, f"print x = {literal}, y = 1").fetchall() == [(value, 1)]


def test_names_are_bracket_quoted_when_they_are_not_plain() -> None:
    assert kqltext.ident("DeviceEvents") == "DeviceEvents"
    assert kqltext.ident("_source_file") == "_source_file"
    assert kqltext.ident("where") == '["where"]'
    assert kqltext.ident('a"b c') == '["a\\"b c"]'
    with pytest.raises(RuleError):
        kqltext.ident("a\nb")


def test_the_clock_is_pinned_only_where_the_parse_tree_has_a_call() -> None:
    kql = ('T // now() in a comment\n| where a == @"\\now()\\" and b == "ago(1h)"\n'
           '| where Timestamp > ago(2h) and Timestamp <= now() | extend later = now(-1d)')
    out = kqltext.pin_clock(kql, datetime(2026, 11, 20, 8, 0))
    at = "datetime(2026-11-20T08:00:00.000000Z)"
    assert out == ('T // now() in a comment\n| where a == @"\\now()\\" and b == "ago(1h)"\n'
                   f"| where Timestamp > ({at} - (2h)) and Timestamp <= {at} | extend later = ({at} + (-1d))")
    assert not kqltext.uses_clock('T | where a == "now()" // ago(1h)')


def test_tables_are_read_from_the_parse_tree() -> None:
    kql = 'let X = DeviceEvents | where a == "SecurityEvent" // Event\n; X | join (DeviceFileEvents) on b'
    assert kqltext.tables_named(kql, ["DeviceEvents", "SecurityEvent", "Event", "DeviceFileEvents"]) == \
        ["DeviceEvents", "DeviceFileEvents"]


@pytest.mark.parametrize(("kind", "value"), [
    ("long", -9_000_000_000), ("int", 7), ("bool", False), ("real", 2.5), ("real", float("nan")),
    ("datetime", datetime(1999, 12, 31, 23, 59, 59, 999_999)), ("timespan", timedelta(days=-2, microseconds=3)),
    ("long", None), ("datetime", None), ("bool", None)])
def test_typed_literals_read_back_as_their_value(kind: str, value: object) -> None:
    con = duckdb_kql.connect()
    got = duckdb_kql.kql(con, f"datatable(v:{kind})[{kqltext.value_literal(value, kind)}]").fetchall()[0][0]
    if isinstance(value, float) and value != value:
        assert got != got
    else:
        assert got == value


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    with kusto_server(tmp_path / "cases.duckdb") as url:
        yield url


def test_hostile_values_are_stored_exactly_in_bounded_batches(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kusto_ingest, "BATCH_ROWS", 3)
    backend = KustoBackend(endpoint, "cases")
    columns = [("Timestamp", "datetime"), ("Text", "string"), ("Bag", "dynamic"), ("N", "long"),
               ("_source_file", "string"), ("_record", "string")]
    values = HOSTILE + [f"row {i}" for i in range(5)]
    times = [datetime(2026, 1, 1) + timedelta(seconds=i) for i in range(len(values))]
    batch = pa.RecordBatch.from_pydict({
        "Timestamp": times, "Text": values, "Bag": ['{"k": "v\\"|"}'] * len(values), "N": list(range(len(values))),
        "_source_file": ["evil\n.csv"] * len(values), "_record": [f"line {i}" for i in range(len(values))]})
    report = kusto_ingest.upload(backend, [kusto_ingest.Upload("Cases", columns, [batch])])
    assert report.sent == report.stored == {"Cases": len(values)}
    rows = backend.query("Cases | sort by N asc | project Text, Bag = tostring(Bag.k), N, _source_file").to_pylist()
    assert [r["Text"] for r in rows] == values
    assert {r["Bag"] for r in rows} == {'v"|'}
    assert {r["_source_file"] for r in rows} == {"evil\n.csv"}
    assert backend.tables()["Cases"] == [name for name, _ in columns] + ["TimeGenerated"]


def test_a_refused_batch_names_the_table_and_the_rows_stored_before_it(endpoint: str) -> None:
    backend = KustoBackend(endpoint, "cases")
    first = pa.RecordBatch.from_pydict({"A": [1, 2]})
    kusto_ingest.upload(backend, [kusto_ingest.Upload("Mixed", [("A", "long")], [first])])
    other = pa.RecordBatch.from_pydict({"A": ["x"]})
    with pytest.raises(RuleError, match=r"ingest into Mixed on kusto .* stopped after 0 row\(s\)"):
        kusto_ingest.upload(backend, [kusto_ingest.Upload("Mixed", [("A", "string")], [other])])


@pytest.mark.parametrize(("url", "message"), [
    ("http://10.0.0.5:8080", "refusing plain http to 10.0.0.5"),
    ("http://cluster.example.com", "refusing plain http to cluster.example.com"),
    ("ftp://127.0.0.1", "not an http"),
    ("https://c.kusto.windows.net/db", "give the cluster's address only"),
])
def test_cluster_urls_that_would_leak_or_mislead_are_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_url(url)


def test_loopback_http_and_https_are_accepted() -> None:
    assert check_url("http://127.0.0.1:31415/") == "http://127.0.0.1:31415"
    assert check_url("http://[::1]:8080") == "http://[::1]:8080"
    assert check_url("https://c.westeurope.kusto.windows.net") == "https://c.westeurope.kusto.windows.net"


def test_an_app_registration_needs_its_three_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CLIENT_ID", "id")
    with pytest.raises(UsageError, match="set AZURE_TENANT_ID, AZURE_CLIENT_SECRET"):
        credential("app")
    with pytest.raises(UsageError, match="--auth must be one of default, device, app"):
        credential("password")


def test_ingest_refuses_plain_http_to_another_host_before_reading(tmp_path: Path) -> None:
    code, _, err = run_cli(["ingest", str(tmp_path / "missing"), "--cluster", "http://192.0.2.1",
                            "--database", "d"])
    assert code == 2
    assert "refusing plain http to 192.0.2.1" in err


def test_bounded_map_keeps_order_and_never_exceeds_its_concurrency() -> None:
    lock = threading.Lock()
    running = peak = 0
    gate = threading.Barrier(3)

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if i < 3:
            gate.wait()  # the first three overlap for sure
        with lock:
            running -= 1
        return i * i

    assert bounded_map(work, list(range(20)), max_concurrency=3) == [i * i for i in range(20)]
    assert peak == 3


def test_bounded_map_raises_the_first_failure() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise RuleError("window 5 failed")
        return i

    with pytest.raises(RuleError, match="window 5 failed"):
        bounded_map(work, list(range(10)), max_concurrency=2)


def test_line_separators_travel_as_base64_to_a_real_cluster() -> None:
    batch = pa.RecordBatch.from_pydict({"Text": ["plain", "a\u2028b"], "N": [1, 2]})
    upload = kusto_ingest.Upload("T", [("Text", "string"), ("N", "long")], [batch])
    ((command, n),) = list(kusto_ingest.commands(upload))
    assert n == 2 and "\u2028" not in command
    assert command == ('.set-or-append T <| datatable(Text:string, N:long)["cGxhaW4=", long(1), "YeKAqGI=", long(2)]'
                       " | extend Text = base64_decode_tostring(Text)")
    con = duckdb_kql.connect()  # the decoding is Kusto's; here only the command's shape is checked
    assert duckdb_kql.kql(con, command.split("<|", 1)[1].split(" | extend")[0]).fetchall() == \
        [("cGxhaW4=", 1), ("YeKAqGI=", 2)]


def test_tables_named_only_in_a_union_are_found() -> None:
    assert kqltext.tables_named("union DeviceEvents, Event | take 1", ["DeviceEvents", "Event", "SecurityEvent"]) == \
        ["DeviceEvents", "Event"]


def test_a_rule_becomes_a_template_renaming_its_lets_and_tables_per_run() -> None:
    kql = ('let Span = 1h; let F = (a:string) { T | where b == a };\n'
           'let Y = T | where c > ago(Span) and s == "T Span Y";\nunion Y, F("q") | extend n = now()')
    shape = kqltext.template(kql, ["T"], {"b", "c", "s"})
    assert shape is not None
    lets, body = shape.render("__w3", datetime(2026, 1, 2))
    at = "datetime(2026-01-02T00:00:00.000000Z)"
    assert lets == ["let Span__w3 = 1h", "let F__w3 = (a:string) { T__w3 | where b == a }",
                    f'let Y__w3 = T__w3 | where c > ({at} - (Span__w3)) and s == "T Span Y"']
    assert body == f'union Y__w3, F__w3("q") | extend n = {at}'
    assert kqltext.template("let c = 1; T | where c > 0", ["T"], {"c"}) is None  # a let that is a column
