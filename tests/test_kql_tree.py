"""KQL is read from duckdb-kql's parse tree: strings, verbatim strings, comments, `let`
names and sub-queries are what the grammar says they are, not what a regular expression
guessed. Each case here was misread by the regular expressions this replaced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb_kql
import pytest
import yaml

from conftest import REPO, run_cli
from exhunt import kqlcache, schema
from exhunt.engine import Session
from exhunt.export import defender_warnings
from exhunt.kql import tree
from exhunt.prune import keep_columns, unread_tables
from exhunt.replay import rowwise
from exhunt.rule import load_rule, tables_named_in
from exhunt.validate import _unsupported

SEED = REPO / "src" / "exhunt" / "rules" / "exchange-transport-agent-seed.yaml"
USUAL = '"\\\\Exchange Server\\\\"'  # "\\Exchange Server\\" as the rule file holds it
VERBATIM = '@"\\Exchange Server\\"'  # the same string, verbatim: @"\Exchange Server\"
#: A summary after the seed's union: one alert per device and replay run (not row by row).
SUMMARY = ('| where DetectionType != "none"\n'
           "| summarize Detections = count(), FirstSeen = min(Timestamp), LastSeen = max(Timestamp) by DeviceName\n"
           '| extend Summary = "transport agent activity"\n')
TABLES = list(schema.tables())


def _seed_variant(folder: Path, needle: str) -> Path:
    doc = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    assert USUAL in doc["query"]
    doc["query"] = doc["query"].replace(USUAL, needle).rstrip() + "\n" + SUMMARY
    path = folder / f"seed-{'verbatim' if needle == VERBATIM else 'usual'}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _detect(rule: Path) -> list[dict[str, Any]]:
    code, out, _ = run_cli(["detect", str(REPO / "demo"), "-r", str(rule), "-f", "json", "--flat", "-q", "-j", "1"])
    assert code == 0
    alerts: list[dict[str, Any]] = json.loads(out)
    return alerts


# -- the case -----------------------------------------------------------------------


def test_verbatim_string_before_a_summarize_gives_the_alerts_of_the_usual_spelling(tmp_path: Path) -> None:
    """`@"\\Exchange Server\\"` ends at its second quote. Read as an escaped string it swallowed
    the rest of the query, hid the summarize, and the rule was replayed row by row: one
    alert counting all five detections instead of one per run that saw them."""
    usual, verbatim = _seed_variant(tmp_path, USUAL), _seed_variant(tmp_path, VERBATIM)
    assert not rowwise(load_rule(verbatim)) and not rowwise(load_rule(usual))
    expected = _detect(usual)
    assert [(a["DeviceName"], a["Detections"], a["FirstSeen"], a["LastSeen"]) for a in expected] == [
        ("exch01.contoso.local", 4, "2026-11-21T02:05:10.100000Z", "2026-11-21T02:17:30.250000Z"),
        ("exch01.contoso.local", 1, "2026-11-23T14:05:11.000000Z", "2026-11-23T14:05:11.000000Z"),
    ]
    assert _detect(verbatim) == expected


# -- strings and comments -----------------------------------------------------------------


def test_double_slash_inside_a_string_is_not_a_comment() -> None:
    url = 'DeviceNetworkEvents | where RemoteUrl has "http://evil.example" | summarize count() by DeviceName'
    assert not tree.rowwise(url)
    with Session(in_memory=True) as s:
        both = 'DeviceFileEvents | where FolderPath != "//share" | union DeviceProcessEvents'
        assert tables_named_in(both, s.tables) == ["DeviceProcessEvents", "DeviceFileEvents"]
    # pack_all() after the string reads whole rows: the table must keep every column
    wide = 'DeviceFileEvents | where FolderPath != "//share" | project FileName, Row = pack_all()'
    assert "DeviceFileEvents" not in keep_columns([wide], TABLES)
    hint = 'DeviceNetworkEvents | where RemoteUrl has "http://x" | evaluate bag_unpack(AdditionalFields)'
    assert _unsupported(hint) == ["bag_unpack / evaluate"]


def test_strings_and_comments_are_where_the_lexer_puts_them() -> None:
    kql = 'T | where a == "http://x" // note "q\n| where b == @"C:\\dir\\" | take 1'
    spans = [kql[start:end] for start, end in tree.strings_and_comments(kql)]
    assert spans == ['"http://x"', '// note "q', '@"C:\\dir\\"']


def test_a_table_name_inside_a_string_or_comment_is_not_a_table() -> None:
    kql = ('DeviceProcessEvents // joined with DeviceImageLoadEvents elsewhere\n'
           '| where ProcessCommandLine has "DeviceFileEvents"')
    with Session(in_memory=True) as s:
        assert tables_named_in(kql, s.tables) == ["DeviceProcessEvents"]
    unread = unread_tables([kql], TABLES)
    assert "DeviceFileEvents" in unread and "DeviceImageLoadEvents" in unread
    assert "DeviceProcessEvents" not in unread


def test_a_column_named_in_a_string_is_not_a_report_id(tmp_path: Path) -> None:
    """Defender needs a ReportId in the result; the word in a string is not one."""
    doc = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    doc["query"] = 'DeviceFileEvents | project Timestamp, DeviceId, Note = "no ReportId here"'
    path = tmp_path / "note.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert any("no ReportId" in w for w in defender_warnings(load_rule(path)))


# -- names: let, union, join, materialize, view ---------------------------------------------


def test_let_shadows_a_table_after_its_own_value() -> None:
    kql = ('let DeviceFileEvents = DeviceProcessEvents | where FileName == "cmd.exe";\n'
           "DeviceFileEvents | project FileName")
    assert tree.tables(kql)[:1] == ["DeviceProcessEvents"] and "DeviceFileEvents" not in tree.tables(kql)
    with Session(in_memory=True) as s:
        assert tables_named_in(kql, s.tables) == ["DeviceProcessEvents"]
    # a function's parameter is a value, not the table of the same name
    param = "let f = (DeviceEvents:string) { DeviceFileEvents | where FileName == DeviceEvents }; f('x')"
    assert "DeviceEvents" not in tree.tables(param) and "DeviceFileEvents" in tree.tables(param)


def test_union_join_lookup_materialize_and_view_sources_are_named() -> None:
    kql = ("let M = materialize(DeviceEvents | take 5);\n"
           "let V = view () { DeviceNetworkEvents };\n"
           "union DeviceFileEvents, (DeviceProcessEvents | where ActionType == 'x'), M, V\n"
           "| join kind=inner (DeviceImageLoadEvents | project DeviceId) on DeviceId\n"
           "| lookup DeviceFileCertificateInfo on SHA1")
    with Session(in_memory=True) as s:
        assert tables_named_in(kql, s.tables) == ["DeviceProcessEvents", "DeviceFileEvents", "DeviceImageLoadEvents",
                                          "DeviceEvents", "DeviceNetworkEvents", "DeviceFileCertificateInfo"]
    assert {"materialize", "count"} & tree.functions(kql) == {"materialize"}
    assert {"union", "join", "lookup", "take"} <= tree.operators(kql)


# -- columns read -------------------------------------------------------------------------


def _kept(kql: str, table: str = "DeviceFileEvents") -> set[str] | None:
    """The table's own columns kept for this query (None: all of them)."""
    kept = keep_columns([kql], TABLES).get(table)
    return None if kept is None else kept & {c.lower() for c in schema.table(table).names}


