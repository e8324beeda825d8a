"""`detect --state/--new-only` and `exhunt alerts list|show|ack|close|reopen` on the command line:
a scheduled run over an append-only export reports each alert once, statuses survive runs,
filters and formats, id prefixes, clear errors, and attacker text shown inert."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import REPO, run_cli
from exhunt import state
from exhunt.statestore import open_store

SEED = "exchange-transport-agent-seed"
DEMO = REPO / "demo"
#: What a terminal must never receive from data.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _jsonl(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """More rows at the end of a Defender CSV export, as an append-only export grows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([helpers.text_value(v) for v in helpers.full("DeviceProcessEvents", row).values()])
    with path.open("ab") as fh:
        fh.write(buf.getvalue().encode("utf-8"))


# -- detect --state -----------------------------------------------------------------


def test_a_scheduled_run_over_an_append_only_export_reports_each_alert_once(tmp_path: Path) -> None:
    export = tmp_path / "DeviceProcessEvents.csv"
    db = tmp_path / "state.db"
    # EdgeTransport.exe starting cmd.exe: one alert of the seed rule.
    helpers.write_csv(export, "DeviceProcessEvents", helpers.PROCESS_ROWS[:1])
    run = ["detect", "--flat", str(export), "--rules", SEED, "--state", str(db), "--new-only", "-f", "jsonl",
           "--fail-on", "high"]
    code, out, err = run_cli(run)
    first = _jsonl(out)
    assert code == 1, err  # a new critical alert: the scheduled job's exit says so
    assert [(a["Timestamp"], a["FileName"]) for a in first] == [("2026-03-01T12:00:00.999999Z", "cmd.exe")]
    assert f"State {db}: 1 new, 0 already known (0 acknowledged, 0 closed)." in err

    # The export grows: Install-TransportAgent from pwsh (one more alert), notepad (none).
    _append(export, helpers.PROCESS_ROWS[1:])
    code, out, err = run_cli(run)
    second = _jsonl(out)
    assert code == 1, err
    assert [(a["Timestamp"], a["FileName"]) for a in second] == [("2026-03-03T09:15:00.000000Z", "pwsh.exe")]
    assert f"State {db}: 1 new, 1 already known (0 acknowledged, 0 closed)." in err

    # Nothing appended: nothing to report, and a clean exit.
    code, out, err = run_cli(run)
    assert (code, out) == (0, "")
    assert f"State {db}: 0 new, 2 already known (0 acknowledged, 0 closed)." in err
    code, out, _ = run_cli([*run[:-4], "-f", "table"])
    assert "No alerts." in out

    # The ids did not change between runs: a full run gives the same two, each seen by 4 runs.
    code, out, _ = run_cli(["detect", "--flat", str(export), "--rules", SEED, "-f", "jsonl"])
    assert [a["alert_id"] for a in _jsonl(out)] == [first[0]["alert_id"], second[0]["alert_id"]]
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "jsonl"])
    assert [(a["alert_id"], a["status"], a["times_seen"]) for a in _jsonl(out)] == [
        (first[0]["alert_id"], "open", 4), (second[0]["alert_id"], "open", 3)]


