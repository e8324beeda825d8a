"""exhunt.kql.compat: each workaround's rewrite, and a canary per workaround asserting duckdb-kql
still rejects the original construct. When a canary fails, the translator learned the
construct: remove that workaround from compat.py (and its canary), keep the corpus file."""

from __future__ import annotations

from pathlib import Path

import duckdb_kql
import pytest

from exhunt.errors import RuleError
from exhunt.kql import compat, tree

SCHEMA = {
    "DeviceProcessEvents": ["Timestamp", "DeviceName", "FileName", "ProcessCommandLine", "AccountName",
                            "InitiatingProcessFileName", "InitiatingProcessCommandLine", "AdditionalFields"],
    "DeviceFileEvents": ["Timestamp", "DeviceName", "FileName", "FolderPath"],
}
COLUMNS = ["Timestamp", "DeviceName", "FileName", "AccountName"]


def _rw(kql: str) -> str:
    return compat.rewrite(kql, SCHEMA, lambda prefix: [(c, "VARCHAR") for c in COLUMNS]).kql


# -- the rewrites ---------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [
    ("makeset", "make_set"), ("makelist", "make_list"), ("argmax", "arg_max"), ("argmin", "arg_min"),
])
def test_deprecated_aggregations_renamed(old: str, new: str) -> None:
    args = "Timestamp, FileName" if old.startswith("arg") else "FileName"
    assert _rw(f"DeviceProcessEvents | summarize {old}({args}) by DeviceName") == \
        f"DeviceProcessEvents | summarize {new}({args}) by DeviceName"


def test_deprecated_scalar_functions_renamed() -> None:
    assert _rw("DeviceProcessEvents | extend j = parsejson(AdditionalFields), n = arraylength(j.x), "
               "s = array_strcat(split(FileName, '.'), '-')") == (
        "DeviceProcessEvents | extend j = parse_json(AdditionalFields), n = array_length(j.x), "
        "s = strcat_array(split(FileName, '.'), '-')")


def test_names_in_strings_comments_and_columns_untouched() -> None:
    kql = ("DeviceProcessEvents // makeset(x) stays\n| extend makeset = 'makeset(FileName)', "
           "parsejson = @\"C:\\parsejson(\\\" | where makeset != '' | summarize makeset(makeset) by parsejson")
    assert _rw(kql) == kql.replace("summarize makeset(", "summarize make_set(")


def test_own_function_of_a_deprecated_name_is_left_alone() -> None:
    kql = "let makeset = (x: string) { strcat(x, '!') }; DeviceProcessEvents | extend y = makeset(FileName)"
    assert _rw(kql) == kql


def test_split_with_an_index() -> None:
    assert _rw("DeviceProcessEvents | extend p = split(ProcessCommandLine, ' ', 1)") == \
        "DeviceProcessEvents | extend p = array_slice(split(ProcessCommandLine, ' '), 1, 1)"


def test_nested_rewrites_are_all_applied() -> None:
    assert _rw("DeviceProcessEvents | summarize makeset(split(parsejson(AdditionalFields).a, ',', 0))") == \
        ("DeviceProcessEvents | summarize make_set(array_slice(split(parse_json(AdditionalFields).a, ','), 0, 0))")


def test_make_set_size_limit_kept() -> None:
    assert _rw("DeviceProcessEvents | summarize makeset(FileName, 5), L = make_list(AccountName, 2), "
               "n = array_length(make_set(DeviceName, 1)), make_set(tolower(FileName), 3)") == (
        "DeviceProcessEvents | summarize set_FileName = array_slice(make_set(FileName), 0, (5) - 1), "
        "L = array_slice(make_list(AccountName), 0, (2) - 1), "
        "n = array_length(array_slice(make_set(DeviceName), 0, (1) - 1)), make_set(tolower(FileName), 3)")


