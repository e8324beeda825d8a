"""Generator features a long, mixed story needs (the demo's, scripts/demo/exch01.yaml): steps `at` a time
from the start and days in `after`, `seen_by` (a step only some collectors recorded), a process's
recorded `pid`, a written file's signature, a script block logged in parts, an event's rendered
message, and `Simulation.only` (one file holding one table or one channel of the run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exhunt.errors import UsageError
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.formats._defender import rows
from exhunt.simulate.formats.evtx_json import documents
from exhunt.simulate.scenario import parse

START = datetime(2026, 11, 20, tzinfo=UTC)
HEAD = "id: t\ntitle: t\nkind: benign\nsteps:\n"
CONFIG = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\Shared\agents.config"


def _sim(steps: str, **kw: object):  # type: ignore[no-untyped-def]
    return generate([parse(HEAD + steps, Path("t.yaml"))], start=START, **kw)  # type: ignore[arg-type]


def _error(steps: str) -> str:
    with pytest.raises(UsageError) as exc:
        _sim(steps)
    return str(exc.value)


def _sysmon(sim) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [d["Event"] for d in documents(sim) if d["Event"]["System"]["Channel"].endswith("Sysmon/Operational")]


# -- time: `at` and days ------------------------------------------------------------------------


def test_at_places_a_step_exactly_and_after_counts_on_from_it() -> None:
    sim = _sim(
        "  - at: 1.02:04:47.3\n    file: {action: created, path: 'C:\\a.txt'}\n"
        "  - after: 2d\n    file: {action: created, path: 'C:\\b.txt'}\n"
    )
    times = [e.time for e in sim.events if e.kind == "file"]
    assert times[0] == datetime(2026, 11, 21, 2, 4, 47, 300000, tzinfo=UTC)
    assert datetime(2026, 11, 23, 2, 4, 47, 300000, tzinfo=UTC) < times[1] < datetime(
        2026, 11, 23, 2, 4, 48, 300000, tzinfo=UTC)  # two days, plus under a second of jitter
    assert rows(sim)["DeviceFileEvents"][0]["Timestamp"] == "2026-11-21T02:04:47.3000000Z"


def test_at_that_goes_back_in_time_names_the_file_and_line() -> None:
    msg = _error("  - at: 0.10:00:00\n    file: {action: created, path: 'C:\\a'}\n"
                 "  - at: 0.09:00:00\n    file: {action: created, path: 'C:\\b'}\n")
    assert msg.startswith("t.yaml:7: step step2: at 2026-11-20 09:00:00.000000 is before the step above it")


@pytest.mark.parametrize(("step", "said"), [
    ("  - at: 25:00:00\n    file: {action: created, path: 'C:\\a'}\n", "t.yaml:5: at: not a time span"),
    ("  - at: tomorrow\n    file: {action: created, path: 'C:\\a'}\n", "t.yaml:5: at: not a time span"),
    ("  - at: 01:00:00\n    after: 2s\n    file: {action: created, path: 'C:\\a'}\n", "not both"),
    ("  - seen_by: splunk\n    file: {action: created, path: 'C:\\a'}\n", "seen_by: one or more of"),
    ("  - process: {image: 'C:\\x.exe', command_line: x, pid: 4001}\n", "pid: a process id above 4, a multiple of 4"),
    ("  - script_block: {text: x, by: edge, level: 2}\n", "script_block level: 5 (verbose) or 3"),
])
def test_bad_story_keys_are_usage_errors(step: str, said: str) -> None:
    assert said in _error(step)


# -- who saw it ---------------------------------------------------------------------------------


def test_seen_by_keeps_a_step_out_of_the_other_collectors() -> None:
    sim = _sim(
        f"  - seen_by: windows\n    file: {{action: modified, path: '{CONFIG}'}}\n"
        "  - seen_by: defender\n    file: {action: created, path: 'C:\\Windows\\Temp\\d.dll'}\n"
        "  - file: {action: created, path: 'C:\\Windows\\Temp\\both.dll'}\n"
    )
    assert [r["FileName"] for r in rows(sim)["DeviceFileEvents"]] == ["d.dll", "both.dll"]
    assert [e["EventData"]["TargetFilename"] for e in _sysmon(sim)] == [CONFIG, r"C:\Windows\Temp\both.dll"]


def test_seen_by_exchange_only_reaches_the_admin_audit_log(tmp_path: Path) -> None:
    sim = _sim("  - seen_by: windows\n    cmdlet_log: {cmdlet: Install-TransportAgent, params: -Name x}\n"
               "  - cmdlet_log: {cmdlet: Enable-TransportAgent, params: -Identity x}\n")
    [path] = writers()["exchange-admin-audit"].write(sim, tmp_path)
    text = path.read_text(encoding="utf-8-sig")
    assert "Enable-TransportAgent" in text and "Install-TransportAgent" not in text


# -- what a step records ------------------------------------------------------------------------


def test_a_process_keeps_its_recorded_pid_and_its_children_point_at_it() -> None:
    sim = _sim("  - process: {name: p, image: 'C:\\Windows\\System32\\cmd.exe', command_line: cmd, pid: 6604}\n"
               "  - file: {action: created, path: 'C:\\out.txt', by: p}\n")
    dpe = rows(sim)["DeviceProcessEvents"][0]
    assert dpe["ProcessId"] == 6604
    assert rows(sim)["DeviceFileEvents"][0]["InitiatingProcessId"] == 6604
    assert _sysmon(sim)[0]["EventData"]["ProcessId"] == 6604


def test_a_written_file_s_signature_is_a_certificate_row_once() -> None:
    sim = _sim("  - file: {action: created, path: 'C:\\v\\a.dll', sha1: aa11, signer: 'Fabrikam, Inc.'}\n"
               "  - file: {action: modified, path: 'C:\\v\\a.dll', sha1: aa11, signer: 'Fabrikam, Inc.'}\n"
               "  - file: {action: created, path: 'C:\\v\\b.dll', sha1: bb22, signed: false}\n"
               "  - file: {action: created, path: 'C:\\v\\c.txt', sha1: cc33}\n")
    certs = rows(sim)["DeviceFileCertificateInfo"]
    assert [(c["SHA1"], c["IsSigned"], c["Signer"], c["Issuer"]) for c in certs] == [
        ("aa11", True, "Fabrikam, Inc.", "Fabrikam, Inc. CA"), ("bb22", False, "", "")]


def test_a_script_block_in_parts_is_logged_as_numbered_records_of_one_block() -> None:
    sim = _sim("  - process: {name: ps, image: '${ps}', command_line: powershell.exe}\n"
               "  - script_block: {by: ps, level: 3, text: ['part one; ', 'part two']}\n")
    blocks = [d["Event"] for d in documents(sim) if d["Event"]["System"]["EventID"] == 4104]
    assert [(b["EventData"]["MessageNumber"], b["EventData"]["MessageTotal"], b["EventData"]["ScriptBlockText"],
             b["System"]["Level"]) for b in blocks] == [(1, 2, "part one; ", 3), (2, 2, "part two", 3)]
    assert blocks[0]["EventData"]["ScriptBlockId"] == blocks[1]["EventData"]["ScriptBlockId"]
    [ev] = [e for e in sim.events if e.kind == "script_block"]
    assert ev.data["text"] == "part one; part two"


def test_an_event_s_message_reaches_the_collectors_that_render_one(tmp_path: Path) -> None:
    sim = _sim("  - event_log: {channel: Application, provider: MSExchangeTransport, event_id: 7001,"
               " params: [a, b], message: The service will be stopped.}\n  - service_restart: {}\n")
    [path] = writers()["winlogbeat-ecs"].write(sim, tmp_path)
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(d["winlog"]["event_id"], d.get("message")) for d in docs if d["winlog"]["channel"] != "Security"
            and "Sysmon" not in d["winlog"]["channel"]] == [
        ("7001", "The service will be stopped."),
        ("7036", "The Microsoft Exchange Transport service entered the stopped state."),
        ("7036", "The Microsoft Exchange Transport service entered the running state."),
    ]
    # evtx_dump renders no message: the record is as it was
    assert all("message" not in json.dumps(d["Event"]["System"]) for d in documents(sim))


# -- one file, one part of the run ----------------------------------------------------------------


def test_only_keeps_tables_channels_and_ids_and_the_numbering_of_the_whole_log(tmp_path: Path) -> None:
    sim = _sim("  - process: {name: p, image: 'C:\\Windows\\System32\\cmd.exe', command_line: cmd}\n"
               "  - file: {action: created, path: 'C:\\out.txt', by: p}\n"
               "  - file: {action: created, path: 'C:\\out2.txt', by: p}\n")
    assert list(rows(sim.only(tables=["DeviceFileEvents"]))) == ["DeviceFileEvents"]
    whole = [d["Event"]["System"] for d in documents(sim)]
    part = [d["Event"]["System"] for d in documents(sim.only(channels=["Microsoft-Windows-Sysmon/Operational"],
                                                             event_ids=[11]))]
    assert [(s["EventID"], s["EventRecordID"]) for s in part] == [
        (s["EventID"], s["EventRecordID"]) for s in whole if s["EventID"] == 11 and "Sysmon" in s["Channel"]]
    assert len(part) == 2 and part[0]["EventRecordID"] > min(s["EventRecordID"] for s in whole)
    written = writers()["mde-csv"].write(sim.only(tables=["DeviceProcessEvents"]), tmp_path)
    assert [p.name for p in written] == ["DeviceProcessEvents.csv"]


def test_a_restart_of_a_stopped_service_only_logs_it_running() -> None:
    steps = "  - service_restart: {}\n  - service_restart: {was_stopped: true}\n"
    states = [e.data["params"]["param2"] for e in _sim(steps).events if e.kind == "event_log"]
    assert states == ["stopped", "running", "running"]


def test_check_says_n_a_for_a_format_whose_collectors_did_not_see_the_steps() -> None:
    from exhunt.simulate.check import check

    sc = parse(HEAD + "  - id: child\n    seen_by: windows\n    process: {image: 'C:\\Windows\\System32\\cmd.exe',"
               " command_line: 'cmd /C ipconfig', parent: edge, user: NETWORK SERVICE}\n"
               "expect:\n  alert:\n    - {rule: exchange-transport-process-child, steps: [child]}\n",
               Path("t.yaml"))
    [defender] = check(sc, "mde-csv")
    assert (defender.applies, defender.text) == (False, "exchange-transport-process-child alerts on child: n/a"
                                                 " (none of its steps is seen by defender collectors (seen_by))")
    windows = check(sc, "evtx-json")
    assert (windows[0].ok, windows[0].text) == (True, "exchange-transport-process-child alerts on child")


def test_an_evtx_document_does_not_share_its_data_with_the_caller() -> None:
    from exhunt.simulate.formats.evtx_json import document

    items = ["Install-TransportAgent", "-Name x"]
    named = {"Image": "a.exe"}
    doc = document(("MSExchange Management", "MSExchange CmdletLogs"), 1, 7, "2026-03-01T10:00:00Z", items, "h")
    doc["Event"]["EventData"]["Data"]["#text"][1] = "edited"
    other = document(("S", "P"), 1, 8, "2026-03-01T10:00:00Z", named, "h")
    other["Event"]["EventData"]["Image"] = "edited"
    assert items == ["Install-TransportAgent", "-Name x"] and named == {"Image": "a.exe"}
    assert "Execution" not in doc["Event"]["System"]
