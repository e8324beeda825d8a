"""Alerts remembered across runs (exhunt.state on exhunt.statestore): the lifecycle, the file's
guards (not a state, newer, read-only, locked, 0600), values bound as parameters, and atomicity:
a process killed inside a transaction, and `detect --state` killed at several moments, leave
the state exactly as before (or after) and the next run works."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import REPO, run_cli
from exhunt import state, statestore
from exhunt.errors import UsageError
from exhunt.state import ACKNOWLEDGED, CLOSED, NEW, OPEN
from exhunt.statestore import open_store

T1 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T1 + timedelta(hours=2)


def _alert(n: int, **changes: Any) -> dict[str, Any]:
    """An alert as detect builds it, with id `n` in hex."""
    return {"alert_id": f"{n:016x}", "rule_id": "rule-1", "rule_name": "Rule one", "severity": "high",
            "confidence": "high", "tactics": ["Persistence"], "techniques": ["T1505.002"],
            "Timestamp": f"2026-03-01T10:00:{n % 60:02d}.000000Z", "DeviceName": "exch01.contoso.local",
            "FileName": f"f{n}.dll", "source_file": "x.csv", "source_record": n, **changes}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def _dump(path: Path) -> dict[str, Any]:
    """Everything in a state file, with PRAGMA integrity_check."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {"integrity": conn.execute("PRAGMA integrity_check").fetchall(),
                **{t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                   for t in ("meta", "runs", "alerts", "history")}}


# -- the lifecycle -----------------------------------------------------------------


def test_record_new_then_seen_again_is_open_and_counts_runs(db: Path) -> None:
    with open_store(db, create=True) as store:
        first = state.record(store, [_alert(1), _alert(2)], T1)
        second = state.record(store, [_alert(2, FileName="f2-later.dll"), _alert(3)], T2)
        got = {t.alert_id: t for t in store.everything()}
        history = store.history(f"{2:016x}")
    assert (first.new, first.known) == ([f"{1:016x}", f"{2:016x}"], {})
    assert (second.new, second.known) == ([f"{3:016x}"], {f"{2:016x}": NEW})
    assert second.line() == "1 new, 1 already known (0 acknowledged, 0 closed)"
    one, two, three = (got[f"{n:016x}"] for n in (1, 2, 3))
    assert (one.status, one.times_seen, one.first_seen, one.last_seen) == (NEW, 1, state.stamp(T1), state.stamp(T1))
    assert (two.status, two.times_seen, two.first_seen, two.last_seen) == (OPEN, 2, state.stamp(T1), state.stamp(T2))
    assert (two.first_run, two.last_run, three.first_run) == (1, 2, 2)
    # The stored alert is the latest sighting, whole (provenance included).
    assert two.alert == _alert(2, FileName="f2-later.dll")
    assert (two.rule_id, two.rule_name, two.severity, two.device, two.timestamp) == (
        "rule-1", "Rule one", "high", "exch01.contoso.local", "2026-03-01T10:00:02.000000Z")
    # Seen again, with a field changed (where it was read does not count).
    assert [(c.action, c.from_status, c.to_status, c.run_id, c.note) for c in history] == [
        ("first seen", None, NEW, 1, None), ("seen again", NEW, OPEN, 2, None),
        ("changed", OPEN, OPEN, 2, "fields changed: FileName")]


def test_an_id_twice_in_one_run_is_one_sighting(db: Path) -> None:
    with open_store(db, create=True) as store:
        got = state.record(store, [_alert(1), _alert(1, FileName="again.dll")], T1)
        (t,) = store.everything()
    assert got.new == [f"{1:016x}"] and t.times_seen == 1 and t.alert["FileName"] == "again.dll"


