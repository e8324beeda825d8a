"""What happened around each alert, and how busy each server was: the HTML report's data.

After the rules ran, and before the backend closes, `collect` reads from the same tables:
- per server, the events within `context` of each of its alerts, from the tables the alerting
  rules read (windows that overlap are merged into one segment), at most `cap` rows per alert,
  the nearest to an alert first, with the alerting events marked;
- the activity plot: events per time bucket per server over the tables every rule read, with
  one KQL `summarize` every engine runs (it names tables and a bucket size, never a value from
  the data), and alerts per bucket counted here.

A server's events are read with `Backend.events`, whose server name and times are bound
parameters; an engine that cannot do that gives no timeline, and the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from exhunt.alerts import iso, jsonable
from exhunt.backends import kqltext
from exhunt.backends.base import Backend
from exhunt.errors import RuleError
from exhunt.incidents import host_key, parse_time
from exhunt.replay import tables_of
from exhunt.rule import Rule, tables_named_in

#: Default --context: events this long before and after each alert.
DEFAULT_CONTEXT = timedelta(minutes=15)
#: Default cap of timeline rows per alert (the nearest to it first).
DEFAULT_CAP = 25
#: Columns worth seeing in a timeline row, loaded even when no rule reads them (see keep_columns).
COLUMNS = (
    "ActionType", "FileName", "FolderPath", "ProcessCommandLine", "AccountName", "AccountDomain",
    "InitiatingProcessFileName", "InitiatingProcessCommandLine", "InitiatingProcessAccountName",
    "InitiatingProcessParentFileName", "SHA256", "RemoteIP", "RemoteUrl", "RegistryKey", "RegistryValueName",
    "RegistryValueData", "AdditionalFields", "ReportId", "Signer", "IsSigned", "PreviousFileName",
    "EventID", "Source", "RenderedDescription", "CmdletName", "CmdletParameters", "Caller", "Status",
    "TargetObject", "Activity", "Account", "CommandLine", "NewProcessName", "ParentProcessName", "ObjectName",
)
#: Bucket sizes the activity plot may use (the smallest giving at most PLOT_BUCKETS buckets).
STEPS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30),
         timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12), timedelta(days=1))
PLOT_BUCKETS = 120


def utc_naive(value: Any) -> datetime | None:
    """An alert's time as the tables hold it (naive UTC); None when absent or not a time.
    The parsing is incidents.parse_time's, so every view reads alert times the same way."""
    t = parse_time(value)
    return t.replace(tzinfo=None) if t is not None else None


@dataclass
class Row:
    """One event of a timeline."""

    table: str
    time: str
    #: The row's columns with a value (JSON-ready), provenance left out.
    fields: dict[str, Any]
    source_file: str = ""
    source_record: str = ""
    #: Ids of the alerts raised on this event.
    alert_ids: list[str] = field(default_factory=list)


@dataclass
class Segment:
    """The events of one server between `start` and `end`: the context of its alerts there."""

    host: str
    start: str
    end: str
    alert_ids: list[str]
    rows: list[Row]
    #: Events in the segment, shown or not.
    total: int

    @property
    def hidden(self) -> int:
        return max(self.total - len(self.rows), 0)


@dataclass
class Activity:
    """Events per bucket per server (bucket end -> count), and the bucket size."""

    step: timedelta
    #: Server (host_key) -> bucket start (ISO) -> events.
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Server (host_key) -> its longest name in the data.
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class Timeline:
    context: timedelta
    cap: int
    #: Server (host_key) -> its segments in time order.
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    #: Why there is no timeline (the engine cannot read rows around a time safely), else "".
    unavailable: str = ""
    activity: Activity | None = None


def column_queries(queries: Sequence[str], tables: dict[str, list[str]]) -> list[str]:
    """KQL naming the COLUMNS of every table `queries` read, for the loading side's column
    pruning (`Session.load_only_for`): a timeline shows them though no rule reads them."""
    named = {t for kql in queries for t in tables_named_in(kql, tables)}
    out = []
    for table in sorted(named):
        have = [c for c in COLUMNS if c in tables[table]]
        if have:
            out.append(f"{kqltext.ident(table)} | project " + ", ".join(kqltext.ident(c) for c in have))
    return out


def _segments(times: list[tuple[datetime, str]], context: timedelta) -> list[tuple[datetime, datetime, list[str]]]:
    """Alert times (with ids) -> merged windows [t - context, t + context] with their alerts."""
    out: list[tuple[datetime, datetime, list[str]]] = []
    for when, alert_id in sorted(times):
        lo, hi = when - context, when + context
        if out and lo <= out[-1][1]:
            start, end, ids = out[-1]
            out[-1] = (start, max(end, hi), [*ids, alert_id])
        else:
            out.append((lo, hi, [alert_id]))
    return out


