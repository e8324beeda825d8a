"""The same logical events as evtx_dump JSON, Winlogbeat ECS and OTRF JSON give identical rows;
each form is recognised by content; the seed rule fires on a Sysmon 11 DLL write; encoded
PowerShell is decoded at ingest."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport
from winlog_gen import EX1, NAMED, SYSMON1, SYSMON11, Ev, ecs, evtx_json, otrf, write_jsonl

TABLES = ("Event", "SecurityEvent", "DeviceProcessEvents", "DeviceFileEvents", "DeviceImageLoadEvents",
          "DeviceFileCertificateInfo", "DeviceRegistryEvents", "DeviceEvents")


def load(path: Path) -> tuple[Session, list[FileReport]]:
    s = Session(in_memory=True)
    return s, s.load_files(list(sources.walk([path])))


def rows(s: Session, table: str) -> list[tuple[Any, ...]]:
    return s.run(f'SELECT * EXCLUDE (_source_file, _record) FROM "_t_{table}" ORDER BY ALL')


def test_three_forms_give_identical_rows(tmp_path: Path) -> None:
    paths = {
        "evtx-json": write_jsonl(tmp_path / "a.jsonl", [evtx_json(e) for e in NAMED]),
        "winlogbeat-ecs": write_jsonl(tmp_path / "b.ndjson", [ecs(e) for e in NAMED]),
        "otrf-json": write_jsonl(tmp_path / "c.json", [otrf(e) for e in NAMED]),
    }
    results = {}
    for fmt, path in paths.items():
        s, (report,) = load(path)
        assert (report.format, report.read, report.error, dict(report.skipped)) == (fmt, len(NAMED), None, {})
        results[fmt] = {t: rows(s, t) for t in TABLES}
        s.close()
    counts = {t: len(v) for t, v in results["evtx-json"].items()}
    assert counts == {"Event": 9, "SecurityEvent": 1, "DeviceProcessEvents": 2, "DeviceFileEvents": 1,
                      "DeviceImageLoadEvents": 1, "DeviceFileCertificateInfo": 1, "DeviceRegistryEvents": 1,
                      "DeviceEvents": 4}
    assert results["winlogbeat-ecs"] == results["evtx-json"]
    assert results["otrf-json"] == results["evtx-json"]


def test_evtx_dump_pretty_output_and_json_array(tmp_path: Path) -> None:
    pretty = tmp_path / "dump.json"
    pretty.write_text("".join(f"Record {e.record_id}\n{json.dumps(evtx_json(e), indent=2)}\n" for e in NAMED))
    array = tmp_path / "array.json"
    array.write_text(json.dumps([ecs(e) for e in NAMED], indent=1))
    for path, fmt in ((pretty, "evtx-json"), (array, "winlogbeat-ecs")):
        s, (report,) = load(path)
        assert (report.format, report.read, report.error) == (fmt, len(NAMED), None)
        assert s.row_count("DeviceProcessEvents") == 2
        s.close()


def test_sentinel_security_event_export_maps_4688(tmp_path: Path) -> None:
    row = {"TenantId": "0", "TimeGenerated": "2026-03-01T10:03:00Z", "Computer": "EXCH01", "EventID": 4688,
           "Type": "SecurityEvent", "Channel": "Security", "EventSourceName": "Microsoft-Windows-Security-Auditing",
           "Activity": "4688 - A new process has been created.", "NewProcessName": r"C:\Windows\System32\cmd.exe",
           "CommandLine": "cmd /c whoami", "ParentProcessName": r"C:\x\EdgeTransport.exe",
           "SubjectUserName": "svc", "SubjectDomainName": "CONTOSO", "TargetUserSid": "S-1-0-0",
           "NewProcessId": "0x10", "ProcessId_string": "0x20"}
    s, (report,) = load(write_jsonl(tmp_path / "SecurityEvent.json", [row]))
    assert report.format == "sentinel-windows"
    assert s.run('SELECT FileName, InitiatingProcessFileName, AccountName, ProcessId, InitiatingProcessId '
                 'FROM "_t_DeviceProcessEvents"') == [("cmd.exe", "EdgeTransport.exe", "svc", 16, 32)]
    assert s.run('SELECT Activity, CommandLine, EventID FROM "_t_SecurityEvent"') == [
        ("4688 - A new process has been created.", "cmd /c whoami", 4688)]
    s.close()


def test_ecs_positional_exchange_event(tmp_path: Path) -> None:
    s, (report,) = load(write_jsonl(tmp_path / "ex.json", [ecs(EX1)]))
    assert report.format == "winlogbeat-ecs"
    assert s.run('SELECT CmdletName, json_extract_string(Parameters, \'$.AssemblyPath\') '
                 'FROM "_t_ExchangeAdminAuditLogs"') == [
        ("Install-TransportAgent", EX1.data[1].split('-AssemblyPath "')[1].split('"')[0])]
    s.close()


def test_seed_rule_alerts_on_sysmon_11_dll_write_into_agents(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sysmon.jsonl", [evtx_json(SYSMON11)])
    code, out, err = run_cli(["detect", str(path), "--format", "jsonl", "--flat", "--now", "2026-03-01T12:00:00Z"])
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    seed = [a for a in alerts if a["rule_name"] == "Exchange transport agent persistence (seed rule)"]
    assert len(seed) == 1
    assert {k: seed[0][k] for k in ("DetectionType", "FileName", "DeviceName", "AccountName", "source_record")} == {
        "DetectionType": "Exchange_Transport_DLL_Write", "FileName": "msinp.dll",
        "DeviceName": "EXCH01.contoso.local", "AccountName": "exadmin", "source_record": "line 1"}


def test_encoded_command_is_decoded_for_windows_logs_and_defender_rows(tmp_path: Path) -> None:
    script = "Install-TransportAgent -Name Evil"
    blob = base64.b64encode(script.encode("utf-16-le")).decode()
    e = Ev(SYSMON1.source, 1, 999, "2026-03-01T10:00:00Z", {**SYSMON1.data, "CommandLine":  # type: ignore[dict-item]
                                                             f"powershell.exe -nop -enc {blob}"})
    write_jsonl(tmp_path / "sysmon.jsonl", [evtx_json(e)])
    write_jsonl(tmp_path / "DeviceProcessEvents.json", [{
        "Timestamp": "2026-03-01T10:00:00Z", "DeviceName": "x", "ActionType": "ProcessCreated",
        "FileName": "powershell.exe", "ProcessCommandLine": f"powershell -EncodedCommand {blob}",
        "AdditionalFields": '{"a":1}'}, {
        "Timestamp": "2026-03-01T10:00:00Z", "DeviceName": "x", "ActionType": "ProcessCreated",
        "FileName": "powershell.exe", "ProcessCommandLine": "powershell -ExecutionPolicy Bypass -File a.ps1"}])
    s, _ = load(tmp_path)
    got = s.run('SELECT DeviceName, AdditionalFields FROM "_t_DeviceProcessEvents" ORDER BY DeviceName, '
                'AdditionalFields')
    assert [(d, json.loads(a).get("DecodedCommand") if a else None) for d, a in got] == [
        ("EXCH01.contoso.local", script), ("x", None), ("x", script)]
    assert json.loads(got[2][1])["a"] == 1
    s.close()


@pytest.mark.parametrize(("content", "message", "exit_code"), [
    # Nothing in a format exhunt reads: exit 2 (see test_hostile_readers), the file still named.
    (b"", "empty file", 2),
    (b'{"hello": "world", "n": 1}\n', "not a telemetry format exhunt reads (unknown file type)", 2),
    (b'[{"Event": {"System": {"Channel": "Security"', "truncated or invalid JSON", 0),
])
def test_bad_inputs_give_clear_messages(tmp_path: Path, content: bytes, message: str, exit_code: int) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    code, _, err = run_cli(["query", "Event | count", str(path), "--verbose"])
    assert code == exit_code
    assert message in " ".join(err.split())
    assert "Traceback" not in err and "internal error" not in err
