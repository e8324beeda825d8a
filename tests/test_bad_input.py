"""Bad input: each problem is named with its file and line or record, the rest is still
read, the run summary counts it, there is no traceback, and --strict exits 2."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers
from conftest import run_cli

SEED = "exchange-transport-agent-seed"


def csv_text(name: str, rows: list[dict[str, object]]) -> str:
    """A portal-style CSV export of `rows` as text (CRLF)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(helpers.columns(name))
    for r in rows:
        w.writerow([helpers.text_value(v) for v in helpers.full(name, r).values()])
    return buf.getvalue()


def _malformed_csv(folder: Path) -> Path:
    lines = csv_text("DeviceFileEvents", [helpers.FILE_ROWS[0], helpers.FILE_ROWS[2]]).split("\r\n")
    lines.insert(2, "2026-03-01T10:30:00Z,,exch01,FileCreated,too-few-fields.dll")  # becomes line 3
    path = folder / "DeviceFileEvents.csv"
    path.write_text("\r\n".join(lines), encoding="utf-8")
    return path


def _bad_timestamp(folder: Path) -> Path:
    bad = dict(helpers.FILE_ROWS[0], Timestamp="2026-13-45T99:00:00Z", FileName="late.dll")
    path = folder / "DeviceFileEvents.csv"
    path.write_text(csv_text("DeviceFileEvents", [helpers.FILE_ROWS[0], bad, helpers.FILE_ROWS[2]]), encoding="utf-8")
    return path


def _truncated_document(folder: Path) -> Path:
    path = helpers.write_ah_api(folder / "api-result.json", "DeviceFileEvents", helpers.FILE_ROWS)
    text = path.read_text(encoding="utf-8")
    cut = text.index('"ReportId": 13')  # inside the third result
    path.write_text(text[:cut], encoding="utf-8")
    return path


def _truncated_line(folder: Path) -> Path:
    path = helpers.write_streaming_storage(folder / "PT1H.json", "DeviceFileEvents", helpers.FILE_ROWS)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) - 40], encoding="utf-8")  # the last record loses its end
    return path


def _wrong_type(folder: Path) -> Path:
    row = helpers.full("DeviceFileEvents", helpers.FILE_ROWS[0])
    row["InitiatingProcessId"] = "abc"
    path = folder / "DeviceFileEvents.jsonl"
    other = helpers.full("DeviceFileEvents", helpers.FILE_ROWS[2])
    path.write_text(json.dumps(row) + "\n" + json.dumps(other) + "\n", encoding="utf-8")
    return path


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return write


@dataclass
class Case:
    write: Callable[[Path], Path]
    #: a regex the summary must contain (it names the file and where)
    message: str
    #: (read, used, skipped) over the bad file
    counts: tuple[int, int, int]
    #: alerts the bad file still gives (evil.dll survives in every damaged file)
    alerts_from_bad_file: int


CASES = {
    "malformed-csv-row": Case(_malformed_csv, r"DeviceFileEvents\.csv:line 3: skipped: malformed CSV line: "
                              r"expected \d+ fields, found 5", (3, 2, 1), 1),
    "bad-timestamp": Case(_bad_timestamp, r"DeviceFileEvents\.csv:line 3: skipped: bad Timestamp: "
                          r"'2026-13-45T99:00:00Z' is not a date-time", (3, 2, 1), 1),
    "truncated-json-document": Case(_truncated_document, r"api-result\.json:line \d+: skipped: truncated or "
                                    r"invalid JSON: .*kept the 2 complete records before it", (3, 2, 1), 1),
    "truncated-json-line": Case(_truncated_line, r"PT1H\.json:line 3: skipped: truncated JSON line", (3, 2, 1), 1),
    "wrong-typed-value": Case(_wrong_type, r"DeviceFileEvents\.jsonl:line 1: InitiatingProcessId value 'abc' is "
                              r"not a valid InitiatingProcessId value; kept the row", (2, 2, 0), 1),
    "not-telemetry-text": Case(_write("README.txt", b"These are my notes.\nNothing to see.\n"),
                               r"README\.txt: not a telemetry format", (0, 0, 0), 0),
    "not-telemetry-json": Case(_write("settings.json", b'{"theme": "dark", "size": [1, 2]}\n'),
                               r"settings\.json: not a telemetry format", (0, 0, 0), 0),
    "not-telemetry-csv": Case(_write("people.csv", b"name,age\r\nbob,3\r\n"),
                              r"people\.csv: not Defender telemetry: .*header \(name, age\) matches no table",
                              (0, 0, 0), 0),
    "empty-file": Case(_write("DeviceFileEvents.csv", b""), r"DeviceFileEvents\.csv: empty file", (0, 0, 0), 0),
}


