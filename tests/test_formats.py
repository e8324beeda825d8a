"""Every input format: detected per file, and identical rows give identical alerts and tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import run_cli
from exhunt import alerts as alerting
from exhunt import sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.replay import run_rule
from exhunt.rule import load_rules
from exhunt.sources import mde_csv
from exhunt.sources.base import FileReport

SEED = "exchange-transport-agent-seed"
#: Every column the rows set, read back through KQL (dynamic through parse_json).
ROUND_TRIP = {
    "DeviceFileEvents": "DeviceFileEvents | extend ft = tostring(parse_json(AdditionalFields).FileType) "
                        "| project Timestamp, TimeGenerated, DeviceName, ActionType, FileName, FolderPath, FileSize, "
                        "InitiatingProcessFileName, InitiatingProcessAccountName, InitiatingProcessCommandLine, "
                        "InitiatingProcessId, ReportId, AdditionalFields, ft, FutureDefenderColumn "
                        "| sort by Timestamp asc",
    "DeviceProcessEvents": "DeviceProcessEvents | extend psk = toint(parse_json(AdditionalFields).ProcessStartKey) "
                           "| project Timestamp, DeviceName, FileName, FolderPath, ProcessCommandLine, ProcessId, "
                           "AccountName, InitiatingProcessFileName, InitiatingProcessCommandLine, "
                           "InitiatingProcessId, IsProcessRemoteSession, ReportId, AdditionalFields, psk, "
                           "FutureDefenderColumn | sort by Timestamp asc",
}


def load(paths: list[Path], **kw: Any) -> tuple[Session, list[FileReport]]:
    session = Session(in_memory=True)
    reports = session.load_files(sources.walk(paths), **kw)
    return session, reports


def seed_alerts(session: Session) -> list[dict[str, Any]]:
    (rule,) = load_rules([SEED])
    backend = DuckDBBackend(session)
    return alerting.build(backend, rule, run_rule(backend, rule).rows)


def without_provenance(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k not in ("source_file", "source_record")} for a in alerts]


def table_rows(session: Session, name: str) -> list[dict[str, Any]]:
    rows = DuckDBBackend(session).query(ROUND_TRIP[name]).to_pylist()
    return [{k: alerting.jsonable(v) for k, v in r.items()} for r in rows]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Alerts and table contents from the portal CSV, which every other format must equal."""
    folder = tmp_path_factory.mktemp("baseline")
    _, write = helpers.FORMATS["portal-csv"]
    session, _ = load(write(folder))
    with session:
        return {"alerts": without_provenance(seed_alerts(session)),
                "tables": {n: table_rows(session, n) for n in ROUND_TRIP}}


def test_baseline_is_what_the_rows_say(baseline: dict[str, Any]) -> None:
    got = [(a["Timestamp"], a["DetectionType"], a["FileName"]) for a in baseline["alerts"]]
    assert got == helpers.EXPECTED_DETECTIONS
    evil = baseline["alerts"][0]
    assert evil["AccountName"] == "svc-x"
    assert evil["FolderPath"] == helpers.EXCH + r"\TransportRoles\agents\evil.dll"
    assert evil["InitiatingProcessCommandLine"] == helpers.FILE_ROWS[0]["InitiatingProcessCommandLine"]
    files = baseline["tables"]["DeviceFileEvents"]
    assert files[0]["Timestamp"] == "2026-03-01T10:00:00.123456Z"
    assert files[0]["TimeGenerated"] == files[0]["Timestamp"]
    assert files[0]["ft"] == "PortableExecutable"
    assert json.loads(files[0]["AdditionalFields"]) == {"FileType": "PortableExecutable", "Size": 73728}
    assert files[0]["FileSize"] == 73728 and files[0]["InitiatingProcessId"] == 4242
    assert files[1]["AdditionalFields"] == "" and files[1]["FileSize"] is None
    assert [f["FutureDefenderColumn"] for f in files] == ["v1", "v2", "v3"]
    procs = baseline["tables"]["DeviceProcessEvents"]
    assert [p["ProcessId"] for p in procs] == [5123, 6001, 6002]
    assert [p["IsProcessRemoteSession"] for p in procs] == [False, True, None]
    assert procs[1]["psk"] == 1234567
    assert procs[0]["ProcessCommandLine"] == 'cmd.exe /c "whoami /all, net user" > C:\\x.txt'


