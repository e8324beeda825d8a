"""Alerts remembered across runs: the lifecycle a SOC works through, without the storage.

A scheduled run over an append-only export finds the same alerts again and again; what a
responder wants from it is what is new since the last run. Each alert is known by its
stable `alert_id` (exhunt.alerts.alert_id) and has a status:

    new ──(seen again by a later run)──> open
    new | open ──(alerts ack)──> acknowledged
    new | open | acknowledged ──(alerts close --reason)──> closed
    acknowledged | closed ──(alerts reopen)──> open

A run that finds an acknowledged or closed alert again leaves its status alone (a closed
alert does not come back: closing is the analyst's verdict on that evidence, and the same
evidence read again is no reason to reopen it) but counts the sighting: `last_seen` and
`times_seen` move on and the stored alert is the latest one. Every status change is kept in
the alert's history with who, when and why, and so is a sighting whose fields changed (an
alert whose rule names its identity, like the chain rule, can grow as evidence arrives: the
history of a closed one says so, though it stays closed).

This module is the logic only; `exhunt.statestore` keeps it in a SQLite file (the only place
with SQL). Times here are UTC ISO-8601 text (`...Z`), which sorts as time.
"""

from __future__ import annotations

import fnmatch
import getpass
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt.alerts import PROVENANCE
from exhunt.errors import UsageError

if TYPE_CHECKING:
    from exhunt.statestore import Store

NEW, OPEN, ACKNOWLEDGED, CLOSED = "new", "open", "acknowledged", "closed"
STATUSES = (NEW, OPEN, ACKNOWLEDGED, CLOSED)

#: History actions.
FIRST_SEEN, SEEN_AGAIN, CHANGED = "first seen", "seen again", "changed"
ACKED, CLOSED_BY, REOPENED = "acknowledged", "closed", "reopened"

#: An alert id, or the prefix of one a person types (at least 4 hex digits, as git asks).
_ID_REF = re.compile(r"^[0-9a-f]{4,16}$")


def stamp(when: datetime | None = None) -> str:
    """`when` (default: now) as state times are written: UTC, microseconds, `Z`."""
    t = when or datetime.now(UTC)
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def who() -> str:
    """Whoever runs the command (the default of --by)."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError):
        return "unknown"


@dataclass
class Tracked:
    """One alert as the state knows it."""

    alert_id: str
    rule_id: str
    rule_name: str
    severity: str
    device: str
    #: The alert's own event time (its `Timestamp`), UTC.
    timestamp: str | None
    status: str
    #: When runs saw it: the first and the latest, and how many runs did.
    first_seen: str
    last_seen: str
    times_seen: int = 1
    first_run: int | None = None
    last_run: int | None = None
    acked_by: str | None = None
    acked_at: str | None = None
    closed_by: str | None = None
    closed_at: str | None = None
    close_reason: str | None = None
    #: The latest comment given with ack, close or reopen.
    comment: str | None = None
    #: The alert as the latest run reported it (every field, provenance included).
    alert: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The flat record `alerts list` writes (JSON, CSV, table)."""
        return {
            "alert_id": self.alert_id, "status": self.status, "severity": self.severity,
            "rule_id": self.rule_id, "rule_name": self.rule_name, "DeviceName": self.device,
            "Timestamp": self.timestamp, "first_seen": self.first_seen, "last_seen": self.last_seen,
            "times_seen": self.times_seen, "acknowledged_by": self.acked_by, "acknowledged_at": self.acked_at,
            "closed_by": self.closed_by, "closed_at": self.closed_at, "close_reason": self.close_reason,
            "comment": self.comment,
        }


@dataclass(frozen=True)
class Change:
    """One entry of an alert's history: a status it entered, when, by whom (a person, or a run)."""

    alert_id: str
    at: str
    action: str
    to_status: str
    from_status: str | None = None
    actor: str | None = None
    note: str | None = None
    run_id: int | None = None

    def row(self) -> dict[str, Any]:
        return {"at": self.at, "action": self.action, "from_status": self.from_status, "to_status": self.to_status,
                "by": self.actor, "note": self.note, "run": self.run_id}


def _fields_of(alert: dict[str, Any]) -> dict[str, Any]:
    return {"rule_id": str(alert.get("rule_id") or ""), "rule_name": str(alert.get("rule_name") or ""),
            "severity": str(alert.get("severity") or ""), "device": str(alert.get("DeviceName") or ""),
            "timestamp": None if alert.get("Timestamp") is None else str(alert["Timestamp"])}


@dataclass
class Recorded:
    """What one run's alerts were to the state: new ones, and the status of those already known
    (as it was before the run)."""

    new: list[str] = field(default_factory=list)
    known: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """`N new, M already known (K acknowledged, J closed)`."""
        by = Counter(self.known.values())
        return (f"{len(self.new)} new, {len(self.known)} already known "
                f"({by[ACKNOWLEDGED]} acknowledged, {by[CLOSED]} closed)")