def test_columns_read_through_project_extend_and_summarize_by() -> None:
    assert _kept("DeviceFileEvents | extend Dir = FolderPath | summarize n = count() by Dir, DeviceId "
                 "| project Dir, n") == {"folderpath", "deviceid", "timestamp", "devicename"}
    assert _kept("DeviceFileEvents | project FileName, SHA1 | extend x = strcat(FileName, SHA1)") == {
        "filename", "sha1", "timestamp", "devicename"}
    # column_ifexists names its column in a string
    assert "sha256" in (_kept('DeviceFileEvents | project x = column_ifexists("SHA256", "")') or set())


def test_star_before_the_columns_are_cut_reads_whole_rows() -> None:
    """arg_max(Timestamp, *) returns every column: pruning the table would make them empty."""
    assert _kept("DeviceFileEvents | summarize arg_max(Timestamp, *) by DeviceId") is None
    assert _kept("DeviceFileEvents | distinct *") is None
    assert _kept("DeviceFileEvents | where FileName has 'x'") is None  # the rows are the result
    # a `let` is followed to its uses: whole rows leave through one of them
    assert _kept("let A = DeviceFileEvents; union (A | project FileName), A") is None
    assert _kept("let A = DeviceFileEvents; A | project FileName") == {"filename", "timestamp", "devicename"}