@pytest.mark.parametrize("label", sorted(helpers.FORMATS))
def test_every_format_gives_identical_alerts_and_rows(label: str, tmp_path: Path, baseline: dict[str, Any]) -> None:
    reader, write = helpers.FORMATS[label]
    files = write(tmp_path)
    session, reports = load([tmp_path])
    with session:
        assert [r.format for r in reports] == [reader] * len(files)
        assert all(r.error is None and not r.skipped and not r.coerced for r in reports), reports
        assert sum(r.read for r in reports) == 6
        assert sum(r.total_used for r in reports) == 6
        assert session.row_count("DeviceFileEvents") == 3
        assert session.row_count("DeviceProcessEvents") == 3
        alerts = seed_alerts(session)
        assert without_provenance(alerts) == baseline["alerts"]
        assert all(a["source_file"] and a["source_record"] for a in alerts)
        for name in ROUND_TRIP:
            assert table_rows(session, name) == baseline["tables"][name], name
        unknown = set().union(*(r.unknown_columns for r in reports))
        assert helpers.NEW_COLUMN in unknown


def test_cli_detect_identical_jsonl_across_formats(tmp_path: Path) -> None:
    """The same through the command line: jsonl alerts minus provenance are equal everywhere."""
    outputs = {}
    for label, (_, write) in helpers.FORMATS.items():
        folder = tmp_path / label
        write(folder)
        code, out, errtext = run_cli(["detect", str(folder), "--rules", SEED, "--format", "jsonl", "--flat"])
        assert code == 0, errtext
        outputs[label] = without_provenance([json.loads(line) for line in out.splitlines()])
    first = outputs.pop("portal-csv")
    assert len(first) == 3
    for label, got in outputs.items():
        assert got == first, label


def test_table_from_category_beats_file_name(tmp_path: Path) -> None:
    """A streaming blob named like another table still goes where `category` says."""
    path = helpers.write_streaming_storage(tmp_path / "DeviceFileEvents-misnamed.json",
                                           "DeviceProcessEvents", helpers.PROCESS_ROWS)
    session, reports = load([path])
    with session:
        assert reports[0].used == {"DeviceProcessEvents": 3}
        assert session.row_count("DeviceFileEvents") == 0


