"""The fast load paths give the same answers as copying every column: Parquet queried in place,
columns pruned to what the queries read, batches coalesced across files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exhunt import alerts, schema, sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.prune import keep_columns, unread_tables
from exhunt.replay import run_rule
from exhunt.rule import load_rules
from exhunt.sources import mde_csv
from exhunt.sources.base import FileReport
from helpers import FILE_ROWS, PROCESS_ROWS, ROWS, write_csv, write_parquet

SEED = load_rules(["exchange-transport-agent-seed"])[0]


def _reports(reports: list[FileReport]) -> list[tuple[Any, ...]]:
    return [(r.path, r.format, r.read, dict(r.used), dict(r.skipped), dict(r.coerced), r.messages,
             sorted(r.unknown_columns), r.error) for r in reports]


LOOK = ("DeviceFileEvents | project Timestamp, FileName, FileSize, FutureDefenderColumn, _source_file, _record "
        "| sort by _source_file asc, _record asc")


def _hunt(folder: Path, in_place: bool = False, prune: bool = False) -> tuple[Any, ...]:
    with Session(in_memory=True) as s:
        s.in_place = in_place
        if prune:
            s.load_only_for([SEED.query, LOOK])
        reports = s.load_files(list(sources.walk([folder])), jobs=1)
        b = DuckDBBackend(s)
        found = alerts.build(b, SEED, run_rule(b, SEED).rows)
        rows = b.query(LOOK).to_pylist()
        if prune and not in_place:  # a column no query names is left empty
            assert s.run('SELECT count(*) FROM "_t_DeviceFileEvents" WHERE SHA256 IS NOT NULL')[0][0] == 0
        return _reports(reports), found, rows


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    for name, rows in ROWS.items():
        write_parquet(tmp_path / f"{name}_1.parquet", name, rows)
    # A second file with text-typed columns: a bad time, a bad number, an unknown column.
    bad = pa.table({"Timestamp": ["2026-03-04T10:00:00Z", "yesterday", ""], "DeviceName": ["exch01"] * 3,
                    "ActionType": ["FileCreated"] * 3, "FileName": ["a.dll", "b.dll", "c.dll"],
                    "FileSize": ["12", "big", None], "FutureDefenderColumn": ["x", "y", "z"]})
    pq.write_table(bad, tmp_path / "DeviceFileEvents_2.parquet")
    return tmp_path


def test_parquet_in_place_equals_copy(parquet_dir: Path) -> None:
    copied = _hunt(parquet_dir)
    assert _hunt(parquet_dir, in_place=True) == copied
    assert _hunt(parquet_dir, in_place=True, prune=True) == copied
    reports = {Path(r[0]).name: r for r in copied[0]}
    assert reports["DeviceFileEvents_2.parquet"][4] == {"bad Timestamp": 1, "missing Timestamp": 1}
    assert any("row 1: FileSize" not in m and "row 2" in m for m in reports["DeviceFileEvents_2.parquet"][6])
    assert copied[1], "the seed rule finds the planted rows"


def test_pruned_csv_equals_full(tmp_path: Path) -> None:
    for name, rows in ROWS.items():
        write_csv(tmp_path / f"{name}_1.csv", name, rows)
    assert _hunt(tmp_path, prune=True) == _hunt(tmp_path)


def test_in_place_table_is_cleared_and_reloaded(parquet_dir: Path) -> None:
    with Session(in_memory=True) as s:
        s.in_place = True
        s.load_files(list(sources.walk([parquet_dir])), jobs=1)
        n = s.row_count("DeviceFileEvents")
        s.clear()
        assert s.row_count("DeviceFileEvents") == 0
        s.load_files(list(sources.walk([parquet_dir])), jobs=1)
        assert s.row_count("DeviceFileEvents") == n


def test_keep_columns_is_conservative() -> None:
    tables = list(schema.tables())
    seed = keep_columns([SEED.query], tables)
    assert {"folderpath", "initiatingprocessaccountname", "timestamp"} <= seed["DeviceFileEvents"]
    assert "sha256" not in seed["DeviceFileEvents"]
    # whole rows leave the query: nothing pruned for that table
    assert "DeviceFileEvents" not in keep_columns(["DeviceFileEvents | where FileName endswith '.dll'"], tables)
    assert "DeviceFileEvents" not in keep_columns(["let a = DeviceFileEvents; a | where FileName == 'x'"], tables)
    # a `let` is followed to where it is read (the parse tree binds the name): cut there, it is pruned
    assert "filename" in keep_columns(["let a = DeviceFileEvents; a | project FileName"], tables)["DeviceFileEvents"]
    assert "DeviceFileEvents" not in keep_columns(["union DeviceFileEvents, DeviceProcessEvents | take 5"], tables)
    assert "DeviceFileEvents" not in keep_columns(["DeviceFileEvents | project-away SHA1"], tables)
    joined = keep_columns(["DeviceFileEvents | join (DeviceProcessEvents | where X == 1) on DeviceId "
                           "| project FileName"], tables)
    assert "DeviceFileEvents" in joined and "DeviceProcessEvents" not in joined
    assert "DeviceFileEvents" not in keep_columns(["DeviceFileEvents | where * has 'x' | project FileName"], tables)
    assert "DeviceFileEvents" not in keep_columns(["DeviceFileEvents | extend b = pack_all() | project b"], tables)
    # after the columns are cut, `*` only sees what was kept; a `*` inside a string is text
    after = keep_columns(["DeviceFileEvents | where FolderPath matches regex @'a.*b' "
                          "| project FileName, T = Timestamp | summarize arg_min(T, *) by FileName"], tables)
    assert "filename" in after["DeviceFileEvents"] and "sha1" not in after["DeviceFileEvents"]
    assert keep_columns(["union Device* | project FileName"], tables) == {}
    assert keep_columns(["search 'evil.dll' | project FileName"], tables) == {}
    assert "x" in keep_columns(['DeviceFileEvents | extend v = column_ifexists("X", "") | project v'],
                               tables)["DeviceFileEvents"]


# -- CSV parsed by DuckDB ------------------------------------------------------------


def _staged_hunt(folder: Path, prune: bool = False, queries: list[str] | None = None) -> tuple[Any, ...]:
    """`_hunt` with DuckDB's CSV reader offered every file; also how many files it kept."""
    with Session(in_memory=True) as s:
        s.in_place = True
        if prune or queries:
            s.load_only_for(queries or [SEED.query, LOOK])
        reports = s.load_files(list(sources.walk([folder])), jobs=1)
        b = DuckDBBackend(s)
        found = alerts.build(b, SEED, run_rule(b, SEED).rows)
        rows = b.query(LOOK).to_pylist()
        return _reports(reports), found, rows, len(s._staged)