def test_acknowledged_and_closed_alerts_stay_so_when_seen_again(db: Path) -> None:
    a, b, c = (f"{n:016x}" for n in (1, 2, 3))
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1), _alert(2), _alert(3)], T1)
        state.acknowledge(store, [a], by="alice", comment="looking", when=T2)
        state.close(store, [b], reason="approved change CHG-1042", by="bob", when=T2)
        seen = state.record(store, [_alert(1), _alert(2, Stage="later", source_record=99), _alert(3)], T3)
        got = {t.alert_id: t for t in store.everything()}
        history = store.history(b)
    assert seen.line() == "0 new, 3 already known (1 acknowledged, 1 closed)"
    assert (got[a].status, got[a].acked_by, got[a].acked_at, got[a].comment) == (
        ACKNOWLEDGED, "alice", state.stamp(T2), "looking")
    assert (got[b].status, got[b].closed_by, got[b].close_reason, got[b].times_seen, got[b].last_seen) == (
        CLOSED, "bob", "approved change CHG-1042", 2, state.stamp(T3))
    assert got[c].status == OPEN
    assert [(h.action, h.from_status, h.to_status, h.note) for h in history[-1:]] == [
        ("changed", CLOSED, CLOSED, "fields changed: Stage")]


def test_ack_close_reopen_transitions_and_history(db: Path) -> None:
    a = f"{1:016x}"
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1)], T1)
        state.acknowledge(store, [a], by="alice", when=T2)
        with pytest.raises(UsageError, match=f"{a} is already acknowledged \\(by alice\\)"):
            state.acknowledge(store, [a], by="carol")
        state.close(store, [a[:6]], reason="false positive", by="bob", when=T2)
        with pytest.raises(UsageError, match=f"{a} is closed \\(reopen it first\\)"):
            state.acknowledge(store, [a])
        with pytest.raises(UsageError, match="already closed"):
            state.close(store, [a], reason="again")
        (reopened,) = state.reopen(store, [a], by="carol", comment="came back", when=T3)
        with pytest.raises(UsageError, match=f"{a} is open, not acknowledged or closed"):
            state.reopen(store, [a])
        history = store.history(a)
    assert (reopened.status, reopened.acked_by, reopened.closed_by, reopened.close_reason, reopened.comment) == (
        OPEN, None, None, None, "came back")
    assert [(c.action, c.from_status, c.to_status, c.actor, c.note) for c in history] == [
        ("first seen", None, NEW, None, None),
        ("acknowledged", NEW, ACKNOWLEDGED, "alice", None),
        ("closed", ACKNOWLEDGED, CLOSED, "bob", "false positive"),
        ("reopened", CLOSED, OPEN, "carol", "came back")]


def test_close_needs_a_reason_and_by_defaults_to_the_user(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "who", lambda: "analyst7")
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1)], T1)
        with pytest.raises(UsageError, match="close needs --reason"):
            state.close(store, [f"{1:016x}"], reason="  ")
        (t,) = state.acknowledge(store, [f"{1:016x}"])
    assert t.acked_by == "analyst7"


def test_one_bad_id_changes_nothing(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1), _alert(2)], T1)
        state.close(store, [f"{2:016x}"], reason="fp")
        before = _dump(db)
        with pytest.raises(UsageError, match=f"cannot mark acknowledged: {2:016x} is closed .*nothing changed"):
            state.acknowledge(store, [f"{1:016x}", f"{2:016x}"])
        with pytest.raises(UsageError, match="no alert ffffffff"):
            state.close(store, [f"{1:016x}", "ffffffff"], reason="fp")
    assert _dump(db) == before


def test_ids_and_prefixes(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(0xABCD01), _alert(0xABCD02), _alert(0xBEEF)], T1)
        assert state.resolve(store, "000000000000BEEF") == "000000000000beef"
        assert state.resolve(store, "000000000000Be") == "000000000000beef"
        with pytest.raises(UsageError, match="ambiguous: 0000000000abcd01, 0000000000abcd02; give more digits"):
            state.resolve(store, "0000000000abcd")
        assert state.resolve(store, "0000000000abcd02") == "0000000000abcd02"
        for bad in ("abc", "xyz12345", "0000000000abcd02ff", "00'--"):
            with pytest.raises(UsageError, match="is not an alert id"):
                state.resolve(store, bad)
        with pytest.raises(UsageError, match=f"no alert 1234 in state file {db}"):
            state.resolve(store, "1234")