def test_table_from_file_name_beats_columns(tmp_path: Path) -> None:
    """Rows with process columns in a file named DeviceEvents* are DeviceEvents rows."""
    path = helpers.write_jsonl(tmp_path / "DeviceEvents_part1.jsonl", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    session, reports = load([path])
    with session:
        assert reports[0].used == {"DeviceEvents": 3}


def test_table_override_and_input_format_override(tmp_path: Path) -> None:
    # An unhelpful name and a header of only four columns: the signature cannot decide.
    path = tmp_path / "dump.txt"
    path.write_bytes(b"Timestamp,DeviceName,FileName,FolderPath\r\n2026-03-01T10:00:00Z,h,a.dll,C:\\a.dll\r\n")
    session, reports = load([path], input_format="mde-csv", table="DeviceImageLoadEvents")
    with session:
        assert reports[0].format == "mde-csv"
        assert reports[0].used == {"DeviceImageLoadEvents": 1}
    code, _, errtext = run_cli(["query", "DeviceFileEvents | count", str(path), "--table", "NoSuchTable"])
    assert code == 2 and "unknown table 'NoSuchTable'" in errtext
    code, _, errtext = run_cli(["query", "DeviceFileEvents | count", str(path), "--input-format", "xml"])
    assert code == 2 and "unknown input format 'xml'" in errtext


def test_folder_is_read_recursively_and_formats_mix(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    helpers.write_csv(tmp_path / "a" / "b" / "DeviceFileEvents.csv", "DeviceFileEvents", helpers.FILE_ROWS)
    helpers.write_parquet(tmp_path / "a" / "DeviceProcessEvents.parquet", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    session, reports = load([tmp_path])
    with session:
        assert sorted(r.format for r in reports) == ["mde-csv", "parquet"]
        assert [a["DetectionType"] for a in seed_alerts(session)] == [d for _, d, _ in helpers.EXPECTED_DETECTIONS]


def test_csv_with_bom_and_union_header_and_quoted_newlines(tmp_path: Path) -> None:
    """A BOM, a value spanning lines, then more rows: provenance stays on physical lines."""
    rows = [dict(helpers.PROCESS_ROWS[0]), dict(helpers.PROCESS_ROWS[1])]
    rows[0]["ProcessCommandLine"] = "powershell.exe -c \"\r\n$a = 1\r\nInstall-TransportAgent -Name a\""
    rows[0]["FileName"] = "powershell.exe"
    path = helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", rows, bom=True)
    session, reports = load([path])
    with session:
        assert reports[0].used == {"DeviceProcessEvents": 2}
        got = session.run('SELECT FileName, _record, ProcessCommandLine FROM "_t_DeviceProcessEvents" ORDER BY 2')
        assert got[0][:2] == ("powershell.exe", "line 2")
        assert got[0][2] == rows[0]["ProcessCommandLine"]
        assert got[1][:2] == ("pwsh.exe", "line 5")


def test_csv_provenance_across_many_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small parse blocks: numbering continues across batch edges, multi-line values included."""
    monkeypatch.setattr(mde_csv, "BLOCK_SIZE", 4096)
    rows = []
    for i in range(300):
        row = dict(helpers.FILE_ROWS[2], ReportId=i, FileName=f"f{i}.txt")
        if i % 7 == 0:
            row["InitiatingProcessCommandLine"] = "a\r\nb\r\nc"
        rows.append(row)
    path = helpers.write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", rows)
    # Expected start line of each record, from the rows themselves.
    expected, line = {}, 2
    for i, row in enumerate(rows):
        expected[i] = f"line {line}"
        line += 1 + row.get("InitiatingProcessCommandLine", "").count("\n")
    session, reports = load([path])
    with session:
        got = dict(session.run('SELECT ReportId, _record FROM "_t_DeviceFileEvents"'))
        assert got == expected
        assert reports[0].read == 300 and not reports[0].skipped


def test_log_analytics_csv_header_with_zone_suffix(tmp_path: Path) -> None:
    """The Log Analytics portal CSV writes `TimeGenerated [UTC]`; it is TimeGenerated."""
    path = tmp_path / "query_data.csv"
    path.write_bytes(b"TimeGenerated [UTC],DeviceName,ActionType,FileName,FolderPath,InitiatingProcessFileName,Type\r\n"
                     b"yesterday,h,FileCreated,a.dll,C:\\TransportRoles\\a.dll,x.exe,"
                     b"DeviceFileEvents\r\n"
                     b"2026-03-01T10:00:00.123Z,h,FileCreated,b.dll,C:\\TransportRoles\\b.dll,x.exe,DeviceFileEvents\r\n"
)
    session, reports = load([path])
    with session:
        assert reports[0].format == "mde-csv"
        assert reports[0].used == {"DeviceFileEvents": 1}
        assert reports[0].skipped == {"bad Timestamp": 1}
        assert any("query_data.csv:line 2" in m for m in reports[0].messages)
        assert session.run('SELECT FileName, Timestamp::VARCHAR FROM "_t_DeviceFileEvents"') == [
            ("b.dll", "2026-03-01 10:00:00.123")]


def test_timestamps_with_offsets_become_utc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offsets are honoured and offset-less times are UTC, whatever the machine's zone."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        path = tmp_path / "DeviceFileEvents.jsonl"
        path.write_text(
            '{"Timestamp": "2026-03-01T12:00:00+02:00", "FileName": "a"}\n'
            '{"Timestamp": "2026-03-01 10:00:00", "FileName": "b"}\n'
            '{"Timestamp": "2026-03-01T10:00:00.1234567Z", "FileName": "c"}\n', encoding="utf-8")
        session, _ = load([path])
        with session:
            got = session.run('SELECT FileName, strftime(Timestamp, \'%H:%M:%S.%f\') FROM "_t_DeviceFileEvents" '
                              'ORDER BY 1')
            assert got == [("a", "10:00:00.000000"), ("b", "10:00:00.000000"), ("c", "10:00:00.123456")]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_unknown_columns_listed_once_in_summary(tmp_path: Path) -> None:
    for label in ("portal-csv", "streaming-storage", "parquet"):
        helpers.FORMATS[label][1](tmp_path / label)
    code, _, errtext = run_cli(["detect", str(tmp_path), "--rules", SEED, "--format", "jsonl", "--flat"])
    assert code == 0
    lines = [ln for ln in errtext.splitlines() if "not in the published schema" in ln]
    assert len(lines) == 1
    # The Streaming API's empty MachineGroup is DeviceInfo's column: an empty cell of another table's
    # column is dropped (sources/records.py), not listed as new.
    assert helpers.NEW_COLUMN in lines[0] and "MachineGroup" not in lines[0]


def test_unknown_column_is_queryable(tmp_path: Path) -> None:
    helpers.FORMATS["jsonl-rows"][1](tmp_path)
    code, out, _ = run_cli(["query", f"DeviceProcessEvents | where {helpers.NEW_COLUMN} == 'p2' | project FileName",
                            str(tmp_path), "--format", "jsonl", "--quiet"])
    assert code == 0 and [json.loads(x) for x in out.splitlines()] == [{"FileName": "pwsh.exe"}]


def test_log_analytics_union_columns_do_not_leak(tmp_path: Path) -> None:
    """A union result carries the other table's columns as nulls; they are not new columns."""
    path = helpers.write_la_api(tmp_path / "r.json", helpers.ROWS)
    session, reports = load([path])
    with session:
        unknown = reports[0].unknown_columns
        assert "ProcessCommandLine" not in unknown and "RequestProtocol" not in unknown
        assert helpers.NEW_COLUMN in unknown
