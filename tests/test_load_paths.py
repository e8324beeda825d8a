"""The fast load paths give the same answers as copying every column: Parquet queried in place,
columns pruned to what the queries read, batches coalesced across files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exhunt import alerts, schema, sources
from exhunt.engine import Session
from exhunt.prune import keep_columns
from exhunt.replay import run_rule
from exhunt.rule import load_rules
from exhunt.sources.base import FileReport
from helpers import ROWS, write_csv, write_parquet

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
        found = alerts.build(s, SEED, run_rule(s, SEED).rows)
        rows = s.query(LOOK).to_pylist()
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
    assert "DeviceFileEvents" not in keep_columns(["let a = DeviceFileEvents; a | project FileName"], tables)
    assert "DeviceFileEvents" not in keep_columns(["union DeviceFileEvents, DeviceProcessEvents | take 5"], tables)
    assert "DeviceFileEvents" not in keep_columns(["DeviceFileEvents | project-away SHA1"], tables)
    joined = keep_columns(["DeviceFileEvents | join (DeviceProcessEvents | where X == 1) on DeviceId "
                           "| project FileName"], tables)
    assert "DeviceFileEvents" in joined and "DeviceProcessEvents" not in joined
    assert keep_columns(["DeviceFileEvents | where * has 'x' | project FileName"], tables) == {}
    assert "x" in keep_columns(['DeviceFileEvents | extend v = column_ifexists("X", "") | project v'],
                               tables)["DeviceFileEvents"]
