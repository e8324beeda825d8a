"""The command line: exit codes, --fail-on, output formats, the 80-column table, provenance."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import helpers
from conftest import run_cli

SEED = "exchange-transport-agent-seed"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    helpers.FORMATS["portal-csv"][1](folder)
    return folder


def test_exit_0_with_alerts_and_without_fail_on(data: Path) -> None:
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED, "-f", "jsonl", "--flat"])
    assert code == 0 and len(out.splitlines()) == 3


@pytest.mark.parametrize(("fail_on", "expected"), [("informational", 1), ("high", 1), ("critical", 1),
                                                   ("CRITICAL", 1)])
def test_fail_on_at_or_below_the_alert_severity_exits_1(data: Path, fail_on: str, expected: int) -> None:
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED, "-f", "jsonl", "--flat", "--fail-on", fail_on])
    assert code == expected
    assert len(out.splitlines()) == 3  # alerts are still written


def test_fail_on_above_the_alert_severity_exits_0(data: Path, tmp_path: Path) -> None:
    rule = helpers.seed_rule(tmp_path / "rules", "copy", severity="Medium", exhunt__severity="medium")
    code, out, _ = run_cli(["detect", str(data), "--rules", str(rule), "-f", "jsonl", "--flat", "--fail-on", "high"])
    assert code == 0
    alerts = [json.loads(x) for x in out.splitlines()]
    assert {a["severity"] for a in alerts} == {"medium"}
    code, _, _ = run_cli(["detect", str(data), "--rules", str(rule), "-f", "jsonl", "--flat", "--fail-on", "medium"])
    assert code == 1


def test_fail_on_without_alerts_exits_0(tmp_path: Path) -> None:
    helpers.write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", [helpers.FILE_ROWS[2]])
    code, out, _ = run_cli(["detect", str(tmp_path), "--rules", SEED, "--fail-on", "low"])
    assert code == 0 and "No alerts." in out


@pytest.mark.parametrize("args", [
    ["--fail-on", "severe"],
    ["--format", "xml"],
    ["--now", "yesterday"],
    ["--rules", "no-such-rule"],
    ["--input-format", "nope"],
])
def test_usage_errors_exit_2_with_one_line(data: Path, args: list[str]) -> None:
    code, out, err = run_cli(["detect", str(data), *args])
    assert code == 2
    assert err.startswith("error:") and "Traceback" not in err
    assert out == ""


def test_rule_naming_a_missing_column_exits_2(data: Path, tmp_path: Path) -> None:
    rule = helpers.seed_rule(tmp_path / "rules", "copy",
                             query="DeviceFileEvents | project Timestamp, DeviceName, AccountName")
    code, _, err = run_cli(["detect", str(data), "--rules", str(rule)])
    assert code == 2
    assert "column `AccountName` (line 1, column 51) does not exist in table DeviceFileEvents" in " ".join(err.split())


def test_output_file(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "alerts.json"
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED, "-f", "json", "--flat", "-o", str(target)])
    assert code == 0 and out == ""
    alerts = json.loads(target.read_text(encoding="utf-8"))
    assert [a["DetectionType"] for a in alerts] == [d for _, d, _ in helpers.EXPECTED_DETECTIONS]


def test_alert_fields_and_provenance(data: Path) -> None:
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED, "-f", "jsonl", "--flat"])
    assert code == 0
    alerts = [json.loads(x) for x in out.splitlines()]
    first = alerts[0]
    assert list(first)[:9] == ["alert_id", "rule_id", "rule_name", "severity", "confidence", "tactics",
                               "techniques", "Timestamp", "DeviceName"]
    assert list(first)[-2:] == ["source_file", "source_record"]
    assert first["rule_id"] == "5f0c2a8e-7d1b-4c3e-9a51-2b6e0d4f1a01"
    assert first["severity"] == "critical" and first["confidence"] == "high"
    assert first["techniques"] == ["T1505.002"] and first["tactics"] == ["Persistence"]
    assert first["Timestamp"] == "2026-03-01T10:00:00.123456Z"
    assert first["DeviceName"] == helpers.HOST
    files = data / "DeviceFileEvents_2026-03-04.csv"
    procs = data / "DeviceProcessEvents_2026-03-04.csv"
    assert [(a["FileName"], a["source_file"], a["source_record"]) for a in alerts] == [
        ("evil.dll", str(files), "line 2"),
        ("cmd.exe", str(procs), "line 2"),
        ("pwsh.exe", str(procs), "line 3"),
    ]


def test_alert_ids_are_stable_and_ignore_where_rows_were_read(data: Path, tmp_path: Path) -> None:
    """The same events give the same ids in another run and from a renamed copy of the files;
    a changed event gets another id."""
    def ids(folder: Path) -> list[str]:
        code, out, _ = run_cli(["detect", str(folder), "--rules", SEED, "-f", "jsonl", "--flat", "-q"])
        assert code == 0
        return [json.loads(x)["alert_id"] for x in out.splitlines()]

    first = ids(data)
    assert len(first) == len(set(first)) == 3 and all(len(i) == 16 for i in first)
    assert ids(data) == first
    copy = tmp_path / "renamed"
    copy.mkdir()
    for f in data.iterdir():
        (copy / f.name.replace("2026-03-04", "2026-03-04-reexport")).write_bytes(f.read_bytes())
    assert ids(copy) == first
    procs = copy / "DeviceProcessEvents_2026-03-04-reexport.csv"
    procs.write_text(procs.read_text(encoding="utf-8").replace("-Name 'X'", "-Name 'Y'"), encoding="utf-8")
    changed = ids(copy)
    assert changed[:2] == first[:2] and changed[2] != first[2]


def test_provenance_of_other_formats(tmp_path: Path) -> None:
    expected = {
        "jsonl-rows": ["line 1", "line 1", "line 2"],
        "ah-api-json": ["record 1", "record 1", "record 2"],
        "parquet": ["row 1", "row 1", "row 2"],
        "event-hub": ["record 1", "record 4", "record 5"],
        "event-hub-lines": ["line 1 record 1", "line 2 record 1", "line 2 record 2"],
        "sentinel-export": ["line 1", "line 4", "line 5"],
        "log-analytics-api": ["record 1", "record 4", "record 5"],
    }
    for label, records in expected.items():
        folder = tmp_path / label
        helpers.FORMATS[label][1](folder)
        code, out, _ = run_cli(["detect", str(folder), "--rules", SEED, "-f", "jsonl", "--flat", "-q"])
        assert code == 0
        assert [json.loads(x)["source_record"] for x in out.splitlines()] == records, label


def test_csv_output_has_one_row_per_alert(data: Path) -> None:
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED, "-f", "csv", "--flat"])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["FileName"] for r in rows] == ["evil.dll", "cmd.exe", "pwsh.exe"]
    assert rows[0]["techniques"] == '["T1505.002"]'
    assert rows[1]["ProcessCommandLine"] == helpers.PROCESS_ROWS[0]["ProcessCommandLine"]


def _widths(text: str) -> list[int]:
    return [len(line) for line in text.splitlines()]


def test_detect_table_fits_80_columns(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli(["detect", str(data), "--rules", SEED])
    assert code == 0
    assert max(_widths(out)) <= 80, out
    assert out.startswith("3 incident(s), 3 evidence, 3 alert(s)")
    assert out.count("CRIT") == 6  # each incident's header and its one evidence row
    assert "evil.dll" in out and "Install-TransportAgent" in " ".join(out.split())


QUERY = "DeviceProcessEvents | where ProcessId > 5000 | project Timestamp, FileName, ProcessId, ProcessCommandLine"


def test_query_every_output_format(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    expected = [
        {"Timestamp": "2026-03-01T12:00:00.999999Z", "FileName": "cmd.exe", "ProcessId": 5123,
         "ProcessCommandLine": helpers.PROCESS_ROWS[0]["ProcessCommandLine"]},
        {"Timestamp": "2026-03-03T09:15:00.000000Z", "FileName": "pwsh.exe", "ProcessId": 6001,
         "ProcessCommandLine": helpers.PROCESS_ROWS[1]["ProcessCommandLine"]},
        {"Timestamp": "2026-03-03T09:20:00.000000Z", "FileName": "notepad.exe", "ProcessId": 6002,
         "ProcessCommandLine": "notepad.exe"},
    ]
    outs = {}
    for fmt in ("jsonl", "json", "csv", "table"):
        code, out, err = run_cli(["query", QUERY + " | sort by Timestamp asc", str(data), "-f", fmt])
        assert code == 0, err
        assert "3 row(s)." in err
        outs[fmt] = out
    assert [json.loads(x) for x in outs["jsonl"].splitlines()] == expected
    assert json.loads(outs["json"]) == expected
    rows = list(csv.DictReader(io.StringIO(outs["csv"])))
    assert rows == [{k: str(v) for k, v in e.items()} for e in expected]
    assert max(_widths(outs["table"])) <= 80, outs["table"]
    flat = " ".join(outs["table"].split())
    assert "cmd.exe" in flat and "notepad.exe" in flat and "6001" in flat
    assert outs["table"].splitlines()[0].split()[:3] == ["Timestamp", "FileName", "ProcessId"]


def test_query_errors_exit_2(data: Path) -> None:
    code, _, err = run_cli(["query", "DeviceFileEvents | where NoSuchColumn == 1", str(data)])
    assert code == 2 and "NoSuchColumn" in err and "Traceback" not in err
    code, _, err = run_cli(["query", "NoSuchTable | take 1", str(data)])
    assert code == 2 and "NoSuchTable" in err


def test_query_with_now_pins_ago(data: Path) -> None:
    q = "DeviceProcessEvents | where Timestamp > ago(1d) | project FileName"
    code, out, _ = run_cli(["query", q, str(data), "-f", "jsonl", "-q", "--now", "2026-03-03T12:00:00Z"])
    assert code == 0
    assert [json.loads(x)["FileName"] for x in out.splitlines()] == ["pwsh.exe", "notepad.exe"]


def test_formats_command_lists_every_reader() -> None:
    code, out, _ = run_cli(["formats"])
    assert code == 0
    for name in ("mde-csv", "mde-json", "mde-jsonl", "parquet"):
        assert name in out


def test_alert_id_ignores_empty_columns_a_newer_rule_adds() -> None:
    """A rule that gains a column (empty on events seen before) keeps its alerts' ids; a value in it
    changes the id."""
    from exhunt.alerts import alert_id
    from exhunt.rule import load_rules

    rule = load_rules([SEED])[0]
    alert = {"alert_id": "", "rule_id": rule.id, "Timestamp": "2026-03-01T10:00:00.000000Z",
             "DeviceName": "exch01", "FileName": "evil.dll", "source_file": "a.csv", "source_record": "line 2"}
    first = alert_id(rule, alert)
    assert alert_id(rule, {**alert, "WriterSigner": ""}) == first
    assert alert_id(rule, {**alert, "WriterSigner": None}) == first
    assert alert_id(rule, {**alert, "source_file": "b.csv", "source_record": "line 9"}) == first
    assert alert_id(rule, {**alert, "WriterSigner": "Fabrikam"}) != first
    assert alert_id(rule, {**alert, "FileName": "other.dll"}) != first