def test_between_with_a_computed_datetime_bound_and_a_span() -> None:
    asked: list[str] = []

    def typed(prefix: str) -> list[tuple[str, str]]:
        asked.append(prefix)
        kind = "TIMESTAMP" if "Timestamp" in prefix.split("project")[-1] else "INTERVAL"
        return [("_exhunt_lo", kind)]

    kql = "DeviceProcessEvents | where Timestamp between ((Timestamp - 5min) .. 10min)"
    assert compat.rewrite(kql, SCHEMA, typed).kql == \
        "DeviceProcessEvents | where Timestamp between ((Timestamp - 5min) .. (((Timestamp - 5min)) + 10min))"
    assert asked == ["DeviceProcessEvents | project _exhunt_lo = ((Timestamp - 5min)) | take 0"]
    # a timespan lower bound is a timespan range; a datetime literal the translator does itself
    for kept in ("DeviceProcessEvents | where Duration between ((Gap - 1min) .. 10min)",
                 "DeviceProcessEvents | where Timestamp between (datetime(2026-03-01) .. 1d)",
                 "DeviceProcessEvents | where Gap between (1min .. 10min)"):
        assert compat.rewrite(kept, SCHEMA, typed).kql == kept


def test_column_ifexists() -> None:
    assert _rw("DeviceProcessEvents | extend a = column_ifexists('AccountName', ''), "
               "b = column_ifexists('AccountUpn', strcat('x', FileName))") == (
        "DeviceProcessEvents | extend a = ['AccountName'], b = (strcat('x', FileName))")


def test_extract_json() -> None:
    assert _rw("DeviceProcessEvents | extend a = extractjson('$.Cmd.args[0]', AdditionalFields), "
               "b = extract_json(\"$['key name']\", AdditionalFields, typeof(long))") == (
        "DeviceProcessEvents | extend a = tostring(parse_json(AdditionalFields)['Cmd']['args'][0]), "
        "b = tolong(parse_json(AdditionalFields)['key name'])")


def test_extract_json_with_a_path_it_cannot_read_is_left_for_the_error() -> None:
    kql = "DeviceProcessEvents | extend a = extractjson('$..deep', AdditionalFields)"
    assert _rw(kql) == kql


def test_ingestion_time_is_null_with_a_note() -> None:
    out = compat.rewrite("DeviceProcessEvents | extend t = ingestion_time()", SCHEMA)
    assert out.kql == "DeviceProcessEvents | extend t = datetime(null)"
    assert out.notes == ["ingestion_time() is null here: exhunt's tables keep no ingestion time"]


def test_project_reorder_names_wildcards_then_the_rest() -> None:
    seen: list[str] = []

    def columns(prefix: str) -> list[tuple[str, str]]:
        seen.append(prefix)
        return [(c, "VARCHAR") for c in COLUMNS]

    out = compat.rewrite("let x = 1; DeviceProcessEvents | where FileName != '' | project-reorder AccountName, "
                         "Device* | take 5", SCHEMA, columns)
    assert out.kql == ("let x = 1; DeviceProcessEvents | where FileName != '' | project ['AccountName'], "
                       "['DeviceName'], ['Timestamp'], ['FileName'] | take 5")
    assert seen == ["let x = 1; DeviceProcessEvents | where FileName != '' "]


def test_project_reorder_by_name_order_is_refused_in_words() -> None:
    with pytest.raises(RuleError, match="project-reorder` with asc/desc"):
        _rw("DeviceProcessEvents | project-reorder * asc")


def test_project_away_repeated_and_wildcards() -> None:
    assert _rw("DeviceProcessEvents | project-away FileName, AccountName, FileName") == \
        "DeviceProcessEvents | project-away FileName, AccountName"
    assert _rw("DeviceProcessEvents | project-away Device*, *Name") == \
        "DeviceProcessEvents | project-away ['DeviceName'], ['FileName'], ['AccountName']"
    assert _rw("DeviceProcessEvents | project-away Nothing*") == "DeviceProcessEvents | where true"


def test_parenthesised_union_source() -> None:
    assert _rw("(union DeviceProcessEvents, DeviceFileEvents) | where FileName == 'a'") == \
        "union DeviceProcessEvents, DeviceFileEvents | where FileName == 'a'"
    # a parenthesised union elsewhere (a join's right side) is not a pipeline's source
    kql = "DeviceProcessEvents | join (union DeviceFileEvents, DeviceFileEvents) on DeviceName"
    assert _rw(kql) == kql


