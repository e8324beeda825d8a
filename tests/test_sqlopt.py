"""The SQL rewrites keep every answer: merged `has_any` regexes match exactly the rows the
translator's one-regex-per-needle SQL matches."""

from __future__ import annotations

import duckdb
import duckdb_kql
import pytest

from exhunt.sqlopt import merge_regex_runs

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