@pytest.fixture
def duckdb_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)


def _csv_dir(tmp_path: Path) -> Path:
    write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", FILE_ROWS, bom=True)
    write_csv(tmp_path / "DeviceProcessEvents_1.csv", "DeviceProcessEvents", PROCESS_ROWS)
    return tmp_path


def test_csv_parsed_by_duckdb_equals_arrow(tmp_path: Path, duckdb_csv: None) -> None:
    folder = _csv_dir(tmp_path)
    arrow = _hunt(folder)  # not in place: every CSV goes through Arrow's reader
    for prune in (False, True):
        *staged, kept = _staged_hunt(folder, prune=prune)
        assert kept == 2, "both files were stored as DuckDB parsed them"
        assert tuple(staged) == arrow
    assert [r["_record"] for r in arrow[2]] == ["line 2", "line 3", "line 4"]
    assert len(arrow[1]) == 3


@pytest.mark.parametrize("damage", ["multi-line value", "malformed line", "bad time", "bad number", "blank line"])
def test_csv_duckdb_falls_back_to_arrow_on_anything_unusual(tmp_path: Path, duckdb_csv: None, damage: str) -> None:
    """Whatever DuckDB's rows could not say exactly (a line number, a problem's place) is read
    again by the Arrow path: the reports, alerts and rows are those of the Arrow path."""
    rows = [dict(r) for r in FILE_ROWS]
    if damage == "multi-line value":
        rows[0]["InitiatingProcessCommandLine"] = "powershell.exe -c \"\n Copy-Item x.dll\n\""
    elif damage == "bad time":
        rows[1]["Timestamp"] = "yesterday"
    elif damage == "bad number":
        rows[1]["FileSize"] = "big"
    path = write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", rows)
    if damage in ("malformed line", "blank line"):
        text = path.read_bytes().splitlines(keepends=True)
        extra = b"2026-03-01T10:30:00Z,exch01\r\n" if damage == "malformed line" else b"\r\n"
        path.write_bytes(b"".join([*text[:2], extra, *text[2:]]))
    arrow = _hunt(tmp_path)
    *staged, kept = _staged_hunt(tmp_path)
    assert kept == 0
    assert tuple(staged) == arrow
    report = arrow[0][0]
    if damage == "multi-line value":
        assert [r["_record"] for r in arrow[2]] == ["line 2", "line 5", "line 6"]
    elif damage == "malformed line":
        assert report[4] == {"malformed CSV line": 1} and "line 3" in report[6][0]
    elif damage == "blank line":
        assert [r["_record"] for r in arrow[2]] == ["line 2", "line 4", "line 5"]
    elif damage == "bad time":
        assert report[4] == {"bad Timestamp": 1}
    else:
        assert report[5] == {"FileSize": 1}


def test_csv_of_a_table_no_query_reads_is_counted_not_stored(tmp_path: Path, duckdb_csv: None) -> None:
    folder = _csv_dir(tmp_path)
    only_files = "DeviceFileEvents | project Timestamp, FileName"
    with Session(in_memory=True) as s:
        s.in_place = True
        s.load_only_for([only_files])
        reports = {Path(r.path).name: r for r in s.load_files(list(sources.walk([folder])), jobs=1)}
        assert s.row_count("DeviceProcessEvents") == 0
        assert s.row_count("DeviceFileEvents") == 3
    proc = reports["DeviceProcessEvents_1.csv"]
    assert (proc.read, dict(proc.used), dict(proc.skipped)) == (3, {"DeviceProcessEvents": 3}, {})


