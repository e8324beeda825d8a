"""A query that cannot run is refused in KQL's words: `detect` names each broken rule and exits
2 (the other rules' alerts still printed), `rules validate` refuses a `where` on a constant, and
no mangled query ever shows the engine's own message or a traceback (a property test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import helpers
from conftest import run_cli
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.errors import ExhuntError
from exhunt.hunt import HuntOptions, open_local
from exhunt.kql import messages, tree

RAW = ("Catalog Error", "Binder Error", "Parser Error", "Conversion Error", "Invalid Input Error",
       "duckdb", "DuckDB", "Traceback", "SELECT", "expecting {")

#: Valid queries of the shapes rules use; the fuzz test mangles their tokens.
SEEDS = [
    'DeviceProcessEvents | where InitiatingProcessFileName =~ "EdgeTransport.exe" and FileName in~ ("cmd.exe", '
    '"powershell.exe") | project Timestamp, DeviceName, FileName, ProcessCommandLine',
    'let Kids = DeviceProcessEvents | where InitiatingProcessFileName has "Transport"; Kids | summarize Runs = '
    'count(), Last = max(Timestamp) by DeviceName, FileName | where Runs > 0',
    'DeviceProcessEvents | extend Cmd = tolower(ProcessCommandLine) | where Cmd matches regex @"whoami|net\\s+user" '
    '| top 5 by Timestamp desc',
    'DeviceProcessEvents | where Timestamp > ago(7d) | join kind=inner (DeviceProcessEvents | project DeviceName, '
    'Parent = FileName) on DeviceName | project DeviceName, FileName, Parent | take 10',
    'DeviceProcessEvents | where strlen(ProcessCommandLine) > 10 and ProcessId between (1 .. 9000) '
    '| extend Hour = bin(Timestamp, 1h) | summarize dcount(FileName) by Hour',
]


def _rows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "DeviceProcessEvents.jsonl"
    rows = [
        {"Type": "DeviceProcessEvents", "Timestamp": "2026-03-01T10:00:00Z", "DeviceName": "ex01",
         "FileName": "cmd.exe", "ProcessCommandLine": "cmd.exe /c whoami", "ProcessId": 4120,
         "InitiatingProcessFileName": "EdgeTransport.exe"},
        {"Type": "DeviceProcessEvents", "Timestamp": "2026-03-01T10:05:00Z", "DeviceName": "ex01",
         "FileName": "powershell.exe", "ProcessCommandLine": "powershell -enc SQBFAFgA", "ProcessId": 4188,
         "InitiatingProcessFileName": "w3wp.exe"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBBackend]:
    path = _rows(tmp_path_factory.mktemp("fuzz"))
    local, _ = open_local([path], [], HuntOptions(jobs=1))
    with local:
        yield local


def _words(kql: str) -> list[str]:
    return [t.text for t in tree.tokens(kql)]


#: What a replaced token becomes: names of the wrong kind or type, constants, a misspelt table.
POOL = ["FileName", "Timestamp", "ProcessId", "NoSuchColumn", "DeviceProcesEvents", "count()", '"text"', "1",
        "ago(1h)", "dynamic([1])", "-1", "datetime(2026-02-30)", "sum(FileName)"]


@st.composite
def _mangled(draw: st.DrawFn) -> str:
    """A seed query with one to three tokens deleted, duplicated, swapped with a neighbour or
    replaced by another name or constant."""
    words = _words(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(words) - 1))
        how = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "replace"]))
        if how == "replace":
            words[i] = draw(st.sampled_from(POOL))
        elif how == "delete" and len(words) > 1:
            del words[i]
        elif how == "duplicate":
            words.insert(i, words[i])
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(kql=_mangled())
def test_mangled_queries_fail_in_kql_words(backend: DuckDBBackend, kql: str) -> None:
    try:
        backend.query(kql)
    except ExhuntError as exc:
        message = str(exc)
        assert message and not any(raw in message for raw in RAW), (kql, message)


def test_seeds_run(backend: DuckDBBackend) -> None:
    """The fuzz test's seeds are valid: a mangled one failing says something about the mangling."""
    for kql in SEEDS:
        backend.query(kql)
    assert backend.query(SEEDS[0]).num_rows == 1


def test_detect_names_each_broken_rule_and_exits_2(tmp_path: Path) -> None:
    """A rule reading an unknown table, or a column its (empty) table lacks, is a failed rule,
    not "no rows"; the rule that works still prints its alerts."""
    data = tmp_path / "data"
    helpers.FORMATS["portal-csv"][1](data)
    rules = tmp_path / "rules"
    helpers.seed_rule(rules, "a-seed")
    helpers.seed_rule(rules, "b-no-table", id="8f1c2a3b-0000-4000-8000-00000000000b", name="no table",
                      query="DeviceNoSuchEvents\n| project Timestamp, DeviceName")
    helpers.seed_rule(rules, "c-no-column", id="8f1c2a3b-0000-4000-8000-00000000000c", name="no column",
                      query="DeviceRegistryEvents\n| where RegistryKeyX has \"Transport\"")
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat"])
    text = " ".join(err.split())
    assert code == 2
    assert len(out.splitlines()) == 3  # the seed rule's alerts
    assert "rule b-no-table FAILED: table `DeviceNoSuchEvents` does not exist (line 1, column 1)" in text
    assert ("rule c-no-column FAILED: column `RegistryKeyX` (line 2, column 9) does not exist in table "
            "DeviceRegistryEvents") in text
    assert "2 of 3 rule(s) failed" in text
    assert "no rows in DeviceRegistryEvents" not in text


def test_validate_refuses_a_where_on_a_string(tmp_path: Path) -> None:
    rule = helpers.seed_rule(tmp_path / "rules", "bare", query='DeviceFileEvents\n| where "EdgeTransport.exe"')
    code, _, err = run_cli(["rules", "validate", str(rule)])
    assert code == 2
    assert ('`where` needs a true/false condition, but the string `"EdgeTransport.exe"` (line 2, column 9) '
            "is none") in " ".join(err.split())


def test_query_command_names_the_table(tmp_path: Path) -> None:
    path = _rows(tmp_path / "data")
    code, out, err = run_cli(["query", "DeviceProcesEvents | take 1", str(path), "-q"])
    assert code == 2 and out == ""
    assert err.strip() == ("error: table `DeviceProcesEvents` does not exist (line 1, column 1); "
                           "did you mean `DeviceProcessEvents`?")


@pytest.mark.parametrize(("kql", "name", "where"), [
    ('T | where x == "T"', "T", "line 1, column 1"),
    ('// T\nT | where x == 1', "T", "line 2, column 1"),
    ("T\n| where ['a b'] == 1", "a b", "line 2, column 10"),
    ('T | where x has "y"', "y", None),  # inside a string: not a name
])
def test_find_locates_names_not_strings_or_comments(kql: str, name: str, where: str | None) -> None:
    assert messages.find(kql, name) == where