def _marks(row: Row, when: datetime, alerts: list[dict[str, Any]]) -> list[str]:
    """The alerts raised on this row: the same file and record where both know them, else the
    same time to the microsecond (on the same server, in a table its rule reads) and the same
    file where both know it (a CSV file hunted in place has its rows' lines found only for
    alerts; a rule that projects its own columns keeps no provenance)."""
    out = []
    for alert in alerts:
        file, record = str(alert.get("source_file") or ""), str(alert.get("source_record") or "")
        if record and row.source_record:
            same = (file, record) == (row.source_file, row.source_record)
        else:
            same = utc_naive(alert.get("Timestamp")) == when and file in ("", row.source_file or file)
        if same:
            out.append(str(alert["alert_id"]))
    return out


def _server_events(backend: Backend, host: str, alerts: list[dict[str, Any]], tables: list[str],
                   context: timedelta, cap: int) -> list[Segment]:
    timed = [(t, str(a["alert_id"])) for a in alerts if (t := utc_naive(a.get("Timestamp"))) is not None]
    by_id = {str(a["alert_id"]): a for a in alerts}
    out = []
    for start, end, ids in _segments(timed, context):
        near = sorted({t for t, i in timed if i in ids})
        found = backend.events(tables, host, (start, end), near, cap * len(ids))
        if found is None:
            raise _Unavailable
        rows = []
        for table, values in found.rows:
            time_col = "Timestamp" if "Timestamp" in values else "TimeGenerated"
            when = values.get(time_col)
            fields = {k: jsonable(v) for k, v in values.items() if not k.startswith("_") and k != time_col}
            row = Row(table, iso(when) if isinstance(when, datetime) else str(when or ""), fields,
                      str(values.get("_source_file") or ""), str(values.get("_record") or ""))
            if isinstance(when, datetime):
                row.alert_ids = _marks(row, when, [by_id[i] for i in ids])
            rows.append(row)
        out.append(Segment(host, iso(start), iso(end), ids, rows, found.total))
    return out


class _Unavailable(Exception):
    """The backend cannot read the events around an alert (Backend.events gave None)."""


def _activity(backend: Backend, tables: list[str], all_tables: dict[str, list[str]]) -> Activity | None:
    """Events per bucket per server over `tables`, by one KQL summarize (None when none has rows)."""
    span = backend.time_span(tables)
    if span is None:
        return None
    length = span[1] - span[0]
    step = next((s for s in STEPS if length / s <= PLOT_BUCKETS), STEPS[-1])
    legs = []
    for table in tables:
        columns = all_tables[table]
        device = next((c for c in ("DeviceName", "Computer") if c in columns), None)
        time = next((c for c in ("Timestamp", "TimeGenerated") if c in columns), None)
        if device and time:
            legs.append(f"({kqltext.ident(table)} | project _d = {kqltext.ident(device)}, _t = {kqltext.ident(time)})")
    if not legs:
        return None
    minutes = int(step / timedelta(minutes=1))
    kql = (f"union {', '.join(legs)} | where isnotnull(_t) "
           f"| summarize _n = count() by _d, _b = bin(_t, {minutes}m)")
    activity = Activity(step)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in backend.query(kql).to_pylist():
        if isinstance(row.get("_b"), datetime):
            host, name = host_key(row.get("_d")), str(row.get("_d") or "")
            counts[host][iso(row["_b"])] += int(row.get("_n") or 0)
            if len(name) > len(activity.names.get(host, "")):
                activity.names[host] = name
    activity.events = {host: dict(buckets) for host, buckets in counts.items()}
    return activity


def collect(backend: Backend, rules: Sequence[Rule], alerts: list[dict[str, Any]], owners: Sequence[Rule],
            context: timedelta = DEFAULT_CONTEXT, cap: int = DEFAULT_CAP) -> Timeline:
    """The timeline of every server with an alert (`owners[i]` raised `alerts[i]`), and the
    activity of every server over the tables `rules` read."""
    out = Timeline(context, cap)
    all_tables = backend.tables()
    read = list(dict.fromkeys(t for rule in rules for t in tables_of(backend, rule) if t in all_tables))
    try:
        out.activity = _activity(backend, read, all_tables)
    except RuleError as exc:
        out.unavailable = f"the activity plot could not be made: {exc}"
    by_host: dict[str, list[int]] = defaultdict(list)
    for i, alert in enumerate(alerts):
        by_host[host_key(alert.get("DeviceName"))].append(i)
    try:
        for host, indexes in sorted(by_host.items()):
            tables = list(dict.fromkeys(t for i in indexes for t in tables_of(backend, owners[i]) if t in all_tables))
            if host and tables:
                out.segments[host] = _server_events(backend, host, [alerts[i] for i in indexes], tables,
                                                    context, cap)
    except _Unavailable:
        out.segments = {}
        out.unavailable = (f"{backend.name} gives no timeline: it cannot read the events around an alert "
                           "without writing the server's name into the query's text")
    return out