def _setup(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    """The bad file beside a good process export (two alerts) that must still be read."""
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = case.write(bad_dir)
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    return bad, tmp_path


@pytest.mark.parametrize("label", sorted(CASES))
def test_bad_input_is_named_counted_and_survived(label: str, tmp_path: Path) -> None:
    case = CASES[label]
    bad, folder = _setup(tmp_path, case)
    code, out, err = run_cli(["detect", str(folder), "--rules", SEED, "--format", "jsonl", "--flat"])
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err
    flat = " ".join(err.split())  # the summary wraps long lines
    assert re.search(case.message, flat), err
    assert str(bad.parent) in flat  # the message names the file by its path
    alerts = [json.loads(line) for line in out.splitlines()]
    from_bad = [a for a in alerts if a["source_file"] == str(bad)]
    from_good = [a for a in alerts if a["source_file"].endswith("DeviceProcessEvents.csv")]
    assert len(from_bad) == case.alerts_from_bad_file
    assert [a["FileName"] for a in from_good] == ["cmd.exe", "pwsh.exe"]
    if from_bad:
        assert from_bad[0]["FileName"] == "evil.dll"
    read, used, skipped = case.counts
    assert f"Total: {read + 3} records read, {used + 3} used, {skipped} skipped." in flat
    code, out, err = run_cli(["detect", str(folder), "--rules", SEED, "--format", "jsonl", "--flat", "--strict"])
    assert code == 2
    assert "--strict" in err and "Traceback" not in err


def test_clean_input_passes_strict(tmp_path: Path) -> None:
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    code, out, _ = run_cli(["detect", str(tmp_path), "--rules", SEED, "--format", "jsonl", "--flat", "--strict"])
    assert code == 0 and len(out.splitlines()) == 2


def test_many_bad_rows_are_counted_past_the_messages_kept(tmp_path: Path) -> None:
    """Counts are exact even when only the first messages are quoted."""
    rows = [dict(helpers.FILE_ROWS[2], ReportId=i, Timestamp="not a time" if i % 2 else "2026-03-01T00:00:00Z")
            for i in range(100)]
    helpers.write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", rows)
    code, _, err = run_cli(["detect", str(tmp_path), "--rules", SEED, "--format", "jsonl", "--flat"])
    flat = " ".join(err.split())
    assert code == 0
    assert "Total: 100 records read, 50 used, 50 skipped." in flat
    assert "skipped 50: bad Timestamp" in flat
    assert "more (use --verbose)" in flat
    assert "DeviceFileEvents.csv:line 3: skipped: bad Timestamp: 'not a time'" in flat


def test_damaged_csv_tail_after_many_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed line deep in a file read in many blocks: the lines before and after keep their numbers."""
    from exhunt.sources import mde_csv

    monkeypatch.setattr(mde_csv, "BLOCK_SIZE", 2048)
    rows = [dict(helpers.FILE_ROWS[2], ReportId=i) for i in range(200)]
    lines = csv_text("DeviceFileEvents", rows).split("\r\n")
    lines.insert(151, "broken,line")  # physical line 152
    lines.insert(160, "")  # a blank line (line 161) is not a record
    (tmp_path / "DeviceFileEvents.csv").write_text("\r\n".join(lines), encoding="utf-8")
    code, out, err = run_cli(["query", "DeviceFileEvents | project ReportId, Timestamp", str(tmp_path),
                              "--format", "jsonl"])
    flat = " ".join(err.split())
    assert code == 0
    assert "DeviceFileEvents.csv:line 152: skipped: malformed CSV line: expected" in flat
    assert "Total: 201 records read, 200 used, 1 skipped." in flat
    from exhunt.engine import Session
    from exhunt.sources import walk

    with Session(in_memory=True) as s:
        s.load_files(walk([tmp_path]))
        got = dict(s.run('SELECT ReportId, _record FROM "_t_DeviceFileEvents"'))
    expected = {i: f"line {i + 2 + (i >= 150) + (i >= 158)}" for i in range(200)}
    assert got == expected
    assert len(out.splitlines()) == 200


def test_unreadable_path_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run_cli(["detect", str(tmp_path / "missing"), "--rules", SEED])
    assert code == 2 and "no such file or folder" in " ".join(err.split()) and "Traceback" not in err
