"""Where `exhunt.state` keeps alerts between runs: one SQLite file (Python's `sqlite3`).

Why SQLite: a run's writes are one transaction, and SQLite's rollback journal makes that
atomic on disk, so a run killed at any instant (kill -9, power cut) leaves the state of the
previous run: the next open finds the journal and rolls the half-written transaction back.
Two commands on one file take turns (the second waits LOCK_WAIT seconds, then says so).

Rules kept here: every value is a bound parameter (`?`), never SQL text; the file is created
0600 (it names hosts, accounts and files under investigation); a file that is not an exhunt
state, or one written by a newer exhunt (the `meta` table's schema version), is refused with
its name, never changed. A later schema adds a step to MIGRATIONS.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from exhunt.errors import UsageError
from exhunt.state import Change, Tracked

FORMAT = "exhunt-state"
SCHEMA_VERSION = 1
#: Seconds a command waits for another one holding the file before it gives up.
LOCK_WAIT = 10.0
_HEADER = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (run_id INTEGER PRIMARY KEY, started TEXT NOT NULL, alerts INTEGER, new INTEGER)",
    """CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, rule_name TEXT NOT NULL, severity TEXT NOT NULL,
        device TEXT NOT NULL, event_time TEXT,
        status TEXT NOT NULL CHECK (status IN ('new', 'open', 'acknowledged', 'closed')),
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, times_seen INTEGER NOT NULL,
        first_run INTEGER, last_run INTEGER, acked_by TEXT, acked_at TEXT, closed_by TEXT, closed_at TEXT,
        close_reason TEXT, comment TEXT, alert TEXT NOT NULL)""",
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
        from_status TEXT, to_status TEXT NOT NULL, actor TEXT, note TEXT, run_id INTEGER)""",
    "CREATE INDEX history_of_alert ON history (alert_id, id)",
)

#: Schema version n -> the statements that make a version n file version n + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {}

_COLUMNS = ("alert_id", "rule_id", "rule_name", "severity", "device", "event_time", "status", "first_seen",
            "last_seen", "times_seen", "first_run", "last_run", "acked_by", "acked_at", "closed_by", "closed_at",
            "close_reason", "comment", "alert")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM alerts"
_INSERT = ("INSERT OR REPLACE INTO alerts (" + ", ".join(_COLUMNS) + ") VALUES ("
           + ", ".join("?" for _ in _COLUMNS) + ")")
#: Ids per `IN (?, ...)` look-up, well under SQLite's bound-parameter limit.
_CHUNK = 500


def _tracked(row: tuple[Any, ...]) -> Tracked:
    v = dict(zip(_COLUMNS, row, strict=True))
    return Tracked(alert_id=v["alert_id"], rule_id=v["rule_id"], rule_name=v["rule_name"], severity=v["severity"],
                   device=v["device"], timestamp=v["event_time"], status=v["status"], first_seen=v["first_seen"],
                   last_seen=v["last_seen"], times_seen=v["times_seen"], first_run=v["first_run"],
                   last_run=v["last_run"], acked_by=v["acked_by"], acked_at=v["acked_at"], closed_by=v["closed_by"],
                   closed_at=v["closed_at"], close_reason=v["close_reason"], comment=v["comment"],
                   alert=json.loads(v["alert"]))


def _values(t: Tracked) -> tuple[Any, ...]:
    return (t.alert_id, t.rule_id, t.rule_name, t.severity, t.device, t.timestamp, t.status, t.first_seen,
            t.last_seen, t.times_seen, t.first_run, t.last_run, t.acked_by, t.acked_at, t.closed_by, t.closed_at,
            t.close_reason, t.comment, json.dumps(t.alert, ensure_ascii=False, sort_keys=False, default=str))


