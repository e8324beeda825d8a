"""Provenance of alerts from rules that project: found again by the values the rows kept,
exactly (file and line/record), for many alerts at once and whatever the values' shapes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import run_cli
from helpers import file_rule, write_csv, write_jsonl, write_parquet

EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents"
START = datetime(2026, 5, 1)


def _file_row(k: int, alert: bool) -> dict[str, Any]:
    """DeviceFileEvents row k: a DLL written by powershell.exe under the agents folder (an
    alert of the seed rule) or a text file beside it. Ten alerts share each second, and
    every third has no command line, so the alerts' values come in two shapes."""
    name = f"agent{k}.dll" if alert else f"note{k}.txt"
    return {"Timestamp": (START + timedelta(seconds=k // 10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "DeviceName": f"exch0{k % 3}.contoso.local", "ActionType": "FileCreated", "FileName": name,
            "FolderPath": f"{EXCH}\\{name}", "InitiatingProcessFileName": "powershell.exe",
            "InitiatingProcessCommandLine": "" if k % 3 == 0 else f"powershell.exe -File d{k}.ps1",
            "InitiatingProcessAccountName": "exadmin", "ReportId": k}


def _process_row(k: int) -> dict[str, Any]:
    """DeviceProcessEvents row k: cmd.exe started by EdgeTransport.exe (an alert of the seed rule)."""
    return {"Timestamp": (START + timedelta(seconds=k // 10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "DeviceName": f"exch0{k % 3}.contoso.local", "ActionType": "ProcessCreated", "FileName": "cmd.exe",
            "ProcessCommandLine": f"cmd.exe /c whoami {k}", "AccountName": "network service",
            "InitiatingProcessFileName": "EdgeTransport.exe", "InitiatingProcessCommandLine": "EdgeTransport.exe",
            "ReportId": 100_000 + k}


def _interleaved(ks: range) -> list[dict[str, Any]]:
    return [row for k in ks for row in (_file_row(k, True), _file_row(k, False))]


def test_provenance_is_exact_for_thousands_of_alerts(tmp_path: Path) -> None:
    """2,000 file alerts in JSON lines, Parquet and CSV (each alert's row followed by a row that
    does not alert), 200 process alerts, and a later file repeating one alerting row: every
    alert names its own file and record, the repeated row its first one."""
    src = tmp_path / "in"
    src.mkdir()
    jsonl = write_jsonl(src / "DeviceFileEvents_a.jsonl", "DeviceFileEvents", _interleaved(range(0, 1000)))
    parquet = write_parquet(src / "DeviceFileEvents_b.parquet", "DeviceFileEvents", _interleaved(range(1000, 1500)))
    csv = write_csv(src / "DeviceFileEvents_c.csv", "DeviceFileEvents", _interleaved(range(1500, 2000)))
    write_jsonl(src / "DeviceFileEvents_d.jsonl", "DeviceFileEvents", [_file_row(5, True)])
    procs = write_jsonl(src / "DeviceProcessEvents_e.jsonl", "DeviceProcessEvents",
                        [_process_row(k) for k in range(200)])
    want: dict[str, tuple[str, str]] = {}
    for k in range(2000):
        i = 2 * (k % 1000 if k < 1000 else k % 500)  # 0-based row of agent<k>.dll in its file
        where = (str(jsonl), f"line {i + 1}") if k < 1000 else \
            (str(parquet), f"row {i + 1}") if k < 1500 else (str(csv), f"line {i + 2}")
        want[f"agent{k}.dll"] = where
    for k in range(200):
        want[f"cmd.exe /c whoami {k}"] = (str(procs), f"line {k + 1}")

    code, out, err = run_cli(["detect", str(src), "-r", "exchange-transport-agent-seed", "-f", "jsonl", "--flat", "-q",
                              "-j", "1"])
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    got = {a.get("ProcessCommandLine") or a["FileName"]: (a["source_file"], a["source_record"]) for a in alerts}
    assert len(alerts) == len(got) == 2200
    assert got == want


RULE = file_rule(
    "00000000-0000-4000-8000-00000000a11e", "Renamed values",
    "A rule that makes a column of a table's name out of other values.",
    'DeviceFileEvents\n| extend ReportId = strcat("r-", tostring(ReportId)), FileSize = FileName\n'
    "| project Timestamp, DeviceName, FileName, ReportId, FileSize")


def test_values_a_rule_made_do_not_stop_the_run(tmp_path: Path) -> None:
    """A projected column named like a table column but holding text where the table stores a
    number (`ReportId = strcat(...)`) used to end detect with an internal error (DuckDB could
    not cast 'r-1' to a number); such values are not the stored ones and are not compared."""
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE, encoding="utf-8")
    data = write_jsonl(tmp_path / "DeviceFileEvents.jsonl", "DeviceFileEvents",
                       [_file_row(k, k % 2 == 0) for k in range(4)])
    code, out, err = run_cli(["detect", str(data), "-r", str(rule), "-f", "jsonl", "--flat", "-q"])
    assert code == 0, err
    got = sorted((a["FileName"], a["ReportId"], a["source_record"]) for a in map(json.loads, out.splitlines()))
    assert got == [("agent0.dll", "r-0", "line 1"), ("agent2.dll", "r-2", "line 3"),
                   ("note1.txt", "r-1", "line 2"), ("note3.txt", "r-3", "line 4")]