def test_select_filters(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1), _alert(2, DeviceName="EXCH02.contoso.local", rule_id="rule-2",
                                                  rule_name="Other rule")], T1)
        state.record(store, [_alert(3, DeviceName="mbx01")], T3)
        state.acknowledge(store, [f"{1:016x}"])
        everything = store.everything()

    def ids(**kw: Any) -> list[int]:
        return [int(t.alert_id, 16) for t in state.select(everything, **kw)]

    assert ids() == [1, 2, 3]
    assert ids(statuses=["acknowledged"]) == [1] and ids(statuses=["new,acknowledged"]) == [1, 2, 3]
    assert ids(statuses=["NEW"]) == [2, 3]
    assert ids(rule="rule-2") == [2] and ids(rule="OTHER RULE") == [2] and ids(rule="rule*") == [1, 2, 3]
    assert ids(rule="*one") == [1, 3]
    assert ids(device="exch02") == [2] and ids(device="exch02.CONTOSO.local") == [2] and ids(device="contoso") == []
    assert ids(since=state.parse_since("2026-04-01T09:00:00Z")) == [3]
    assert ids(since=state.parse_since("2026-04-01T10:00:00+02:00")) == [1, 2, 3]  # 08:00 UTC, inclusive
    assert ids(since=state.parse_since("2026-04-01")) == [1, 2, 3]
    with pytest.raises(UsageError, match="--status must be one of new, open, acknowledged, closed, not 'done'"):
        state.select(everything, statuses=["done"])
    with pytest.raises(UsageError, match="--since: 'yesterday' is not an ISO-8601"):
        state.parse_since("yesterday")


# -- the file ----------------------------------------------------------------------


def test_a_new_state_file_is_private_and_names_its_schema(db: Path) -> None:
    with open_store(db, create=True):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert _dump(db)["meta"] == [("format", "exhunt-state"), ("schema_version", "1")]


@pytest.mark.parametrize("content", [b"Timestamp,DeviceName\r\n2026-03-01T10:00:00Z,exch01\r\n", b"\x00" * 100])
def test_a_file_that_is_not_a_state_is_refused_and_left_alone(db: Path, content: bytes) -> None:
    db.write_bytes(content)
    for write in (True, False):
        with pytest.raises(UsageError, match=re.escape(f"{db} is not an exhunt state file (not a SQLite database)")):
            open_store(db, create=True, write=write)
    assert db.read_bytes() == content


def test_another_sqlite_database_is_refused(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE inventory (host TEXT)")
        conn.commit()
    before = db.read_bytes()
    with pytest.raises(UsageError, match=f"{db} is not an exhunt state file \\(a SQLite database of something else"):
        open_store(db, create=True)
    assert db.read_bytes() == before


def test_a_newer_schema_is_refused(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1)], T1)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
        conn.commit()
    before = db.read_bytes()
    for write in (True, False):
        with pytest.raises(UsageError, match=f"state file {db} was written by a newer exhunt "
                                             "\\(state schema 7; this exhunt reads up to 1\\): upgrade exhunt"):
            open_store(db, write=write)
    assert db.read_bytes() == before