class Store:
    """An open state file (see open_store). Reads run outside transactions; writes only inside
    `transaction()`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    # -- errors and transactions ----------------------------------------------------

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """SQLite's errors as one line naming the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise UsageError(f"state file {self.path} is in use by another exhunt command (waited "
                                 f"{LOCK_WAIT:g} s); try again when it has finished") from None
            if "readonly" in text or "read-only" in text:
                raise UsageError(f"state file {self.path} is read-only (or its folder is): "
                                 "exhunt cannot record alerts in it") from None
            raise UsageError(f"state file {self.path}: {text}") from None
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "not a database" in text:
                raise UsageError(f"{self.path} is not an exhunt state file (not a SQLite database)") from None
            raise UsageError(f"state file {self.path} cannot be read ({text}); it may be damaged") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: BEGIN IMMEDIATE (the write lock, waited for), COMMIT at the end,
        ROLLBACK on any exception or signal; a killed process leaves the journal SQLite rolls back."""
        with self.errors():
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            with self.errors():
                self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def prepare(self, write: bool) -> None:
        """Refuse a file that is not an exhunt state or is newer than this exhunt; create the
        schema in an empty file and bring an older one up to date (when allowed to write)."""
        with self.errors():
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                if not write:
                    raise UsageError(f"{self.path} holds no exhunt state yet (`exhunt detect --state` fills it)")
                with self.transaction():
                    if not self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                        for statement in _SCHEMA:
                            self._conn.execute(statement)
                        self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                               [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))])
                return
            meta = self._meta() if "meta" in tables else {}
            if meta.get("format") != FORMAT:
                raise UsageError(f"{self.path} is not an exhunt state file (a SQLite database of something else); "
                                 "give another --state file")
            version = int(meta.get("schema_version") or 0)
            if version > SCHEMA_VERSION:
                raise UsageError(f"state file {self.path} was written by a newer exhunt (state schema {version}; "
                                 f"this exhunt reads up to {SCHEMA_VERSION}): upgrade exhunt")
            if version < SCHEMA_VERSION:
                if not write:
                    raise UsageError(f"state file {self.path} has an older schema ({version}); "
                                     "a command that writes it (detect --state, alerts ack) upgrades it")
                self._migrate(version)

    def _migrate(self, version: int) -> None:
        with self.transaction():
            for v in range(version, SCHEMA_VERSION):
                if v not in MIGRATIONS:
                    raise UsageError(f"state file {self.path}: no upgrade from state schema {v}")
                for statement in MIGRATIONS[v]:
                    self._conn.execute(statement)
            self._conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(SCHEMA_VERSION), "schema_version"))

    # -- alerts -----------------------------------------------------------------------

    def fetch(self, ids: list[str]) -> dict[str, Tracked]:
        """The alerts of these ids the state knows."""
        out: dict[str, Tracked] = {}
        with self.errors():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                marks = ", ".join("?" for _ in chunk)
                for row in self._conn.execute(f"{_SELECT} WHERE alert_id IN ({marks})", chunk):
                    t = _tracked(row)
                    out[t.alert_id] = t
        return out

    def everything(self) -> list[Tracked]:
        with self.errors():
            return [_tracked(row) for row in self._conn.execute(_SELECT)]

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        with self.errors():
            rows = self._conn.execute(
                "SELECT alert_id FROM alerts WHERE substr(alert_id, 1, ?) = ? ORDER BY alert_id LIMIT ?",
                (len(prefix), prefix, limit)).fetchall()
        return [r[0] for r in rows]

    def save(self, alerts: Iterable[Tracked]) -> None:
        with self.errors():
            self._conn.executemany(_INSERT, (_values(t) for t in alerts))

    def add_changes(self, changes: Iterable[Change]) -> None:
        with self.errors():
            self._conn.executemany(
                "INSERT INTO history (alert_id, at, action, from_status, to_status, actor, note, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((c.alert_id, c.at, c.action, c.from_status, c.to_status, c.actor, c.note, c.run_id)
                 for c in changes))

    def history(self, alert_id: str) -> list[Change]:
        with self.errors():
            rows = self._conn.execute(
                "SELECT alert_id, at, action, to_status, from_status, actor, note, run_id FROM history "
                "WHERE alert_id = ? ORDER BY id", (alert_id,)).fetchall()
        return [Change(*row) for row in rows]

    # -- runs -------------------------------------------------------------------------

    def start_run(self, at: str) -> int:
        with self.errors():
            cur = self._conn.execute("INSERT INTO runs (started) VALUES (?)", (at,))
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, alerts: int, new: int) -> None:
        with self.errors():
            self._conn.execute("UPDATE runs SET alerts = ?, new = ? WHERE run_id = ?", (alerts, new, run_id))

    def runs(self) -> int:
        with self.errors():
            return int(self._conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def _create(path: Path) -> None:
    """An empty file, mode 0600 (owner only), that SQLite fills; an existing one is left alone."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"state file {path}: folder {parent} does not exist")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise UsageError(f"cannot create state file {path}: {exc.strerror or exc}") from None
    os.close(fd)


def _check_file(path: Path, write: bool) -> None:
    if path.is_dir():
        raise UsageError(f"state file {path} is a folder; give a file name")
    if not path.is_file():
        raise UsageError(f"state file {path} is not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_HEADER))
    except OSError as exc:
        raise UsageError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    if head and head != _HEADER:
        raise UsageError(f"{path} is not an exhunt state file (not a SQLite database); give another --state file")
    if write:
        if not os.access(path, os.W_OK):
            raise UsageError(f"state file {path} is read-only: exhunt cannot record alerts in it")
        parent = path.parent if str(path.parent) else Path(".")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"state file {path}: its folder is not writable (SQLite keeps a journal beside the file)")


def open_store(path: Path, create: bool = False, write: bool = True) -> Store:
    """Open (with `create`, first make) the state file at `path`, checked (see Store.prepare).
    With `write` False a file the user may not write is opened read-only (list, show)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise UsageError(f"state file {path} does not exist (`exhunt detect --state {path}` creates it)")
        _create(path)
    writable = os.access(path, os.W_OK) and os.access(path.parent if str(path.parent) else ".", os.W_OK)
    _check_file(path, write)
    try:
        if write or writable:
            conn = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None)
        else:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", timeout=LOCK_WAIT,
                                   isolation_level=None, uri=True)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open state file {path}: {exc}") from None
    store = Store(path, conn)
    try:
        store.prepare(write)
    except BaseException:
        conn.close()
        raise
    return store
