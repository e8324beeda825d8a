"""Run a rule the way Sentinel would have: on its schedule, across the data's time span.

Sentinel runs a scheduled rule every `queryFrequency` over the last
`queryPeriod`, with `now()` at the run time. Replaying that over an export
gives the alerts the rule would have raised, instead of nothing because the
data is older than `ago(24h)`. Runs whose window holds no data are skipped;
a rule with no aggregation (each row judged alone) only needs each row seen
once, so it gets one run per `queryFrequency` slice that holds data (evaluated
as a single query when the backend can, see Backend.query_sliced). The runs of any
other rule are evaluated together in one query too when the backend can
(Backend.query_windows: in DuckDB the rule is bound once and each table read once,
instead of once per run), else one query per run. Alerts repeated by overlapping
windows are reported once. Replay talks to the engine only through
`exhunt.backends.base.Backend`.
"""

from __future__ import annotations

import json
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from exhunt import lifecycle, schema
from exhunt.backends.base import SLICE_END, Backend
from exhunt.errors import RuleError
from exhunt.kql import tree
from exhunt.rule import Rule, tables_named_in


def latest_slice(rule: Rule) -> bool:
    """`replay: latest-slice`: the rule says every alert needs a row in its run's newest
    `queryFrequency` slice (e.g. `LastStep > ago(RunEvery)`), so only runs ending at a slice
    that holds data can alert."""
    return str(rule.meta.get("replay", "auto")).lower() == "latest-slice"


def rowwise(rule: Rule) -> bool:
    """True when each row is judged on its own (no aggregation, join, ranking or sub-query),
    read from the query's parse tree (exhunt.kql.tree.rowwise) unless `replay:` says."""
    mode = str(rule.meta.get("replay", "auto")).lower()
    if mode in ("rowwise", "windowed", "latest-slice"):
        return mode == "rowwise"
    return tree.rowwise(rule.query, schema.tables())


@dataclass
class RuleRun:
    rule: Rule
    rows: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0
    note: str | None = None
    error: str | None = None


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _key(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, sort_keys=True, default=str)


def _unique(rows: list[dict[str, Any]], seen: set[str]) -> list[dict[str, Any]]:
    """Rows not seen before (overlapping windows repeat alerts); `seen` is updated."""
    out = []
    for row in rows:
        k = _key(row)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


def schedule(rule: Rule, slices: list[datetime]) -> list[tuple[datetime, datetime]]:
    """The (start, end] window of every run that can raise an alert, given the ends of the
    `queryFrequency` slices that hold data, in run order."""
    freq, period = rule.frequency, rule.period
    if rowwise(rule):
        return [(end - freq, end) for end in slices]
    if latest_slice(rule):
        # The rule only alerts on something in its newest slice: runs ending after the
        # data's last slices cannot raise anything the run at that slice did not.
        return [(end - period, end) for end in slices]
    ends: set[datetime] = set()
    steps = max(1, -(-period // freq))
    for end in slices:
        ends.update(end + i * freq for i in range(steps))
    return [(end - period, end) for end in sorted(ends)]


def tables_of(backend: Backend, rule: Rule) -> list[str]:
    """The backend's tables the rule reads (by name in its query, else its requiredTables)."""
    return tables_named_in(rule.query, backend.tables()) or rule.required_tables


def run_rule(backend: Backend, rule: Rule, now: datetime | None = None) -> RuleRun:
    """All alerts of one rule: one pinned run with `now`, else a replay of its schedule."""
    out = RuleRun(rule)
    tables = tables_of(backend, rule)
    freq, period = rule.frequency, rule.period
    check = getattr(backend, "check", None)  # a local engine can tell a broken rule without rows
    if now is not None:
        span = backend.time_span(tables)
        out.rows = backend.query(rule.query, now, (now - period, now)).to_pylist()
        out.runs = 1
        if span is None:
            out.note = "no rows in " + ", ".join(tables or ["its tables"])
        elif span[0] > now or span[1] <= now - period:
            out.note = (f"data spans {_fmt(span[0])} .. {_fmt(span[1])} UTC; the window "
                        f"{_fmt(now - period)} .. {_fmt(now)} holds none of it")
        return out
    slices = backend.slice_ends(tables, freq)
    if not slices:
        if check is not None:
            check(rule.query)  # an unknown table or column is an error, not "no rows"
        out.note = "no rows in " + ", ".join(tables or ["its tables"])
        return out
    plan = schedule(rule, slices)
    if rowwise(rule):
        once = backend.query_sliced(rule.query, freq)
        if once is not None:
            # The same rows as one run per slice, in one query (see Backend.query_sliced).
            out.runs = len(plan)
            out.rows = _unique(once.to_pylist(), set())
            return out
    out.runs = len(plan)
    together = backend.query_windows(rule.query, plan, freq)
    if together is not None:
        # The same rows as one run per window, in one query (see Backend.query_windows).
        out.rows = _unique(together.drop_columns([SLICE_END]).to_pylist(), set())
        return out
    out.runs = 0
    seen: set[str] = set()
    concurrency = int(getattr(backend, "max_concurrency", 1))
    if concurrency > 1:
        # A remote engine: each run is a round trip, so a few are in flight at once.
        from exhunt.backends.parallel import run_windows

        for result in run_windows(backend, rule.query, plan, concurrency):
            out.runs += 1
            out.rows.extend(_unique(result.to_pylist(), seen))
        return out
    for start, end in plan:
        table: pa.Table = backend.query(rule.query, end, (start, end))
        out.runs += 1
        out.rows.extend(_unique(table.to_pylist(), seen))
    return out


def run_or_fail(backend: Backend, rule: Rule, now: datetime | None = None) -> RuleRun:
    """run_rule, or a run carrying the reason the rule failed (`error`) and no rows.

    A rule can fail only when it runs (a regular expression RE2 refuses once a row reaches
    it, memory running out in that rule): that must not cost the other rules' alerts.
    """
    try:
        return run_rule(backend, rule, now)
    except RuleError as exc:
        return RuleRun(rule, error=str(exc))
    except MemoryError:
        return RuleRun(rule, error="ran out of memory in Python while collecting its results "
                                   "(narrow the rule or the input)")


def run_rules(backend: Backend, rules: list[Rule], now: datetime | None = None, jobs: int = 1) -> list[RuleRun]:
    """run_or_fail for each rule, in order; with jobs > 1 that many rules at once, each on a
    handle of its own (Backend.worker). The runs are the same either way: each rule's
    queries are its own, and only the order they are made in changes. A rule that fails is
    reported in its run (`error`); the others run on."""
    jobs = min(jobs, len(rules))
    backend.seal()
    if jobs <= 1:
        return [run_or_fail(backend, rule, now) for rule in rules]
    workers: queue.SimpleQueue[Backend] = queue.SimpleQueue()
    for _ in range(jobs):
        workers.put(backend.worker())

    def one(rule: Rule) -> RuleRun:
        w = workers.get()
        try:
            return run_or_fail(w, rule, now)
        finally:
            workers.put(w)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="exhunt-rule")
    try:
        return list(pool.map(one, rules))
    except BaseException:
        # Interrupted: the rules not started are dropped, the running ones stopped inside
        # the engine (every registered connection, see lifecycle), instead of waiting for
        # every rule to finish.
        pool.shutdown(wait=False, cancel_futures=True)
        lifecycle.interrupt_all()
        raise
    finally:
        pool.shutdown(wait=True)
