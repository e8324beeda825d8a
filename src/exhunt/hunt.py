"""One hunt from start to end: inputs loaded, rules run, alerts built.

`exhunt detect` and the benchmarks call `hunt`, so the start-up (memory budget, column
pruning, CSV in place, --from/--to, the summary and --strict checks) is written once.
`exhunt query` and `exhunt ingest` share its loading half (`open_local`, `load`). Given a
`Backend` (a Kusto cluster...), `hunt` loads nothing and runs the same rules, replay and
alert schema on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from exhunt import alerts as alerting
from exhunt import memory, readpool, sources, summary, timeline, timerange, zones
from exhunt.backends.base import Backend
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.errors import UsageError
from exhunt.replay import RuleRun, run_rules
from exhunt.rule import Rule
from exhunt.sources.archives import set_passwords
from exhunt.sources.base import FileReport, SourceFile

#: Given the bytes about to be read, a context whose value is called with the bytes read
#: as reading goes (None: nothing to show).
Reading = Callable[[int], AbstractContextManager[Callable[[int], None] | None]]


@dataclass
class HuntOptions:
    """What `exhunt detect` takes besides inputs and rules (the defaults are its own)."""

    #: One run with now() pinned to this UTC time; None: replay each rule's schedule.
    now: datetime | None = None
    #: Force the input format / the table (--input-format, --table).
    input_format: str | None = None
    table: str | None = None
    #: Reader processes, and rules run at once (None: one per core; 1: none).
    jobs: int | None = None
    #: The run's memory budget (--memory; None: $EXHUNT_MEMORY or the default).
    memory: str | None = None
    #: Hunt only the rows inside this range (--from/--to).
    span: timerange.TimeRange | None = None
    #: Passwords of encrypted archives (--password).
    passwords: list[str] | None = None
    #: Refuse the run (UsageError) if any record was skipped or value coerced.
    strict: bool = False
    #: Progress of reading (see Reading), e.g. the command line's bar.
    reading: Reading | None = None
    #: Called with the file reports once the inputs are loaded, before any check or rule runs
    #: (the command line prints the run summary here).
    loaded: Callable[[list[FileReport]], None] | None = None
    #: Read the events this long around each alert, and each server's activity, for the HTML
    #: report (HuntResult.timeline); None: not read. At most `context_rows` rows per alert.
    context: timedelta | None = None
    context_rows: int = timeline.DEFAULT_CAP


@dataclass
class HuntResult:
    """Alerts of every rule, ordered by time then rule name, with what the run did."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: The rule that raised each alert (alerts[i] came from rules[i]).
    rules: list[Rule] = field(default_factory=list)
    #: One per rule, in the order given: rows, runs made, a note, or the error that stopped it.
    runs: list[RuleRun] = field(default_factory=list)
    #: One per input file (empty when the hunt ran on a given backend).
    reports: list[FileReport] = field(default_factory=list)
    #: Columns of the alerts holding times (shown in a time zone by table and CSV output).
    time_columns: set[str] = field(default_factory=lambda: {"Timestamp"})
    #: The events around the alerts and the servers' activity (with `HuntOptions.context`).
    timeline: timeline.Timeline | None = None

    @property
    def errors(self) -> list[RuleRun]:
        """The runs of rules that failed: the results are partial."""
        return [run for run in self.runs if run.error]


def new_session(options: HuntOptions) -> Session:
    """An empty session within the run's memory budget (checked before anything is read)."""
    return Session(memory_limit=memory.duckdb_limit(memory.budget(options.memory)))


@contextmanager
def _quiet(total: int) -> Iterator[None]:
    yield None


def load(session: Session, paths: list[Path], options: HuntOptions,
         files: list[SourceFile] | None = None) -> list[FileReport]:
    """Read every input (`files`, else every file under `paths`) into the session; one report
    per file. UsageError when nothing usable was read, or with `strict` when anything was
    skipped or coerced."""
    set_passwords(options.passwords)
    files = list(sources.walk(paths)) if files is None else files
    reading = options.reading or _quiet
    with reading(sum(f.size for f in files)) as advance:
        reports = session.load_files(files, options.input_format, options.table, advance, options.jobs)
    if options.span is not None:
        timerange.apply(session, reports, options.span)
    if options.loaded is not None:
        options.loaded(reports)
    unusable = summary.nothing_usable(reports, [str(p) for p in paths])
    if unusable:
        raise UsageError(unusable)
    if options.strict and summary.problems(reports):
        raise UsageError("--strict: some input was skipped or coerced (see the summary above)")
    return reports


def open_local(paths: list[Path], queries: list[str], options: HuntOptions,
               lines_later: bool = False) -> tuple[DuckDBBackend, list[FileReport]]:
    """The inputs loaded into embedded DuckDB for these queries (only the columns they can
    read are stored, files are hunted in place where possible), as a backend to close.

    `lines_later`: a large CSV file's rows get their line only when asked (`sources`), for
    a run that needs the lines of its alerting rows only.
    """
    session = new_session(options)
    try:
        session.load_only_for(queries)
        session.in_place = True
        session.lines_later = lines_later
        reports = load(session, paths, options)
    except BaseException:
        session.close()
        raise
    return DuckDBBackend(session, own=True), reports


def hunt(paths: list[Path], rules: list[Rule], options: HuntOptions | None = None,
         backend: Backend | None = None) -> HuntResult:
    """Load `paths` into DuckDB (or use `backend`, loading nothing), run every rule (replayed,
    or once at `options.now`) and build their alerts, sources included."""
    options = options or HuntOptions()
    if backend is not None:
        return _run(backend, rules, options, [])
    # A large CSV is hunted where it is; only the alerting rows' lines are looked up.
    queries = [r.query for r in rules]
    if options.context is not None:  # the timeline's columns are loaded too
        from exhunt.schema import tables as schema_tables

        queries += timeline.column_queries(queries, {n: t.names for n, t in schema_tables().items()})
    local, reports = open_local(paths, queries, options, lines_later=True)
    with local:
        return _run(local, rules, options, reports)


def _run(backend: Backend, rules: list[Rule], options: HuntOptions, reports: list[FileReport]) -> HuntResult:
    jobs = readpool.default_jobs() if options.jobs is None else options.jobs
    runs = run_rules(backend, rules, options.now, jobs)
    found: list[dict[str, Any]] = []
    owners: list[Rule] = []
    times = {"Timestamp"}
    unresolved: list[alerting.Unresolved] = []
    for rule, run in zip(rules, runs, strict=True):
        alerts = alerting.build(backend, rule, run.rows, unresolved)
        found.extend(alerts)
        owners.extend(rule for _ in alerts)
        times |= zones.time_columns(run.rows)
    alerting.resolve_lines(unresolved)
    order = sorted(range(len(found)), key=lambda i: (found[i]["Timestamp"] or "", found[i]["rule_name"]))
    result = HuntResult([found[i] for i in order], [owners[i] for i in order], runs, reports, times)
    if options.context is not None:
        result.timeline = timeline.collect(backend, rules, result.alerts, result.rules, options.context,
                                           options.context_rows)
    return result