def test_an_older_schema_is_migrated(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a later version does: its MIGRATIONS step runs once, in a transaction."""
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1)], T1)
    monkeypatch.setattr(statestore, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(statestore, "MIGRATIONS", {1: ("ALTER TABLE alerts ADD COLUMN assignee TEXT",)})
    with pytest.raises(UsageError, match="has an older schema \\(1\\)"):
        open_store(db, write=False)
    with open_store(db) as store:
        assert [t.alert_id for t in store.everything()] == [f"{1:016x}"]
    dump = _dump(db)
    assert dump["meta"] == [("format", "exhunt-state"), ("schema_version", "2")]
    assert len(dump["alerts"][0]) == len(statestore._COLUMNS) + 1


def test_a_damaged_file_is_one_clear_error(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(n) for n in range(300)], T1)
    data = db.read_bytes()
    db.write_bytes(data[:4096] + b"\xa5" * (len(data) - 4096))
    with pytest.raises(UsageError, match=f"state file {db} cannot be read \\(.*\\); it may be damaged"), \
            open_store(db) as store:
        store.everything()


def test_a_missing_file_is_created_only_by_detect(db: Path) -> None:
    with pytest.raises(UsageError, match=f"state file {db} does not exist"):
        open_store(db, create=False)
    assert not db.exists()
    with pytest.raises(UsageError, match=r"folder .*nowhere does not exist"):
        open_store(db.parent / "nowhere" / "s.db", create=True)


def test_values_are_bound_never_sql_text(db: Path) -> None:
    evil = "x'); DROP TABLE alerts; --"
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1, rule_name=evil, DeviceName=evil + '"', FileName="a' OR '1'='1")], T1)
        state.close(store, [f"{1:016x}"], reason=evil, by=evil)
        (t,) = store.everything()
        history = store.history(t.alert_id)
    assert (t.rule_name, t.device, t.close_reason, t.closed_by) == (evil, evil + '"', evil, evil)
    assert t.alert["FileName"] == "a' OR '1'='1" and history[-1].note == evil
    assert _dump(db)["integrity"] == [("ok",)]


@contextlib.contextmanager
def _as_nobody() -> Iterator[None]:
    """Root may write any file: run the block as `nobody` (saved uid kept to come back)."""
    if os.geteuid() != 0:
        yield
        return
    os.setresgid(65534, 65534, 0)
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


@pytest.mark.skipif(not hasattr(os, "setresuid"), reason="POSIX users")
def test_a_read_only_state_is_read_but_never_written() -> None:
    folder = Path(tempfile.mkdtemp(prefix="exhunt-test-ro-"))
    try:
        os.chmod(folder, 0o755)
        db = folder / "state.db"
        with open_store(db, create=True) as store:
            state.record(store, [_alert(1)], T1)
        os.chmod(db, 0o444)
        before = db.read_bytes()
        run_cli(["alerts", "list", "--state", str(db), "-f", "jsonl"])  # its imports, before the user changes
        with _as_nobody():
            listed = run_cli(["alerts", "list", "--state", str(db), "-f", "jsonl"])
            acked = run_cli(["alerts", "ack", f"{1:016x}", "--state", str(db)])
            detect = run_cli(["detect", "--flat", str(folder / "none.csv"), "--state", str(db)])
        assert listed[0] == 0 and f'"alert_id": "{1:016x}"' in listed[1]
        assert acked[0] == 2 and f"state file {db} is read-only" in acked[2]
        # detect refuses before it reads anything (none.csv does not even exist).
        assert detect[0] == 2 and f"state file {db} is read-only" in detect[2]
        assert db.read_bytes() == before and not (folder / "state.db-journal").exists()
    finally:
        shutil.rmtree(folder)


def test_a_locked_state_is_waited_for_then_refused(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(1)], T1)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another run, writing
        monkeypatch.setattr(statestore, "LOCK_WAIT", 0.3)
        start = time.monotonic()
        code, _, err = run_cli(["alerts", "ack", f"{1:016x}", "--state", str(db)])
        assert code == 2 and time.monotonic() - start >= 0.25
        assert err.strip() == f"error: state file {db} is in use by another exhunt command (waited 0.3 s); " \
                              "try again when it has finished"
        # The other run finishes within the wait: this one goes on.
        monkeypatch.setattr(statestore, "LOCK_WAIT", 20.0)
        threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
        start = time.monotonic()
        code, _, err = run_cli(["alerts", "ack", f"{1:016x}", "--state", str(db), "--by", "alice"])
        assert code == 0, err
        assert 0.4 < time.monotonic() - start < 15
    finally:
        holder.close()
    with open_store(db) as store:
        assert [(t.status, t.acked_by) for t in store.everything()] == [(ACKNOWLEDGED, "alice")]


# -- atomicity ----------------------------------------------------------------------

_KILLED_IN_TRANSACTION = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from exhunt import state
    from exhunt.statestore import open_store

    store = open_store(Path(sys.argv[1]))
    store._conn.execute("PRAGMA cache_size = 2")  # spill: changed pages reach the file before COMMIT
    alerts = store.everything()
    with store.transaction():
        for t in alerts:
            t.status, t.closed_by, t.close_reason = "closed", "killer", "x" * 2000
        store.save(alerts)
        store.add_changes([state.Change(t.alert_id, "2030-01-01T00:00:00.000000Z", "closed", "closed")
                           for t in alerts])
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_transaction_killed_in_a_child_process_leaves_the_old_state(db: Path) -> None:
    with open_store(db, create=True) as store:
        state.record(store, [_alert(n) for n in range(400)], T1)
    before, file_before = _dump(db), db.read_bytes()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run([sys.executable, "-c", _KILLED_IN_TRANSACTION, str(db)], env=env, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    # Killed mid-write: the file itself holds half a transaction, and the journal to undo it.
    assert db.read_bytes() != file_before and (db.parent / "state.db-journal").stat().st_size > 0
    assert _dump(db) == before  # the next reader rolls the journal back
    with open_store(db) as store:
        assert {t.status for t in store.everything()} == {NEW}
        state.record(store, [_alert(1)], T2)
    assert _dump(db)["integrity"] == [("ok",)]


# detect --state killed: on a big input, at chosen moments of the write (a test-side pause put
# into the store's methods by a wrapper, so the kill lands inside the transaction for sure) and
# at plain times during the run.

_PAUSED_DETECT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from exhunt import statestore
    from exhunt.cli import main

    where, mark = sys.argv[1], Path(sys.argv[2])
    Store = statestore.Store

    def pause():
        mark.write_text(where)
        time.sleep(120)

    def wrap(name, before=False, split=False):
        original = getattr(Store, name)

        def method(self, *args):
            if name == where and before:
                pause()
            if name == where and split:
                items = list(args[0])
                self._conn.execute("PRAGMA cache_size = 2")
                original(self, items[: len(items) // 2])
                pause()
                return original(self, items[len(items) // 2:])
            result = original(self, *args)
            if name == where and not before:
                pause()
            return result

        setattr(Store, name, method)

    wrap("fetch", before=True)   # the transaction is open, its run row written
    wrap("save", split=True)     # half the alerts written (and spilled to the file)
    wrap("finish_run")           # everything written, COMMIT next
    sys.argv = ["exhunt", *sys.argv[3:]]
    main()
""")

