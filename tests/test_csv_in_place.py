"""Large CSV files hunted in place (`exhunt detect`): no line numbers while the rules run, yet
every alert names its exact file and line, and the run summary is the reader's, problem lines
included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from conftest import run_cli
from exhunt import alerts, engine, sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.replay import run_rule
from exhunt.rule import load_rules
from exhunt.sources import mde_csv
from exhunt.sources.base import FileReport
from helpers import FILE_ROWS, write_csv

SEED = load_rules(["exchange-transport-agent-seed"])[0]
#: A query that keeps whole rows, provenance columns included.
WHOLE = load_rules(["exchange-agent-dll-placement"])[0]


def _reports(reports: list[FileReport]) -> list[tuple[Any, ...]]:
    return [(r.path, r.format, r.read, dict(r.used), dict(r.skipped), dict(r.coerced), r.messages,
             sorted(r.unknown_columns), r.error) for r in reports]


def _hunt(folder: Path, lines_later: bool) -> tuple[Any, ...]:
    """Reports and seed-rule alerts; `lines_later` False is the reference (lines stored per row)."""
    with Session(in_memory=True) as s:
        s.in_place = True
        s.lines_later = lines_later
        s.load_only_for([SEED.query])
        reports = s.load_files(list(sources.walk([folder])), jobs=1)
        b = DuckDBBackend(s)
        found = alerts.build(b, SEED, run_rule(b, SEED).rows)
        return _reports(reports), found, sorted(s.lazy)


@pytest.fixture
def duckdb_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)


MULTI = "powershell.exe -c \"\n Copy-Item x.dll\n\""


@pytest.mark.parametrize("damage", ["none", "multi-line value", "malformed line", "bad time", "bad number",
                                    "blank line", "no final newline"])
def test_alert_lines_are_exact_without_line_numbers(tmp_path: Path, duckdb_csv: None, damage: str) -> None:
    rows = [dict(r) for r in FILE_ROWS]
    if damage == "multi-line value":  # in a row before the alerting one
        rows = [rows[2], rows[0], rows[1]]
        rows[0]["InitiatingProcessCommandLine"] = MULTI
    elif damage == "bad time":
        rows[1]["Timestamp"] = "yesterday"
    elif damage == "bad number":
        rows[1]["FileSize"] = "big"
    path = write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", rows)
    text = path.read_bytes()
    if damage in ("malformed line", "blank line"):
        lines = text.splitlines(keepends=True)
        extra = b"2026-03-01T10:30:00Z,exch01\r\n" if damage == "malformed line" else b"\r\n"
        path.write_bytes(b"".join([*lines[:2], extra, *lines[2:]]))
    elif damage == "no final newline":
        path.write_bytes(text.rstrip(b"\r\n"))
    reference = _hunt(tmp_path, lines_later=False)
    got = _hunt(tmp_path, lines_later=True)
    assert got[:2] == reference[:2]
    assert all(a["source_record"].startswith("line ") for a in got[1])
    # only a file without problems is hunted in place; the others are read as before
    assert got[2] == ([str(path)] if damage in ("none", "multi-line value", "no final newline") else [])
    if damage == "multi-line value":
        assert [a["source_record"] for a in got[1]] == ["line 5"]
    if damage in ("bad time", "bad number"):
        assert any(":line 3:" in m for m in got[0][0][6]), "the problem row's line is reported"


def _big_csv(path: Path, n: int, multi_at: int | None = None) -> None:
    """n rows, ReportId = each row's physical line; optionally a value spanning 3 lines."""
    con = duckdb.connect()
    shift = f"+ CASE WHEN i > {multi_at} THEN 2 ELSE 0 END" if multi_at is not None else ""
    cmd = (f"CASE WHEN i = {multi_at} THEN 'powershell.exe -c \"' || chr(10) || 'x' || chr(10) || '\"' "
           f"ELSE 'cmd.exe' END" if multi_at is not None else "'cmd.exe'")
    con.execute(
        f"COPY (SELECT strftime(TIMESTAMP '2026-03-01' + to_seconds(i), '%Y-%m-%dT%H:%M:%S.%f') || '0Z' "
        f"AS Timestamp, 'exch0' || (i % 3) AS DeviceName, 'FileCreated' AS ActionType, "
        f"'f' || i || '.dll' AS FileName, repeat('x', CAST(i % 97 AS INTEGER)) AS FolderPath, "
        f"{cmd} AS InitiatingProcessCommandLine, i + 2 {shift} AS ReportId FROM range({n}) r(i)) "
        f"TO '{path}' (HEADER, NEW_LINE '\\r\\n')").fetchall()


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("multi_at", [None, 7])
def test_lines_of_rows_far_into_a_file_duckdb_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     multi_at: int | None, copy: bool) -> None:
    """The second read numbers rows in file order across DuckDB's parallel buffers; a value
    spanning lines anywhere before a row moves it down, and the line still comes out exact
    (rows kept in a temporary table in any order, or a view over the parse)."""
    monkeypatch.setattr(engine, "COPY_CSV", copy)
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)
    monkeypatch.setattr(mde_csv, "DUCKDB_BUFFER_BYTES", 256 << 10)
    n = 60_000
    path = tmp_path / "DeviceFileEvents.csv"
    _big_csv(path, n, multi_at)
    assert path.stat().st_size > 10 * (256 << 10)
    with Session(in_memory=True) as s:
        s.in_place = s.lines_later = True
        (report,) = s.load_files([sources.disk_file(path, str(path))], jobs=1)
        assert (report.read, report.skipped) == (n, {})
        assert list(s.lazy) == [str(path)] and s._staged == []
        assert s.run("SELECT count(*) FROM DeviceFileEvents WHERE _record IS NULL")[0][0] == n
        picked = s.run("SELECT Timestamp, FileName, ReportId FROM DeviceFileEvents "
                       "WHERE FileName IN ('f0.dll', 'f6.dll', 'f8.dll', 'f31337.dll', 'f59999.dll')")
        keys = pa.table({"_i": list(range(len(picked))), "Timestamp": [r[0] for r in picked],
                         "FileName": [r[1] for r in picked]})
        lines = s.lines_of(str(path), keys)
        assert lines == {i: f"line {r[2]}" for i, r in enumerate(picked)}
        assert s.lazy[str(path)].one_line_rows is (multi_at is None)
        assert len(s._lazy_tables) == copy
        s.clear()
        assert s.row_count("DeviceFileEvents") == 0 and not s.lazy