def test_csv_lines_stay_exact_when_duckdb_splits_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB parses buffers in parallel; each row's line must still be its line in the file.
    Every row here carries its own line number (ReportId) to check against."""
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)
    monkeypatch.setattr(mde_csv, "DUCKDB_BUFFER_BYTES", 256 << 10)
    n = 60_000
    path = tmp_path / "DeviceFileEvents.csv"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT strftime(TIMESTAMP '2026-03-01' + to_seconds(i), '%Y-%m-%dT%H:%M:%S.%f') || '0Z' "
        f"AS Timestamp, 'exch0' || (i % 3) AS DeviceName, 'FileCreated' AS ActionType, "
        f"'f' || i || '.dll' AS FileName, repeat('x', CAST(i % 97 AS INTEGER)) AS FolderPath, "
        f"i + 2 AS ReportId FROM range({n}) r(i)) TO '{path}' (HEADER, NEW_LINE '\\r\\n')").fetchall()
    assert path.stat().st_size > 10 * (256 << 10)
    with Session(in_memory=True) as s:
        s.in_place = True
        s.load_files([sources.disk_file(path, str(path))], jobs=1)
        assert len(s._staged) == 1
        assert s.run("SELECT count(*), count(*) FILTER (_record <> 'line ' || CAST(ReportId AS VARCHAR)) "
                     "FROM DeviceFileEvents")[0] == (n, 0)


def test_unread_tables_are_those_no_query_names() -> None:
    tables = list(schema.tables())
    unread = unread_tables([SEED.query], tables)
    assert "DeviceRegistryEvents" in unread and "Event" in unread
    assert not {"DeviceFileEvents", "DeviceProcessEvents"} & unread
    # a name inside a string still counts (table("X")); wildcards and search reach every table
    assert unread_tables(['table("DeviceRegistryEvents") | count'], tables) == set()
    assert unread_tables(['table(strcat("DeviceRegistry", "Events")) | count'], tables) == set()
    assert keep_columns(['table("DeviceFileEvents") | take 5'], tables) == {}
    assert unread_tables(["union Device* | count"], tables) == set()
    assert unread_tables(["search 'x'"], tables) == set()
    every = unread_tables([r.query for r in load_rules()], tables)
    assert every == {"DeviceNetworkEvents", "DeviceRegistryEvents", "DeviceLogonEvents", "DeviceInfo",
                     "DeviceNetworkInfo", "IdentityInfo"}


@pytest.mark.parametrize("shape", ["no final newline", "header only"])
def test_csv_duckdb_edges_of_a_file(tmp_path: Path, duckdb_csv: None, shape: str) -> None:
    rows = [] if shape == "header only" else FILE_ROWS
    path = write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", rows)
    if shape == "no final newline":
        path.write_bytes(path.read_bytes().rstrip(b"\r\n"))
    if shape == "header only":  # nothing to stage: the reader reports the file, as without DuckDB
        with Session(in_memory=True) as s:
            s.in_place = True
            (report,) = s.load_files(list(sources.walk([tmp_path])), jobs=1)
            assert s._staged == [] and (report.read, report.error) == (0, None)
            assert "FutureDefenderColumn" not in s.kql_schema()["DeviceFileEvents"]
        return
    arrow = _hunt(tmp_path)
    *staged, kept = _staged_hunt(tmp_path)
    assert kept == 1
    assert tuple(staged) == arrow
    assert len(arrow[2]) == 3


def test_csv_duckdb_decodes_encoded_commands_like_arrow(tmp_path: Path, duckdb_csv: None) -> None:
    """The staged rows get the same -EncodedCommand decoding into AdditionalFields, and only when
    a query reads AdditionalFields (the decoding writes nothing else)."""
    blob = base64.b64encode("Install-TransportAgent -Name x".encode("utf-16-le")).decode()
    rows = [dict(r) for r in PROCESS_ROWS]
    rows[2]["ProcessCommandLine"] = f"powershell.exe -enc {blob}"
    write_csv(tmp_path / "DeviceProcessEvents_1.csv", "DeviceProcessEvents", rows)
    look = ("DeviceProcessEvents | project Timestamp, ProcessCommandLine, AdditionalFields, _record "
            "| sort by _record asc")
    found = []
    for in_place in (False, True):
        with Session(in_memory=True) as s:
            s.in_place = in_place
            s.load_only_for([look])
            s.load_files(list(sources.walk([tmp_path])), jobs=1)
            assert len(s._staged) == (1 if in_place else 0)
            found.append(DuckDBBackend(s).query(look).to_pylist())
    assert found[0] == found[1]
    assert json.loads(found[1][2]["AdditionalFields"]) == {"DecodedCommand": "Install-TransportAgent -Name x"}
    assert json.loads(found[1][1]["AdditionalFields"]) == {"ProcessStartKey": 1234567}
