"""`exhunt ingest` writes one Parquet folder per table; detect/query read it back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from exhunt.engine import Session
from exhunt.sources import mde_csv
from helpers import FILE_ROWS, PROCESS_ROWS, write_csv
from winlog_gen import EX1, NAMED, evtx_json, write_jsonl


def test_ingest_then_query_and_detect(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in" / "events.jsonl", [evtx_json(e) for e in [*NAMED, EX1]]) \
        if (tmp_path / "in").mkdir() is None else None
    assert src is not None
    out = tmp_path / "hunt"
    code, _, err = run_cli(["ingest", str(src), "--out", str(out)])
    assert code == 0, err
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert [p.name for p in out.iterdir() if not p.is_dir()] == ["exhunt-manifest.json"]
    assert folders == ["DeviceEvents", "DeviceFileCertificateInfo", "DeviceFileEvents", "DeviceImageLoadEvents",
                       "DeviceProcessEvents", "DeviceRegistryEvents", "Event", "ExchangeAdminAuditLogs",
                       "SecurityEvent"]
    (part,) = list((out / "DeviceFileEvents").glob("part-*.parquet"))
    table = pq.read_table(part)
    assert table.num_rows == 1
    assert {"_source_file", "_record"} <= set(table.column_names)
    assert table.column("_record").to_pylist() == ["line 3"]
    assert table.column("_source_file").to_pylist() == [str(src)]

    code, stdout, err = run_cli(["query", "ExchangeAdminAuditLogs | project CmdletName, "
                                 "P = tostring(parse_json(Parameters).AssemblyPath)", str(out), "-f", "jsonl"])
    assert code == 0, err
    assert [json.loads(line) for line in stdout.splitlines()] == [
        {"CmdletName": "Install-TransportAgent",
         "P": r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents\Hygiene\msinp.dll"}]

    code, stdout, err = run_cli(["detect", str(out), "-f", "jsonl", "--flat", "--now", "2026-03-01T12:00:00Z"])
    alerts = [json.loads(line) for line in stdout.splitlines()]
    seed = [a for a in alerts if a["DetectionType"] == "Exchange_Transport_DLL_Write"]
    assert [(a["FileName"], a["source_file"], a["source_record"]) for a in seed] == [
        ("msinp.dll", str(src), "line 3")]

    code, _, err = run_cli(["ingest", str(src), "--out", str(out)])
    assert code == 2 and "already holds ingested tables" in " ".join(err.split())
    code, _, err = run_cli(["ingest", str(src), "--out", str(out), "--append", "-q"])
    assert code == 0 and len(list((out / "DeviceFileEvents").glob("part-*.parquet"))) == 1  # nothing new
    src.write_text(src.read_text() + "\n")  # changed since: ingested again
    code, _, err = run_cli(["ingest", str(src), "--out", str(out), "--append", "-q"])
    assert code == 0 and len(list((out / "DeviceFileEvents").glob("part-*.parquet"))) == 2


def _tables(folder: Path) -> dict[str, list[dict[str, object]]]:
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        rows = pq.read_table(sub).to_pylist()
        out[sub.name] = sorted(rows, key=lambda r: (str(r["_source_file"]), str(r["_record"])))
    return out


def test_ingest_of_csv_parsed_by_duckdb_equals_arrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest stages large CSV exports with DuckDB's parser; the Parquet written is the same."""
    src = tmp_path / "in"
    src.mkdir()
    write_csv(src / "DeviceFileEvents.csv", "DeviceFileEvents", FILE_ROWS, bom=True)
    write_csv(src / "DeviceProcessEvents.csv", "DeviceProcessEvents", PROCESS_ROWS)
    code, _, err = run_cli(["ingest", str(src), "--out", str(tmp_path / "arrow"), "-q"])
    assert code == 0, err
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)
    staged: list[bool] = []
    stage = Session._stage

    def spy(self: Session, *args: Any) -> bool:
        staged.append(stage(self, *args))
        return staged[-1]

    monkeypatch.setattr(Session, "_stage", spy)
    code, _, err = run_cli(["ingest", str(src), "--out", str(tmp_path / "duckdb"), "-q"])
    assert code == 0, err
    assert staged == [True, True], "both files were stored as DuckDB parsed them"
    arrow, staged = _tables(tmp_path / "arrow"), _tables(tmp_path / "duckdb")
    assert staged == arrow
    assert [r["_record"] for r in arrow["DeviceFileEvents"]] == ["line 2", "line 3", "line 4"]