def test_detect_names_exact_lines_for_rows_kept_whole_and_projected(tmp_path: Path, duckdb_csv: None) -> None:
    """`exhunt detect` end to end: alerts of a rule that projects (provenance looked up by values)
    and of one that keeps `_source_file`, after a value spanning lines."""
    rows = [dict(r) for r in (FILE_ROWS[2], *FILE_ROWS)]
    rows[0]["InitiatingProcessCommandLine"] = MULTI
    path = write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", rows)
    rule = tmp_path / "whole.yaml"
    rule.write_text(WHOLE.path.read_text().replace(WHOLE.query.splitlines()[0], "// whole rows")
                    .replace("| project Timestamp", "| project _source_file, _record, Timestamp"))
    want = {}
    for lines_later in (False, True):
        with Session(in_memory=True) as s:
            s.in_place = True
            s.lines_later = lines_later
            s.load_files([sources.disk_file(path, str(path))], jobs=1)
            b = DuckDBBackend(s)
            want[lines_later] = sorted((a["rule_name"], a["Timestamp"], a["source_file"], a["source_record"])
                                       for r in (SEED, *load_rules([str(rule)]))
                                       for a in alerts.build(b, r, run_rule(b, r).rows))
    assert want[True] == want[False] and want[True]
    code, out, _ = run_cli(["detect", str(path), "-r", "exchange-transport-agent-seed", "-r", str(rule),
                            "-f", "jsonl", "--flat", "-q"])
    got = sorted((a["rule_name"], a["Timestamp"], a["source_file"], a["source_record"])
                 for a in map(json.loads, out.splitlines()))
    assert code == 0 and got == want[False]
    assert {a[3] for a in got} <= {"line 5", "line 6", "line 7"}


@pytest.mark.parametrize("value", ["12x", "1 parsec", "", "100MB", "-1GB"])
def test_memory_option_is_checked(tmp_path: Path, value: str) -> None:
    code, _, err = run_cli(["detect", str(tmp_path), "--memory", value, "-q"])
    assert code == 2 and "--memory" in err and "Traceback" not in err


def test_memory_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHUNT_MEMORY", "lots")
    code, _, err = run_cli(["query", "DeviceFileEvents | count", str(tmp_path), "-q"])
    assert code == 2 and "EXHUNT_MEMORY" in err
    monkeypatch.setenv("EXHUNT_MEMORY", "1GB")
    write_csv(tmp_path / "DeviceFileEvents_1.csv", "DeviceFileEvents", FILE_ROWS)
    code, out, _ = run_cli(["query", "DeviceFileEvents | count", str(tmp_path), "-q", "-f", "jsonl",
                            "--memory", "600MB"])
    assert code == 0 and json.loads(out)["Count"] == len(FILE_ROWS)


def test_provenance_of_the_demo_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts of rules that project are looked up by one join per table: 33 of the demo's 38
    alerts name their file and record (the other five are made by aggregations or from values
    the rules computed, which no stored row holds)."""
    demo = Path(__file__).resolve().parent.parent / "demo"
    code, out, _ = run_cli(["detect", str(demo), "-f", "jsonl", "--flat", "-q", "-j", "1"])
    alerts = [json.loads(line) for line in out.splitlines()]
    named = [(a["source_file"], a["source_record"]) for a in alerts if a["source_file"]]
    assert code == 0 and (len(alerts), len(named)) == (38, 33)
    assert ("demo/DeviceFileEvents-export.csv", "line 11") in [(Path(f).parent.name + "/" + Path(f).name, r)
                                                                for f, r in named]
    assert all(r.startswith(("line ", "record ")) for _, r in named)