def _by_id(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run's alerts by id; an id twice in one run is one sighting (the last one kept)."""
    out: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        aid = str(alert.get("alert_id") or "")
        if not aid:
            raise ValueError("an alert without alert_id cannot be tracked")
        out[aid] = alert
    return out


def classify(store: Store, alerts: list[dict[str, Any]]) -> Recorded:
    """Which of `alerts` the state already knows (and in which status); reads only."""
    run = _by_id(alerts)
    known = store.fetch(list(run))
    return Recorded(new=[a for a in run if a not in known], known={a: t.status for a, t in known.items()})


def record(store: Store, alerts: list[dict[str, Any]], when: datetime | None = None) -> Recorded:
    """Remember one run's alerts, all in one transaction (a killed run leaves the state as it
    was): a new id is `new`; a known one is seen again (`new` becomes `open`; acknowledged and
    closed stay so). Returns which were new."""
    at = stamp(when)
    run = _by_id(alerts)
    with store.transaction():
        run_id = store.start_run(at)
        known = store.fetch(list(run))
        result = Recorded()
        saved: list[Tracked] = []
        changes: list[Change] = []
        for aid, alert in run.items():
            old = known.get(aid)
            if old is None:
                result.new.append(aid)
                saved.append(Tracked(alert_id=aid, status=NEW, first_seen=at, last_seen=at, times_seen=1,
                                     first_run=run_id, last_run=run_id, alert=alert, **_fields_of(alert)))
                changes.append(Change(aid, at, FIRST_SEEN, NEW, run_id=run_id))
                continue
            result.known[aid] = old.status
            differ = sorted(k for k in old.alert.keys() | alert.keys()
                            if k not in PROVENANCE and old.alert.get(k) != alert.get(k))
            for key, value in _fields_of(alert).items():
                setattr(old, key, value)
            old.alert, old.last_seen, old.last_run = alert, at, run_id
            old.times_seen += 1
            if old.status == NEW:
                old.status = OPEN
                changes.append(Change(aid, at, SEEN_AGAIN, OPEN, NEW, run_id=run_id))
            if differ:
                changes.append(Change(aid, at, CHANGED, old.status, old.status, run_id=run_id,
                                      note="fields changed: " + ", ".join(differ)))
            saved.append(old)
        store.save(saved)
        store.add_changes(changes)
        store.finish_run(run_id, len(run), len(result.new))
    return result


# -- what a person does -----------------------------------------------------------


def resolve(store: Store, ref: str) -> str:
    """The full id `ref` names: an id, or a prefix of at least 4 hex digits that only one alert has."""
    text = ref.strip().lower()
    if not _ID_REF.match(text):
        raise UsageError(f"{ref!r} is not an alert id (4 to 16 hex digits, e.g. from `exhunt alerts list`)")
    found = store.ids_with_prefix(text, limit=11)
    if not found:
        raise UsageError(f"no alert {text} in state file {store.path}")
    if len(found) > 1:
        shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
        raise UsageError(f"alert id prefix {text} is ambiguous: {shown}; give more digits")
    return found[0]


def _act(store: Store, refs: list[str], action: str, problem: Callable[[Tracked], str | None],
         apply: Callable[[Tracked], Change]) -> list[Tracked]:
    """Resolve every id and check every transition (`problem`), then change them all (`apply`)
    in one transaction, or none."""
    if not refs:
        raise UsageError("give at least one alert id")
    with store.transaction():
        ids = list(dict.fromkeys(resolve(store, r) for r in refs))
        alerts = store.fetch(ids)
        problems = [p for p in (problem(alerts[i]) for i in ids) if p]
        if problems:
            raise UsageError(f"cannot mark {action}: " + "; ".join(problems) + " (nothing changed)")
        changes = [apply(alerts[i]) for i in ids]
        store.save([alerts[i] for i in ids])
        store.add_changes(changes)
    return [alerts[i] for i in ids]


def acknowledge(store: Store, refs: list[str], by: str | None = None, comment: str | None = None,
                when: datetime | None = None) -> list[Tracked]:
    """new/open -> acknowledged: someone is on it."""
    at, actor = stamp(when), by or who()

    def problem(t: Tracked) -> str | None:
        if t.status == ACKNOWLEDGED:
            return f"{t.alert_id} is already acknowledged (by {t.acked_by})"
        if t.status == CLOSED:
            return f"{t.alert_id} is closed (reopen it first)"
        return None

    def apply(t: Tracked) -> Change:
        change = Change(t.alert_id, at, ACKED, ACKNOWLEDGED, t.status, actor, comment)
        t.status, t.acked_by, t.acked_at = ACKNOWLEDGED, actor, at
        t.comment = comment or t.comment
        return change

    return _act(store, refs, ACKNOWLEDGED, problem, apply)


def close(store: Store, refs: list[str], reason: str, by: str | None = None,
          when: datetime | None = None) -> list[Tracked]:
    """new/open/acknowledged -> closed, with the reason (false positive, remediated, ...)."""
    if not reason or not reason.strip():
        raise UsageError("close needs --reason TEXT (why the alert is closed)")
    at, actor = stamp(when), by or who()

    def problem(t: Tracked) -> str | None:
        return f"{t.alert_id} is already closed (by {t.closed_by}: {t.close_reason})" if t.status == CLOSED else None

    def apply(t: Tracked) -> Change:
        change = Change(t.alert_id, at, CLOSED_BY, CLOSED, t.status, actor, reason)
        t.status, t.closed_by, t.closed_at, t.close_reason = CLOSED, actor, at, reason
        return change

    return _act(store, refs, CLOSED, problem, apply)


def reopen(store: Store, refs: list[str], by: str | None = None, comment: str | None = None,
           when: datetime | None = None) -> list[Tracked]:
    """acknowledged/closed -> open; who acknowledged or closed it stays in the history."""
    at, actor = stamp(when), by or who()

    def problem(t: Tracked) -> str | None:
        if t.status in (ACKNOWLEDGED, CLOSED):
            return None
        return f"{t.alert_id} is {t.status}, not acknowledged or closed"

    def apply(t: Tracked) -> Change:
        change = Change(t.alert_id, at, REOPENED, OPEN, t.status, actor, comment)
        t.status = OPEN
        t.acked_by = t.acked_at = t.closed_by = t.closed_at = t.close_reason = None
        t.comment = comment or t.comment
        return change

    return _act(store, refs, OPEN, problem, apply)


# -- listing ----------------------------------------------------------------------


def parse_since(text: str) -> str:
    """--since: ISO-8601 date or date-time (UTC unless it has an offset) -> a state time."""
    from exhunt.timerange import parse_bound  # here: timerange imports the engine, `alerts list` needs none

    return stamp(parse_bound(text, "--since"))  # naive UTC; a date alone is its start


def check_statuses(statuses: list[str] | None) -> list[str]:
    out = []
    for s in statuses or []:
        for part in s.split(","):
            name = part.strip().lower()
            if name not in STATUSES:
                raise UsageError(f"--status must be one of {', '.join(STATUSES)}, not {part.strip()!r}")
            out.append(name)
    return out


def _device_matches(device: str, wanted: str) -> bool:
    d, w = device.lower(), wanted.lower()
    return d == w or d.split(".", 1)[0] == w


def select(alerts: list[Tracked], statuses: list[str] | None = None, rule: str | None = None,
           device: str | None = None, since: str | None = None) -> list[Tracked]:
    """Alerts with one of `statuses`, whose rule id or name matches `rule` (case-insensitive, `*`
    and `?` wildcards), on `device` (full name, or the host part before the first dot), first
    seen at or after `since`; ordered by event time, then rule name and id."""
    wanted = set(check_statuses(statuses))
    out = []
    for t in alerts:
        if wanted and t.status not in wanted:
            continue
        if rule and not any(fnmatch.fnmatchcase(v.lower(), rule.lower()) for v in (t.rule_id, t.rule_name)):
            continue
        if device and not _device_matches(t.device, device):
            continue
        if since and t.first_seen < since:
            continue
        out.append(t)
    out.sort(key=lambda t: (t.timestamp or "", t.rule_name, t.alert_id))
    return out


# -- detect --state ---------------------------------------------------------------


class Tracker:
    """`detect --state FILE [--new-only]`: the file checked before the run (a bad one fails
    in a second, not after the hunt); after the run, which alerts are new; once the output
    is written, the run recorded. Recording after the output means a run that dies before
    its alerts reach anyone forgets them, so the next run reports them again, never loses them.
    """

    def __init__(self, path: Path, new_only: bool = False) -> None:
        from exhunt.statestore import open_store

        self.path, self.new_only = path, new_only
        self._alerts: list[dict[str, Any]] = []
        with open_store(path, create=True, write=True):
            pass

    def select(self, alerts: list[dict[str, Any]], keep: list[int]) -> list[int]:
        """Remember alerts[i] for i in `keep` to record; the indexes to output (with --new-only,
        only alerts no earlier run reported)."""
        from exhunt.statestore import open_store

        self._alerts = [alerts[i] for i in keep]
        if not self.new_only:
            return keep
        with open_store(self.path, create=True, write=False) as store:
            new = set(classify(store, self._alerts).new)
        return [i for i in keep if alerts[i]["alert_id"] in new]

    def commit(self, when: datetime | None = None) -> Recorded:
        """Record the run (one transaction)."""
        from exhunt.statestore import open_store

        with open_store(self.path, create=True, write=True) as store:
            return record(store, self._alerts, when)
