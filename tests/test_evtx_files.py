"""Real .evtx files from the shared public data (skipped when absent), and damaged copies of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session


def _load(path: Path) -> tuple[Session, list]:  # type: ignore[type-arg]
    s = Session(in_memory=True)
    return s, s.load_files(list(sources.walk([path])))


def test_sysmon_log_with_damaged_chunks_is_read_to_the_end(shared_data: Path) -> None:
    s, (report,) = _load(shared_data / "evtx/samples/sysmon.evtx")
    assert (report.format, report.read, report.damaged_chunks, report.error) == ("evtx", 358, 8, None)
    assert dict(report.used) == {"Event": 358, "DeviceProcessEvents": 227, "DeviceFileEvents": 34,
                                 "DeviceRegistryEvents": 32, "DeviceNetworkEvents": 2}
    assert s.run('SELECT FileName, ProcessId, InitiatingProcessFileName, AccountName, SHA1 '
                 'FROM "_t_DeviceProcessEvents" WHERE _record = \'record 1742\'') == [
        ("PING.EXE", 9112, "cmd.exe", "SYSTEM", "ce8e487cb76704fe5fbb821a78a1e969efbe71f9")]
    s.close()


def test_wec_forwarded_msexchange_management_record(shared_data: Path) -> None:
    s, (report,) = _load(shared_data / "evtx/samples/MSExchange_Management_wec.evtx")
    assert dict(report.used) == {"Event": 1, "ExchangeAdminAuditLogs": 1}
    (row,) = s.run('SELECT TimeGenerated::VARCHAR, Computer, EventID, Status, Caller, TargetObject, CmdletName, '
                   'Parameters, RunspaceType, HostProcess FROM "_t_ExchangeAdminAuditLogs"')
    assert row[:7] == ("2021-11-19 16:52:33.833733", "WEC.ave.local", 1, "Success", "ave.local/Users/Administrateur",
                       "Administrateur", "Set-Mailbox")
    assert json.loads(row[7]) == {"Identity": "Administrateur", "DeliverToMailboxAndForward": "False",
                                  "ForwardingSmtpAddress": "smtp:test2@example.com"}
    assert row[8:] == ("Remote-ManagementShell-Unknown", "5668 w3wp#MSExchangePowerShellAppPool")
    assert s.run('SELECT EventID, EventLevel, Source, EventLog FROM "_t_Event"') == [
        (1, 4, "MSExchange CmdletLogs", "MSExchange Management")]
    assert "forêt" in s.run('SELECT RenderedDescription FROM "_t_Event"')[0][0]
    s.close()


def test_powershell_logs_give_powershell_commands(shared_data: Path) -> None:
    path = next((shared_data / "EVTX-to-MITRE-Attack").rglob("*Defender critical features disabled*.evtx"))
    s, (report,) = _load(path)
    assert (report.read, report.used["Event"]) == (50, 50)
    commands = {r[0] for r in s.run(
        "SELECT json_extract_string(AdditionalFields, '$.Command') FROM \"_t_DeviceEvents\" "
        "WHERE ActionType = 'PowerShellCommand'")}
    assert "Set-MpPreference" in commands
    s.close()


def test_security_4688_from_real_log(shared_data: Path) -> None:
    path = next((shared_data / "EVTX-to-MITRE-Attack").rglob("*PSexec remote execution*.evtx"))
    s, (report,) = _load(path)
    assert dict(report.used) == {"Event": 30, "SecurityEvent": 30, "DeviceProcessEvents": 11, "DeviceLogonEvents": 5}
    assert ("PSEXESVC.exe", "services.exe", "SRVDEFENDER01$") in s.run(
        'SELECT FileName, InitiatingProcessFileName, InitiatingProcessAccountName FROM "_t_DeviceProcessEvents"')
    s.close()


def test_truncated_evtx_keeps_whole_chunks_and_says_so(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "evtx/samples/security.evtx").read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[: 4096 + 2 * 65536 + 30000])
    code, _, err = run_cli(["query", "Event | count", str(cut)])
    flat = " ".join(err.split())
    assert code == 0 and "the file ends inside a chunk" in flat and "Traceback" not in err
    s, (report,) = _load(cut)
    assert report.damaged_chunks == 1 and report.error == "file truncated: 2 of 26 chunks present"
    # 177 records of the whole chunks and 31 of the cut one; the rest, up to the header's (stale) next record id.
    assert (report.read, report.used["Event"], dict(report.skipped)) == (2225, 208, {"file truncated": 2017})
    s.close()
    header_only = tmp_path / "header.evtx"
    header_only.write_bytes(data[:3000])
    code, _, err = run_cli(["query", "Event | count", str(header_only)])
    # The only input unreadable: exit 2, nothing was hunted (see test_hostile_readers).
    assert code == 2 and "damaged EVTX file header" in " ".join(err.split()) and "Traceback" not in err


def test_folder_mixing_evtx_json_and_zip_in_one_detect(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "evtx/samples/MSExchange_Management_wec.evtx", tmp_path / "a.evtx")
    (tmp_path / "notes.txt").write_text("not telemetry")
    code, _, err = run_cli(["detect", str(tmp_path), str(shared_data / "Security-Datasets"), "--now",
                            "2021-03-14T12:00:00Z"])
    flat = " ".join(err.split())
    assert code == 0, err
    assert "notes.txt" in flat and "unknown file type" in flat
    assert "otrf-json" in flat and "sentinel-windows" in flat and "evtx" in flat
    assert "Traceback" not in err and "internal error" not in err