def test_queries_without_a_trigger_are_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "parse", lambda kql: pytest.fail("parsed"))
    kql = "DeviceProcessEvents | where ProcessCommandLine has 'makeset(' | project FileName"
    assert _rw(kql) == kql


@pytest.mark.parametrize(("message", "words"), [
    ("unsupported KQL construct 'TopNestedOperatorPart' at 1:4 (near 'top-nested2ofAbycount()')", "`top-nested`"),
    ("unsupported KQL construct 'PartitionOperator' at 1:4 (near 'partitionbyA(top1byT)')", "`partition`"),
    ("unsupported KQL construct 'EvaluateOperator' at 1:4 (not implemented; near 'evaluatebag_unpack(D)')",
     "`evaluate bag_unpack`"),
    ("unsupported KQL construct 'EvaluateOperator' at 1:4 (not implemented; near 'evaluatepivot(A)')",
     "`evaluate pivot`"),
    ("unsupported KQL construct 'function:parse_xml' (no DuckDB mapping in this wave; see translate/functions.py)",
     "the function `parse_xml()`"),
    ("unsupported KQL construct 'aggregate:make_bag' (no DuckDB mapping)", "the aggregation `make_bag()`"),
    ("unsupported KQL construct 'source:ExternalDataExpression' at 1:0 (near 'externaldata')",
     "`externaldata` as a pipeline source"),
])
def test_unsupported_in_plain_words(message: str, words: str) -> None:
    text = compat.explain(message)
    assert text.startswith(f"the query uses KQL the engine cannot run: {words} is not supported by the local "
                           f"engine; run the query on Azure Data Explorer")
    assert "translate/functions.py" not in text and "wave" not in text


def test_tree_counts_deprecated_aggregations_as_many_rows() -> None:
    assert not tree.rowwise("DeviceProcessEvents | extend s = makeset(FileName)", ["DeviceProcessEvents"])
    assert tree.rowwise("DeviceProcessEvents | project-reorder FileName", ["DeviceProcessEvents"])


# -- canaries: duckdb-kql still rejects each original construct --------------------------------


CANARIES = {
    "makeset": "DeviceProcessEvents | summarize makeset(FileName)",
    "makelist": "DeviceProcessEvents | summarize makelist(FileName)",
    "argmax": "DeviceProcessEvents | summarize argmax(Timestamp, FileName)",
    "argmin": "DeviceProcessEvents | summarize argmin(Timestamp, FileName)",
    "parsejson": "DeviceProcessEvents | extend j = parsejson(AdditionalFields)",
    "arraylength": "DeviceProcessEvents | extend n = arraylength(split(FileName, '.'))",
    "array_strcat": "DeviceProcessEvents | extend n = array_strcat(split(FileName, '.'), '-')",
    "columnifexists": "DeviceProcessEvents | extend a = columnifexists('FileName', '')",
    "column_ifexists": "DeviceProcessEvents | extend a = column_ifexists('FileName', '')",
    "extractjson": "DeviceProcessEvents | extend a = extractjson('$.a', AdditionalFields)",
    "extract_json": "DeviceProcessEvents | extend a = extract_json('$.a', AdditionalFields)",
    "split-index": "DeviceProcessEvents | extend a = split(FileName, '.', 0)",
    "ingestion_time": "DeviceProcessEvents | extend t = ingestion_time()",
    "project-reorder": "DeviceProcessEvents | project-reorder FileName",
    "project-away-wildcard": "DeviceProcessEvents | project-away Initiating*",
    "union-source": "(union DeviceProcessEvents, DeviceFileEvents) | where FileName == 'a'",
}


@pytest.mark.parametrize("name", sorted(CANARIES))
def test_canary_translator_still_rejects(name: str) -> None:
    with pytest.raises(duckdb_kql.KqlUnsupportedError):
        duckdb_kql.to_sql(CANARIES[name], schema=SCHEMA)
    # ... and the rewrite is one it accepts
    duckdb_kql.to_sql(_rw(CANARIES[name]), schema=SCHEMA)