def test_demo_statuses_survive_runs_and_closed_alerts_do_not_come_back(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    code, out, err = run_cli(["detect", "--flat", str(DEMO), "--state", str(db), "-f", "jsonl"])
    first = _jsonl(out)
    assert code == 0 and len(first) == 38, err
    assert f"State {db}: 38 new, 0 already known (0 acknowledged, 0 closed)." in err
    vendor = [a["alert_id"] for a in first if a.get("AgentName") == "Fabrikam Disclaimer Agent"]
    assert len(vendor) == 2
    code, _, err = run_cli(["alerts", "close", vendor[0], vendor[1][:8], "--state", str(db),
                            "--reason", "approved disclaimer agent, CHG-1042", "--by", "mail-team"])
    assert code == 0, err
    assert err.count(" closed (Exchange transport-agent cmdlet") == 2
    other = next(a["alert_id"] for a in first if a["alert_id"] not in vendor)
    assert run_cli(["alerts", "ack", other, "--state", str(db), "--by", "alice"])[0] == 0

    code, out, err = run_cli(["detect", "--flat", str(DEMO), "--state", str(db), "--new-only", "-f", "jsonl"])
    assert (code, out) == (0, ""), err
    assert f"State {db}: 0 new, 38 already known (1 acknowledged, 2 closed)." in err
    assert "0 alert(s) from 10 rule(s)." in err
    # The second run found the same 38 ids again.
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "json"])
    listed = {a["alert_id"]: a for a in json.loads(out)}
    assert sorted(listed) == sorted(a["alert_id"] for a in first)
    assert {a["times_seen"] for a in listed.values()} == {2}
    assert sorted(a["status"] for a in listed.values()) == ["acknowledged"] + ["closed"] * 2 + ["open"] * 35
    closed = listed[vendor[0]]
    assert (closed["status"], closed["closed_by"], closed["close_reason"], closed["times_seen"]) == (
        "closed", "mail-team", "approved disclaimer agent, CHG-1042", 2)


def test_new_only_needs_a_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    code, out, err = run_cli(["detect", "--flat", str(export), "--rules", SEED, "--new-only"])
    assert (code, out) == (2, "")
    assert err.strip() == "error: --new-only needs --state FILE (or $EXHUNT_STATE): the alerts of earlier runs"
    # $EXHUNT_STATE names the file for detect and for alerts.
    db = tmp_path / "env.db"
    monkeypatch.setenv("EXHUNT_STATE", str(db))
    code, out, err = run_cli(["detect", "--flat", str(export), "--rules", SEED, "--new-only", "-f", "jsonl"])
    assert code == 0 and len(_jsonl(out)) == 2 and f"State {db}: 2 new" in err
    code, out, _ = run_cli(["alerts", "list", "-f", "jsonl"])
    assert len(_jsonl(out)) == 2


def test_alerts_below_min_severity_are_not_recorded(tmp_path: Path) -> None:
    export = helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    rules = tmp_path / "rules"
    helpers.seed_rule(rules, "crit")  # critical
    helpers.seed_rule(rules, "med", id="00000000-0000-4000-8000-00000000a0ed", name="Medium copy",
                      severity="Medium", exhunt__severity="medium")
    db = tmp_path / "state.db"
    args = ["detect", "--flat", str(export), "--rules", str(rules), "--state", str(db), "-f", "jsonl"]
    _, out, err = run_cli([*args, "--min-severity", "high", "--new-only"])
    assert [a["severity"] for a in _jsonl(out)] == ["critical", "critical"]
    assert "2 alert(s) below --min-severity high not shown." in err and "2 new, 0 already known" in err
    # The medium ones were never shown, so they are new to the next run; the critical ones are not.
    _, out, err = run_cli([*args, "--new-only"])
    assert [a["rule_name"] for a in _jsonl(out)] == ["Medium copy", "Medium copy"]
    assert "2 new, 2 already known (0 acknowledged, 0 closed)" in err


@pytest.mark.parametrize("command", [["detect", "--flat", "nowhere.csv"], ["alerts", "list"],
                                     ["alerts", "ack", "abcd"]])
@pytest.mark.parametrize(("make", "said"), [
    (lambda p: p.write_bytes(b"Timestamp,DeviceName\r\n"), "{p} is not an exhunt state file (not a SQLite database)"),
    (lambda p: p.mkdir(), "state file {p} is a folder; give a file name"),
])
def test_a_bad_state_file_is_one_line_before_anything_is_read(tmp_path: Path, command: list[str], make: Any,
                                                             said: str) -> None:
    db = tmp_path / "state.db"
    make(db)
    code, out, err = run_cli([*command, "--state", str(db)])
    assert (code, out) == (2, "")
    assert err.startswith("error: " + said.format(p=db)) and err.count("\n") == 1


