"""The SQL rewrites keep every answer: merged `has_any` regexes match exactly the rows the
translator's one-regex-per-needle SQL matches."""

from __future__ import annotations

import duckdb
import duckdb_kql
import pytest

from exhunt.sqlopt import MACROS, TOSTRING, merge_regex_runs, use_tostring_macro

TEXTS = [
    r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents\x.dll",
    r"c:\program files\microsoft\exchange server\v15\bin\y.dll",
    r"D:\Backup\v15\Binaries\tool.dll",  # `has` term boundary: \v15\Bin\ must not match \v15\Binaries\
    "powershell -c Install-TransportAgent -Name x",
    "powershell -c Install-TransportAgentX -Name x",
    "pwsh -c enable-transportagent",
    "new-transportagentconnector;",
    "Set-TransportAgentX",
    "x\u212ansportagent",  # Kelvin sign: RE2 folds it to k
    "",
    None,
]
QUERIES = [
    r"T | where C has_any (@'\Microsoft\Exchange Server\', @'\v15\Bin\', @'\TransportRoles\')",
    "T | where C has_any ('Install-TransportAgent', 'Enable-TransportAgent', 'New-TransportAgentConnector')",
    "T | where C has_any ('Set-TransportAgent', 'transportagent', 'x', '') and i >= 0",
    "T | where not(C has_any ('bin', 'agents'))",
]


@pytest.mark.parametrize("kql", QUERIES)
def test_merged_regexes_match_the_same_rows(kql: str) -> None:
    sql = str(duckdb_kql.to_sql(kql, schema={"T": ["C", "i"]}))
    merged = merge_regex_runs(sql)
    assert merged.count("regexp_matches") < sql.count("regexp_matches")
    con = duckdb.connect()
    con.execute("CREATE TABLE T (C VARCHAR, i INTEGER)")
    con.executemany("INSERT INTO T VALUES (?, ?)", [(t, i) for i, t in enumerate(TEXTS)])
    before = sorted(r[1] for r in con.execute(sql).fetchall())
    after = sorted(r[1] for r in con.execute(merged).fetchall())
    assert after == before
    assert before, "the query selects something, so the comparison means something"


def test_only_whole_parenthesized_runs_on_one_column_are_merged() -> None:
    call = "regexp_matches(\"{}\", '(?i)' || regexp_escape('{}'))"
    two_columns = f"({call.format('A', 'x')} OR {call.format('B', 'y')})"
    assert merge_regex_runs(two_columns) == two_columns
    mixed = f"({call.format('A', 'x')} OR {call.format('A', 'y')} AND flag)"
    assert merge_regex_runs(mixed) == mixed
    same = f"({call.format('A', 'x')} OR {call.format('A', 'y')})"
    assert merge_regex_runs(same) == (
        "(regexp_matches(\"A\", '(?:' || '(?i)' || regexp_escape('x') || ')|(?:' || "
        "'(?i)' || regexp_escape('y') || ')'))")


TYPED = {"T": ["s", "i", "b", "t", "d", "f", "j"]}
TOSTRING_QUERIES = [
    "T | extend x = strcat(s, i, b, t, d, f, j) | project x",
    "T | extend x = tostring(tostring(s)), y = tolower(tostring(j.k)), z = tostring(d) | project x, y, z",
    "T | where tostring(b) =~ 'true' or s has 'a' or tostring(f) == 'NaN' | project s",
    "T | extend x = strcat(tostring(i), '-', tostring(t)), y = toupper(s) | project x, y",
    "T | extend n = tostring(int(null)), e = tostring('') | project n, e",
    "T | extend x = strcat(iff(b, s, 'END'), case(i > 0, 'case', f > 1, tostring(j), 'x')) | project x",
]


def _typed_table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("CREATE TABLE T (s VARCHAR, i BIGINT, b BOOLEAN, t TIMESTAMP, d INTERVAL, f DOUBLE, j JSON)")
    con.execute("""INSERT INTO T VALUES
        ('Ab c', 1, true, TIMESTAMP '2026-03-01 10:00:00.123456', INTERVAL '1 day 02:03:04.5', 1.5, '{"k": "v"}'),
        ('', -7, false, TIMESTAMP '1970-01-01', INTERVAL '-00:00:01', 'NaN'::DOUBLE, '[1, 2]'),
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL)""")
    return con


@pytest.mark.parametrize("kql", TOSTRING_QUERIES)
def test_tostring_macro_gives_the_same_values(kql: str) -> None:
    sql = str(duckdb_kql.to_sql(kql, schema=TYPED))
    short = use_tostring_macro(sql)
    assert TOSTRING in short and len(short) < len(sql)
    con = _typed_table()
    for macro in MACROS:
        con.execute(macro)
    before = con.execute(sql).fetchall()
    after = con.execute(short).fetchall()
    assert after == before
    assert before


def test_tostring_macro_only_replaces_the_translators_text_over_an_atom() -> None:
    whole = str(duckdb_kql.to_sql("T | project x = tostring(s)", schema=TYPED))
    assert f'{TOSTRING}("s")' in use_tostring_macro(whole)
    # The same CASE over `a || b`: `a || b ->> '$'` does not mean `(a || b) ->> '$'`; left alone.
    case = whole[whole.index("CASE typeof("):whole.rindex("END") + 3]
    assert use_tostring_macro(case) == f'{TOSTRING}("s")'
    compound = case.replace('"s"', '"s" || "s"')
    assert use_tostring_macro(compound) == compound
    two_cases = case.replace('"s"', "CASE WHEN b THEN 'a' END || CASE WHEN b THEN 'c' END")
    assert use_tostring_macro(two_cases) == two_cases
    one_case = case.replace('"s"', "CASE WHEN b THEN 'END' ELSE CASE WHEN \"END\" THEN 'x' END END")
    assert use_tostring_macro(one_case).startswith(f"{TOSTRING}(CASE WHEN b")
    changed = case.replace("'True'", "'true'")  # not the translator's text: left alone
    assert use_tostring_macro(changed) == changed