def _run_translated(kql: str, rows: list[tuple[str, str]]) -> list[tuple[object, ...]]:
    import duckdb

    con = duckdb.connect()
    con.execute('CREATE TABLE "DeviceFileEvents" ("Timestamp" TIMESTAMP, "DeviceName" VARCHAR, '
                '"FileName" VARCHAR, "FolderPath" VARCHAR)')
    con.executemany('INSERT INTO "DeviceFileEvents" VALUES (TIMESTAMP \'2026-03-01 10:00\', ?, ?, \'\')', rows)
    return con.execute(str(duckdb_kql.to_sql(kql, schema=SCHEMA))).fetchall()


def test_canary_translator_still_drops_make_set_size() -> None:
    rows = _run_translated("DeviceFileEvents | summarize S = make_set(FileName, 1) | project n = array_length(S)",
                           [("ex01", "a.aspx"), ("ex01", "b.aspx")])
    assert rows == [(2,)]  # Kusto: 1


def test_canary_translator_still_compares_a_time_with_a_span() -> None:
    import duckdb

    with pytest.raises(duckdb.Error):
        _run_translated("DeviceFileEvents | where Timestamp between ((Timestamp - 5min) .. 10min)",
                        [("ex01", "a.aspx")])


def test_canary_duckdb_still_refuses_a_repeated_exclude() -> None:
    """project-away A, A translates, but DuckDB refuses `EXCLUDE ("A", "A")` when it runs."""
    import duckdb

    sql = str(duckdb_kql.to_sql("DeviceFileEvents | project-away FileName, FileName", schema=SCHEMA))
    con = duckdb.connect()
    con.execute('CREATE TABLE "DeviceFileEvents" ("Timestamp" TIMESTAMP, "DeviceName" VARCHAR, '
                '"FileName" VARCHAR, "FolderPath" VARCHAR)')
    with pytest.raises(duckdb.Error):
        con.execute(sql)


# -- in the backend -------------------------------------------------------------------------------


def test_backend_rewrites_before_translating_and_keys_the_cache_on_the_written_text(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from exhunt import kqlcache
    from exhunt.hunt import HuntOptions, open_local

    path = tmp_path / "p.jsonl"
    path.write_text('{"Type": "DeviceProcessEvents", "Timestamp": "2026-03-01T10:00:00Z", "DeviceName": "ex01", '
                    '"FileName": "cmd.exe"}\n', encoding="utf-8")
    asked: list[kqlcache.Input] = []
    monkeypatch.setattr(kqlcache, "get", lambda entry: asked.append(entry))
    kql = "DeviceProcessEvents | summarize makeset(FileName) by DeviceName | project-reorder set_FileName"
    backend, _ = open_local([path], [kql], HuntOptions(jobs=1))
    with backend:
        rows = backend.query(kql).to_pylist()
    assert [list(r) for r in rows] == [["set_FileName", "DeviceName"]]
    assert rows[0]["DeviceName"] == "ex01"
    mine = [e for e in asked if e.kql == kql]
    assert mine and mine[0].translator.endswith(f"+compat{compat.VERSION}")


# -- canaries for the added functions and the spliced operators -----------------------------------


@pytest.mark.parametrize("name", sorted({*compat.FUNCTIONS, *compat.AGGREGATES}))
def test_canary_translator_still_lacks_the_functions_exhunt_adds(name: str) -> None:
    """install() leaves a name the translator learned to it: then this row is not ours."""
    from duckdb_kql.translate import functions as registry

    compat.install()
    row = registry.SCALAR_FUNCTIONS.get(name) or registry.AGGREGATE_FUNCTIONS.get(name)
    assert row is not None and row.note == "exhunt"


@pytest.mark.parametrize("kql", [
    "DeviceProcessEvents | top-nested 2 of DeviceName by count()",
    "DeviceProcessEvents | partition by DeviceName (top 1 by Timestamp)",
    "DeviceProcessEvents | evaluate bag_unpack(AdditionalFields)",
    "DeviceProcessEvents | evaluate pivot(FileName)",
])
def test_canary_translator_still_rejects_the_spliced_operators(kql: str) -> None:
    with pytest.raises(duckdb_kql.KqlUnsupportedError):
        duckdb_kql.to_sql(kql, schema=SCHEMA)