N_ROWS = 3000


def _big_export(path: Path, n: int, start: int = 0) -> Path:
    """`n` process rows, each an alert of the seed rule (EdgeTransport.exe starting cmd.exe)."""
    base = datetime(2026, 3, 1)
    rows = [{"Timestamp": (base + timedelta(seconds=20 * i)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
             "DeviceName": f"exch{i % 7:02d}.contoso.local", "ActionType": "ProcessCreated", "FileName": "cmd.exe",
             "FolderPath": r"C:\Windows\System32\cmd.exe", "ProcessCommandLine": f'cmd.exe /c "whoami" > C:\\x{i}.txt',
             "ProcessId": 5000 + i, "AccountName": "network service", "InitiatingProcessFileName": "EdgeTransport.exe",
             "InitiatingProcessCommandLine": '"EdgeTransport.exe"', "InitiatingProcessId": 3100, "ReportId": i}
            for i in range(start, start + n)]
    return helpers.write_csv(path, "DeviceProcessEvents", rows)


def _shape(path: Path) -> dict[str, Any]:
    """A state without its clock times: what must equal before/after."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            "alerts": conn.execute("SELECT alert_id, status, times_seen, first_run, last_run, acked_by, closed_by, "
                                   "close_reason FROM alerts ORDER BY alert_id").fetchall(),
            "history": conn.execute("SELECT alert_id, action, from_status, to_status, actor, note, run_id "
                                    "FROM history ORDER BY id").fetchall(),
            "runs": conn.execute("SELECT run_id, alerts, new FROM runs ORDER BY run_id").fetchall(),
        }


def _wait_for_mark(mark: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_detect_killed_while_it_records_leaves_the_state_before_or_after(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    export = data / "DeviceProcessEvents.csv"
    db, journal = tmp_path / "state.db", tmp_path / "state.db-journal"
    args = ["detect", "--flat", str(data), "--rules", "exchange-transport-agent-seed", "-f", "jsonl", "-q",
            "--state", str(db)]
    # Before: the first half of the export recorded, one alert acknowledged and one closed.
    _big_export(export, N_ROWS // 2)
    code, out, err = run_cli(args)
    assert code == 0 and len(out.splitlines()) == N_ROWS // 2, err
    ids = sorted(json.loads(line)["alert_id"] for line in out.splitlines())
    assert run_cli(["alerts", "ack", ids[0], "--state", str(db), "--by", "alice"])[0] == 0
    assert run_cli(["alerts", "close", ids[1], "--state", str(db), "--reason", "fp"])[0] == 0
    _big_export(export, N_ROWS)
    before = _shape(db)
    shutil.copy(db, tmp_path / "before.db")
    # After: what an uninterrupted run makes of a copy.
    shutil.copy(db, tmp_path / "after.db")
    code, out, err = run_cli([*args[:-1], str(tmp_path / "after.db")])
    assert code == 0 and len(out.splitlines()) == N_ROWS, err
    after = _shape(tmp_path / "after.db")
    assert len(after["alerts"]) == N_ROWS and after["runs"][-1] == (2, N_ROWS, N_ROWS // 2)
    assert before["alerts"][:2] != after["alerts"][:2]

    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    mark = tmp_path / "mark"
    for where in ("fetch", "save", "finish_run"):
        mark.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", _PAUSED_DETECT, where, str(mark), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for_mark(mark, proc)
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        # Inside the transaction: the journal is there; at "save" half the rows are in the file itself.
        assert journal.exists(), where
        if where == "save":
            assert db.read_bytes() != (tmp_path / "before.db").read_bytes()
        assert _shape(db) == before, where  # the reader rolled the journal back
    # SIGTERM at the same moment: the run stops (exit 143) and rolls back itself.
    mark.unlink()
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_DETECT, "save", str(mark), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_mark(mark, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert _shape(db) == before
    # Plain kills at moments spread over a whole run (reading, hunting, writing, recording).
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "exhunt", *args[:-1], str(tmp_path / "timing.db")], env=env,
                   stdout=subprocess.DEVNULL, check=True)
    took = time.monotonic() - start
    for fraction in (0.4, 0.7, 0.85, 0.95, 1.0):
        journal.unlink(missing_ok=True)
        shutil.copy(tmp_path / "before.db", db)
        proc = subprocess.Popen([sys.executable, "-m", "exhunt", *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(took * fraction)
        proc.kill()
        proc.wait()
        assert _shape(db) in (before, after), fraction
        journal.unlink(missing_ok=True)  # a journal left (not hot: nothing to undo) must not meet the copy
    # The next run works, and gives what an uninterrupted one gave.
    shutil.copy(tmp_path / "before.db", db)
    code, out, err = run_cli(args)
    assert code == 0 and len(out.splitlines()) == N_ROWS, err
    assert _shape(db) == after


def test_the_lifecycle_holds_no_sql_and_the_store_binds_every_value() -> None:
    """SQL lives in statestore alone; there, no statement is built from a value (f-strings only
    join `?` marks)."""
    import ast

    src = REPO / "src" / "exhunt"
    for module in ("state", "cli_alerts"):
        tree = ast.parse((src / f"{module}.py").read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "sqlite3" not in imported, module
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert not [s for s in strings if re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\b", s)], module
    tree = ast.parse((src / "statestore.py").read_text(encoding="utf-8"))
    formatted = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)
                 and re.search(r"\b(SELECT|INSERT|UPDATE|WHERE)\b", ast.unparse(n))]
    assert formatted == ["f'{_SELECT} WHERE alert_id IN ({marks})'"]
