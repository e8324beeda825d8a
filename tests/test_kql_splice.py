"""KQL the translator lacks, run locally: the functions added to its registry (kql.udfs through
kql.compat) and the operators spliced around its translations (kql.splice).

The corpus (tests/kql_corpus/compat-*.yaml) runs each feature on hunting-style queries; here are
the edge cases: Windows' command-line quoting, XML that must never expand, hostile keys that
become column names, the caps, and where a cut is made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.errors import RuleError
from exhunt.kql import splice, udfs


@pytest.fixture(scope="module")
def backend() -> Iterator[DuckDBBackend]:
    b = DuckDBBackend(Session(in_memory=True), own=True)
    yield b
    b.close()


def _argv(text: str) -> list[str]:
    out = udfs.parse_command_line(text, "windows")
    assert out is not None
    return list(orjson.loads(out))


@pytest.mark.parametrize("text, args", [
    ("a b  c", ["a", "b", "c"]),
    ('"C:\\Program Files\\x.exe" -a', ["C:\\Program Files\\x.exe", "-a"]),
    # the program name: quotes toggle, a backslash is never an escape in it
    ('C:\\a\\"b c"\\d.exe x', ['C:\\a\\b c\\d.exe', "x"]),
    # 2n backslashes + quote: n backslashes, the quote toggles quoting
    ('p a\\\\"b c" d', ["p", "a\\b c", "d"]),
    # 2n+1 backslashes + quote: n backslashes and a literal quote
    ('p a\\\\\\"b c', ["p", 'a\\"b', "c"]),
    # backslashes not before a quote are literal
    ("p a\\\\b\\c", ["p", "a\\\\b\\c"]),
    # "" inside quotes is a literal quote
    ('p "a ""b"" c" d', ["p", 'a "b" c', "d"]),
    ('p "unterminated x', ["p", "unterminated x"]),
    ("p\t-x\t", ["p", "-x"]),
    ("", [""]),
])
def test_command_lines_split_as_windows_splits_them(text: str, args: list[str]) -> None:
    assert _argv(text) == args


def test_command_line_parser_other_than_windows_or_null_gives_null() -> None:
    assert udfs.parse_command_line("a b", "unix") is None
    assert udfs.parse_command_line(None, "windows") is None
    assert udfs.parse_command_line("a" * (udfs.MAX_TEXT + 1), "windows") is None


@pytest.mark.parametrize("xml, value", [
    ("<e/>", {"e": None}),
    ("<e>text</e>", {"e": "text"}),
    ('<e name="v"/>', {"e": {"@name": "v"}}),
    ('<e name="v">text</e>', {"e": {"@name": "v", "#text": "text"}}),
    ("<e><a>1</a><b>2</b></e>", {"e": {"a": "1", "b": "2"}}),
    ("<e><a>1</a><a>2</a><a>3</a></e>", {"e": {"a": ["1", "2", "3"]}}),
    ("<e>t<a>1</a></e>", {"e": {"#text": "t", "a": "1"}}),
    ('<e xmlns="urn:x"><a>1</a></e>', {"e": {"a": "1"}}),
])
def test_xml_becomes_the_bag_kusto_makes(xml: str, value: object) -> None:
    out = udfs.parse_xml(xml)
    assert out is not None and orjson.loads(out) == value


@pytest.mark.parametrize("xml", [
    "not xml <",
    '<!DOCTYPE r [<!ENTITY a "x"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>',  # entity expansion
    '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r>&e;</r>',  # external entity
    "",
])
def test_xml_that_is_not_plain_xml_gives_null(xml: str) -> None:
    assert udfs.parse_xml(xml) is None


def test_functions_reach_the_engine_and_null_stays_null(backend: DuckDBBackend) -> None:
    rows = backend.query(
        "datatable(c:string)['a \"b c\"', ''] | extend A = parse_command_line(c, 'windows') "
        "| project c, N = array_length(A), Second = tostring(A[1]), X = isnull(parse_xml(c))").to_pylist()
    assert rows == [{"c": 'a "b c"', "N": 2, "Second": "b c", "X": True},
                    {"c": "", "N": 1, "Second": "", "X": True}]


# -- where a query is cut -------------------------------------------------------------------------


def test_the_cut_keeps_lets_head_and_tail() -> None:
    kql = "let n = 2;\nT | where a > n | top-nested 2 of a by count() | where b > 1 | take 3"
    plan = splice.find(kql)
    assert plan is not None and plan.kind == "top-nested"
    assert plan.lets == "let n = 2;\n"
    assert plan.head == "T | where a > n"
    assert plan.tail == "| where b > 1 | take 3"


@pytest.mark.parametrize("kql", [
    "T | where a == 'top-nested'",  # the word in a string
    "T | evaluate autocluster()",  # a plugin that is not spliced
    "T | summarize count() by partition = a",  # a column named partition
])
def test_no_cut_where_there_is_nothing_to_splice(kql: str) -> None:
    assert splice.find(kql) is None


def test_an_operator_inside_a_let_is_not_cut_and_is_refused_in_words(backend: DuckDBBackend) -> None:
    with pytest.raises(RuleError, match="`top-nested` is not supported by the local engine"):
        backend.query("let t = datatable(a:string)['x'] | top-nested 1 of a by count(); t")


def test_two_spliced_operators_and_a_let_in_one_query(backend: DuckDBBackend) -> None:
    rows = backend.query(
        "let least = 2;\n"
        "datatable(h:string, u:string)['x','a','x','a','x','b','y','c','y','c','z','d']\n"
        "| top-nested of h by n = count(), top-nested 1 of u by m = count()\n"
        "| where n >= least\n"
        "| partition by h (top 1 by m)\n"
        "| project h, u, m").to_pylist()
    assert sorted(rows, key=lambda r: r["h"]) == [{"h": "x", "u": "a", "m": 2}, {"h": "y", "u": "c", "m": 2}]


# -- data that becomes column names -----------------------------------------------------------------


def test_hostile_bag_keys_are_column_names_only(backend: DuckDBBackend) -> None:
    keys = ['a"b', "x'); SELECT 1; --", "\x1b[31mred", "c\\d"]
    bag = orjson.dumps({k: i for i, k in enumerate(keys)}).decode().replace("\\", "\\\\").replace("'", "\\'")
    table = backend.query(f"print d = parse_json('{bag}') | evaluate bag_unpack(d)")
    assert sorted(table.column_names) == sorted(keys)
    assert table.to_pylist() == [{k: i for i, k in enumerate(keys)}]


def test_hostile_pivot_values_are_column_names_only(backend: DuckDBBackend) -> None:
    table = backend.query("""datatable(k:string, v:string)['h', 'x"; DROP TABLE t; --', 'h', "it's"]
                             | evaluate pivot(v, count(), k)""")
    assert table.column_names == ["k", "it's", 'x"; DROP TABLE t; --']
    assert table.to_pylist() == [{"k": "h", "it's": 1, 'x"; DROP TABLE t; --': 1}]


def test_too_many_columns_from_the_data_are_refused(backend: DuckDBBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splice, "MAX_COLUMNS", 2)
    with pytest.raises(RuleError, match=r"evaluate pivot would make 3 columns from the data's distinct values"):
        backend.query("datatable(v:string)['a','b','c'] | evaluate pivot(v)")
    with pytest.raises(RuleError, match=r"evaluate bag_unpack would make 3 columns"):
        backend.query("print d = dynamic({'a':1,'b':2,'c':3}) | evaluate bag_unpack(d)")


def test_an_empty_input_gives_the_columns_it_can(backend: DuckDBBackend) -> None:
    table = backend.query("datatable(k:string, d:dynamic)['x', dynamic(null)] | where k == 'none' "
                          "| evaluate bag_unpack(d)")
    assert table.column_names == ["k"] and table.num_rows == 0
    table = backend.query("datatable(k:string, v:string)['x', 'y'] | where k == 'none' | evaluate pivot(v, count(), k)")
    assert table.column_names == ["k"] and table.num_rows == 0


def test_a_bad_argument_is_named(backend: DuckDBBackend) -> None:
    with pytest.raises(RuleError, match="columnsConflict is error, replace_source or keep_source, not 'merge'"):
        backend.query("print d = dynamic({'a':1}) | evaluate bag_unpack(d, '', 'merge')")
    with pytest.raises(RuleError, match="top-nested takes a whole number before `of`"):
        backend.query("datatable(a:string)['x'] | top-nested 1+1 of a by count()")


def test_with_no_rows_the_rest_may_name_columns_only_data_would_bring(backend: DuckDBBackend) -> None:
    """`rules validate` runs rules on empty tables: a column a bag would bring is not unknown."""
    table = backend.query("datatable(d:dynamic)[dynamic({'a':1})] | where isnull(d) | evaluate bag_unpack(d) "
                          "| where Count > 1 | project Count")
    assert table.num_rows == 0
    # with rows, a column the data did not bring is unknown, as in Kusto
    with pytest.raises(RuleError, match="Count"):
        backend.query("datatable(d:dynamic)[dynamic({'a':1})] | evaluate bag_unpack(d) | where Count > 1")


def test_top_nested_with_others_per_parent_and_never_below_an_others_row(backend: DuckDBBackend) -> None:
    rows = backend.query(
        "datatable(S:string, E:string, n:long)['a','x',1,'a','y',2,'a','y',3,'b','x',5,'c','z',1]"
        "| top-nested 2 of S with others = 'rest' by T = sum(n), top-nested 1 of E with others = 'other' by C = count()"
        "| project S, T = tolong(T), E, C").to_pylist()
    assert sorted(rows, key=str) == sorted([
        {"S": "a", "T": 6, "E": "y", "C": 2}, {"S": "a", "T": 6, "E": "other", "C": 1},
        {"S": "b", "T": 5, "E": "x", "C": 1},  # b has no other value of E: no others row
        {"S": "rest", "T": 1, "E": None, "C": None},
    ], key=str)
    # every value kept: no others row at all
    assert backend.query("datatable(S:string)['a','b'] | top-nested 3 of S with others = 'rest' by count()"
                         ).num_rows == 2


@pytest.mark.parametrize("kql", [
    "datatable(a:string)['x'] | top-nested of by count()",
    "datatable(a:string)['x'] | top-nested 2 of a by",
    "datatable(a:string)['x'] | partition by (take 1)",
    "datatable(a:string)['x'] | partition by a ()",
    "datatable(a:string)['x'] | evaluate pivot()",
    "datatable(a:string)['x'] | evaluate bag_unpack(a, 3)",
    "datatable(a:string)['x'] | evaluate bag_unpack(a, '', 'error', 'notalist')",
    "datatable(a:string)['x'] | top-nested 1 of a with others = by count()",
])
def test_malformed_operators_are_refused_in_words(backend: DuckDBBackend, kql: str) -> None:
    from exhunt.errors import ExhuntError

    with pytest.raises(ExhuntError) as err:
        backend.query(kql)
    text = str(err.value)
    assert "Traceback" not in text and "duckdb" not in text.lower() and "Binder" not in text, text


def test_columns_come_from_every_row_and_the_window_stays_the_rule_s(tmp_path: Path) -> None:
    """A replay translates once under some window: a bag's columns are those of all the rows, and
    the rows the query returns are still only those of its window."""
    from datetime import datetime

    from exhunt import sources

    path = tmp_path / "DeviceEvents.csv"
    path.write_text('Timestamp,DeviceName,ActionType,AdditionalFields\n'
                    '2026-03-01T08:00:00Z,ex01,PowerShellCommand,"{""Command"":""Get-TransportAgent""}"\n'
                    '2026-03-01T09:00:00Z,ex01,PowerShellCommand,"{""Host"":""ConsoleHost""}"\n', encoding="utf-8")
    with Session(in_memory=True) as session:
        session.load_files([sources.disk_file(path)], jobs=1)
        b = DuckDBBackend(session)
        first_hour = (datetime(2026, 3, 1, 7, 30), datetime(2026, 3, 1, 8, 30))
        assert b.query("DeviceEvents | count", window=first_hour).to_pylist() == [{"Count": 1}]  # shown now
        table = b.query("DeviceEvents | project DeviceName, F = parse_json(AdditionalFields) | evaluate bag_unpack(F)",
                        window=first_hour)
        assert table.column_names == ["DeviceName", "Command", "Host"]
        assert table.to_pylist() == [{"DeviceName": "ex01", "Command": "Get-TransportAgent", "Host": None}]
        assert session.shown == first_hour