def test_a_newer_state_is_refused_by_detect(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(db, create=True) as store:
        store._conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    code, _, err = run_cli(["detect", "--flat", "nowhere.csv", "--state", str(db)])
    assert code == 2 and err.strip() == (f"error: state file {db} was written by a newer exhunt (state schema 2; "
                                         "this exhunt reads up to 1): upgrade exhunt")


def test_alerts_commands_need_a_state_file(tmp_path: Path) -> None:
    code, _, err = run_cli(["alerts", "list"])
    assert code == 2 and err.strip() == "error: give --state FILE (or set EXHUNT_STATE)"
    db = tmp_path / "none.db"
    code, _, err = run_cli(["alerts", "show", "abcd", "--state", str(db)])
    assert code == 2 and f"state file {db} does not exist (`exhunt detect --state {db}` creates it)" in err
    assert not db.exists()


# -- exhunt alerts ---------------------------------------------------------------------


T1, T2, T3 = (f"2026-03-01T10:00:0{n}.000000Z" for n in (1, 2, 3))


def _alert(n: int, **changes: Any) -> dict[str, Any]:
    return {"alert_id": f"{n:016x}", "rule_id": "rule-1", "rule_name": "Rule one", "severity": "high",
            "Timestamp": T1, "DeviceName": "exch01.contoso.local",
            "FileName": f"f{n}.dll", **changes}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Three alerts: two of one rule on exch01 (ids 0...abc1, 0...abc2), one of another on mbx01."""
    path = tmp_path / "state.db"
    with open_store(path, create=True) as store:
        state.record(store, [_alert(0xABC1), _alert(0xABC2, severity="critical", Timestamp=T2)],
                     datetime(2026, 4, 1, 8, tzinfo=UTC))
        state.record(store, [_alert(0xF00D, rule_id="rule-2", rule_name="Other rule", DeviceName="mbx01",
                                    severity="low", Timestamp=T3), _alert(0xABC1)],
                     datetime(2026, 4, 2, 8, tzinfo=UTC))
    return path


A1, A2, B = "000000000000abc1", "000000000000abc2", "000000000000f00d"


def _list(db: Path, *args: str) -> list[tuple[str, str]]:
    code, out, err = run_cli(["alerts", "list", "--state", str(db), "-f", "jsonl", *args])
    assert code == 0, err
    return [(a["alert_id"], a["status"]) for a in _jsonl(out)]


def test_list_filters(db: Path) -> None:
    assert _list(db) == [(A1, "open"), (A2, "new"), (B, "new")]
    assert _list(db, "--status", "new") == [(A2, "new"), (B, "new")]
    assert _list(db, "--status", "open", "--status", "new") == [(A1, "open"), (A2, "new"), (B, "new")]
    assert _list(db, "--rule", "other*") == [(B, "new")] and _list(db, "--rule", "RULE-1") == [(A1, "open"),
                                                                                               (A2, "new")]
    assert _list(db, "--device", "exch01") == [(A1, "open"), (A2, "new")] and _list(db, "--device", "MBX01") == [
        (B, "new")]
    assert _list(db, "--since", "2026-04-02") == [(B, "new")]
    assert _list(db, "--since", "2026-04-02T09:00:00+02:00") == [(B, "new")]  # 07:00 UTC
    assert _list(db, "--since", "2026-04-02T08:00:00.000001Z") == []
    code, _, err = run_cli(["alerts", "list", "--state", str(db), "--status", "closed,done"])
    assert code == 2 and "--status must be one of new, open, acknowledged, closed, not 'done'" in err
    code, _, err = run_cli(["alerts", "list", "--state", str(db), "-f", "xml"])
    assert code == 2 and "--format must be one of table, jsonl, json, csv, not 'xml'" in err


def test_list_formats(db: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "json"])
    rows = json.loads(out)
    assert rows[0] == {
        "alert_id": A1, "status": "open", "severity": "high", "rule_id": "rule-1", "rule_name": "Rule one",
        "DeviceName": "exch01.contoso.local", "Timestamp": "2026-03-01T10:00:01.000000Z",
        "first_seen": "2026-04-01T08:00:00.000000Z", "last_seen": "2026-04-02T08:00:00.000000Z", "times_seen": 2,
        "acknowledged_by": None, "acknowledged_at": None, "closed_by": None, "closed_at": None,
        "close_reason": None, "comment": None}
    target = tmp_path / "list.csv"
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "csv", "-o", str(target)])
    assert code == 0 and out == ""
    table = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [(r["alert_id"], r["severity"], r["times_seen"]) for r in table] == [
        (A1, "high", "2"), (A2, "critical", "1"), (B, "low", "1")]
    code, out, _ = run_cli(["alerts", "list", "--state", str(db)])
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "Status", "Sev", "Device", "Time", "(UTC)", "Rule"]
    assert lines[1].split() == [A1, "open", "HIGH", "exch01", "2026-03-01", "10:00", "Rule", "one"]
    assert lines[2].split()[:3] == [A2, "new", "CRIT"] and lines[3].split()[:4] == [B, "new", "LOW", "mbx01"]
    assert max(len(line) for line in lines) <= 80
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "--status", "closed"])
    assert out == "No alerts.\n"


def test_show_by_id_or_unique_prefix(db: Path) -> None:
    code, out, err = run_cli(["alerts", "show", "000000000000F00", "--state", str(db)])
    assert code == 0, err
    assert out.splitlines()[:8] == [
        f"alert {B}  [new]",
        "  rule          Other rule (rule-2)",
        "  severity      low",
        "  device        mbx01",
        "  time          2026-03-01T10:00:03.000000Z",
        "  first seen    2026-04-02T08:00:00.000000Z (run 2)",
        "  last seen     2026-04-02T08:00:00.000000Z (run 2); seen by 1 run(s)",
        "fields (as the latest run reported them):"]
    assert "  FileName: f61453.dll" in out
    assert out.splitlines()[-2:] == ["history:", "  2026-04-02T08:00:00.000000Z  first seen (run 2)  -> new"]
    code, _, err = run_cli(["alerts", "show", "000000000000abc", "--state", str(db)])
    assert code == 2
    assert err.strip() == f"error: alert id prefix 000000000000abc is ambiguous: {A1}, {A2}; give more digits"
    code, _, err = run_cli(["alerts", "show", "abc", "--state", str(db)])
    assert code == 2 and "'abc' is not an alert id (4 to 16 hex digits" in err
    code, _, err = run_cli(["alerts", "show", "12345678", "--state", str(db)])
    assert code == 2 and f"no alert 12345678 in state file {db}" in err


def test_ack_close_reopen(db: Path) -> None:
    code, _, err = run_cli(["alerts", "ack", A1, A2, "--state", str(db), "--by", "alice", "--comment", "on it"])
    assert code == 0, err
    assert err.splitlines() == [f"{A1} acknowledged (Rule one on exch01.contoso.local)",
                                f"{A2} acknowledged (Rule one on exch01.contoso.local)"]
    assert _list(db, "--status", "acknowledged") == [(A1, "acknowledged"), (A2, "acknowledged")]
    code, _, err = run_cli(["alerts", "close", A1, "--state", str(db)])
    assert code == 2 and "--reason" in err  # a reason is required
    code, _, err = run_cli(["alerts", "close", A1, B[:13], "--state", str(db), "--reason", "false positive",
                            "--by", "bob"])
    assert code == 0, err
    assert _list(db) == [(A1, "closed"), (A2, "acknowledged"), (B, "closed")]
    code, _, err = run_cli(["alerts", "ack", A1, A2, "--state", str(db)])
    assert code == 2
    assert err.strip() == (f"error: cannot mark acknowledged: {A1} is closed (reopen it first); {A2} is already "
                           "acknowledged (by alice) (nothing changed)")
    code, _, err = run_cli(["alerts", "reopen", B, "--state", str(db), "--by", "carol", "--comment", "seen again"])
    assert code == 0 and err.strip() == f"{B} reopened (Other rule on mbx01)"
    code, _, err = run_cli(["alerts", "reopen", B, "--state", str(db)])
    assert code == 2 and f"{B} is open, not acknowledged or closed" in err
    code, out, _ = run_cli(["alerts", "show", A1, "--state", str(db), "-f", "json"])
    shown = json.loads(out)
    assert (shown["status"], shown["acknowledged_by"], shown["closed_by"], shown["close_reason"], shown["comment"]) == (
        "closed", "alice", "bob", "false positive", "on it")
    assert shown["alert"] == _alert(0xABC1)
    history = [(h["action"], h["from_status"], h["to_status"], h["by"], h["note"], h["run"]) for h in shown["history"]]
    assert history == [
        ("first seen", None, "new", None, None, 1), ("seen again", "new", "open", None, None, 2),
        ("acknowledged", "open", "acknowledged", "alice", "on it", None),
        ("closed", "acknowledged", "closed", "bob", "false positive", None)]
    code, out, _ = run_cli(["alerts", "show", B, "--state", str(db)])
    assert out.splitlines()[-3:] == [
        "  2026-04-02T08:00:00.000000Z  first seen (run 2)  -> new",
        out.splitlines()[-2][:29] + "  closed by bob  new -> closed: false positive",
        out.splitlines()[-1][:29] + "  reopened by carol  closed -> open: seen again"]


# -- attacker text -----------------------------------------------------------------------

EVIL = "exch\x1b]0;owned\x07\x1b[2J\u202egnp.exe"
FORMULA = "=HYPERLINK(\"http://x\",\"click\")"


def test_values_from_the_data_and_from_people_are_inert(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(db, create=True) as store:
        state.record(store, [_alert(0xE1, DeviceName=EVIL, rule_name=FORMULA + "\x1b[31m",
                                    ProcessCommandLine="cmd /c \x1b[6n [red]x[/red] \u2066y")])
    code, _, err = run_cli(["alerts", "ack", "00000000000000e1", "--state", str(db), "--by", "ev\x1b[8mil",
                            "--comment", "[link=http://x]hi[/link]\x9b"])
    assert code == 0 and not CONTROL.search(err.replace("\n", "")), repr(err)
    code, table, _ = run_cli(["alerts", "list", "--state", str(db)])
    code, shown, _ = run_cli(["alerts", "show", "00000000000000e", "--state", str(db)])
    for out in (table, shown):
        assert not CONTROL.search(out.replace("\n", "")), repr(out)
    assert "\\x1b]0;owned\\x07" in shown and "\\u202egnp.exe" in shown and "ev\\x1b[8mil" in shown
    assert "[red]x[/red]" in shown and "[link=http://x]hi[/link]\\x9b" in shown
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "csv"])
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["rule_name"] == "'" + FORMULA + "\x1b[31m"  # neutralised for spreadsheets
    code, out, _ = run_cli(["alerts", "list", "--state", str(db), "-f", "jsonl"])
    assert _jsonl(out)[0]["DeviceName"] == EVIL and _jsonl(out)[0]["acknowledged_by"] == "ev\x1b[8mil"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_run_whose_output_fails_records_nothing(tmp_path: Path) -> None:
    """Alerts are recorded once written: a run that could not report them must not hide them
    from the next one."""
    export = helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    db = tmp_path / "state.db"
    code, _, err = run_cli(["detect", "--flat", str(export), "--rules", SEED, "--state", str(db), "--new-only",
                            "-o", "/dev/full"])
    assert code == 2 and "cannot write /dev/full" in err and "State " not in err
    assert _list(db) == []
    code, out, _ = run_cli(["detect", "--flat", str(export), "--rules", SEED, "--state", str(db), "--new-only",
                            "-f", "jsonl"])
    assert len(_jsonl(out)) == 2