def test_tables_reached_without_their_name_turn_pruning_off() -> None:
    for kql in ("union Device* | project FileName", "search 'evil.dll' | project FileName",
                "DeviceFileEvents | getschema", "DeviceFileEvents | where FileName has 'x' |",
                "database('other').DeviceFileEvents | project FileName"):
        assert keep_columns([kql], TABLES) == {}, kql
        assert unread_tables([kql], TABLES) == set(), kql


# -- row by row ---------------------------------------------------------------------------


@pytest.mark.parametrize("kql", [
    "T | summarize count() by A", "T | join (U) on A", "T | lookup U on A", "T | top 3 by A", "T | take 3",
    "T | limit 3", "T | distinct A", "T | count", "T | make-series n = count() on Timestamp step 1h",
    "T | extend x = toscalar(U | count)", "let M = materialize(T); M", "T | sample 3",
    "T | serialize n = row_number()", "T | extend p = prev(A)", "T | extend n = next(A)",
    "T | top-nested 3 of A by count()", "T | evaluate bag_unpack(A)",
    "T | where A in (U | project A)", "let S = U | where B == 1; T | where A in (S)",
    "let f = (n:long) { U | where B == n }; T | where A in (f(1))",
    "T | where A == 1 |",  # does not parse: no claim
])
def test_not_judged_row_by_row(kql: str) -> None:
    assert not tree.rowwise(kql, ["T", "U"])


@pytest.mark.parametrize("kql", [
    "T | where A == 'summarize' | extend B = strcat(A, 'take') | project A, B",
    "union T, (U | where A has 'join') | where A == 1 | sort by A",
    "T // summarize by A\n| where A == 'x'",
    "T | where A == @'C:\\count\\' | parse A with * 'x' B | mv-expand C | project-away D",
    "let X = 'distinct'; T | where A == X",
    "let f = (n:long) { T | where B == n }; f(1) | where A == 2",
    "let g = (s:string) { strcat(s, 'x') }; T | where A == g('y')",
])
def test_judged_row_by_row(kql: str) -> None:
    assert tree.rowwise(kql, ["T", "U"])


def test_a_between_bound_the_grammar_refuses_is_named_from_the_tokens() -> None:
    assert _unsupported("DeviceFileEvents | where Timestamp between (T .. T+1h)") == [
        "between with an unparenthesized column bound"]
    assert _unsupported("DeviceFileEvents | where Timestamp between (T .. (T+1h))") == []


def test_a_table_read_inside_an_expression_is_a_sub_query() -> None:
    assert tree.rowwise("T | where A in (Names)")  # Names may be a column list: not a known table
    assert not tree.rowwise("T | where A in (U)", ["T", "U"])


# -- facts are parsed once, then cached and signed ----------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXHUNT_CACHE_DIR", str(tmp_path))
    tree.facts.cache_clear()
    return tmp_path / "kql"


def test_facts_are_read_back_from_the_cache_without_parsing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kql = "DeviceFileEvents | where FileName == 'x.dll' | project FileName, Timestamp"
    first = tree.facts(kql)
    assert first.tables == ("DeviceFileEvents", "FileName", "Timestamp") and len(list(cache.glob("*.facts"))) == 1
    tree.facts.cache_clear()
    tree.parse.cache_clear()

    def refuse(*_: object) -> None:
        raise AssertionError("parsed again although the cache holds the facts")

    monkeypatch.setattr(duckdb_kql, "parse", refuse)
    assert tree.facts(kql) == first


def test_facts_entry_not_signed_by_this_user_is_ignored(cache: Path) -> None:
    kql = "DeviceFileEvents | project FileName"
    first = tree.facts(kql)
    (entry,) = cache.glob("*.facts")
    mac, body = entry.read_bytes().split(b"\n", 1)
    doc = json.loads(body)
    doc["facts"]["names"] = []  # would leave every column of the table empty
    entry.write_bytes(mac + b"\n" + json.dumps(doc).encode())
    tree.facts.cache_clear()
    assert kqlcache.get_facts(kqlcache.fact_inputs(kql, tree._reader_version())) is None
    assert tree.facts(kql) == first
