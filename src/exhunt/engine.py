"""The loading side of the embedded engine: sources -> normalized DuckDB tables.

Every table of the schema exists from the start with all its columns (a rule
never fails because one export lacked a column), rows are stored in `_t_<Table>`
and queried through a view `<Table>` that adds `TimeGenerated` and applies the
current time window (two variables). Rows live in DuckDB, not in Python memory: an
in-memory database that spills to a temporary folder beyond its memory limit. KQL runs
over the loaded tables through `exhunt.backends.duckdb.DuckDBBackend`, only once loading
is done and DuckDB's file access is off (seal): a rule reads the tables, no file.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from exhunt import enrich, lifecycle, readpool, sqlopt
from exhunt import schema as sch
from exhunt.kql import compat
from exhunt.readpool import READ_ERRORS, Event
from exhunt.schema import PROVENANCE, SOURCE_FILE, SOURCE_RECORD, TableSchema
from exhunt.schema.normalize import BAD, PART, RAW_TIME, Plan, plan
from exhunt.sources.base import MAX_MESSAGES, Batch, FileReport, Relation, SourceFile, printable
from exhunt.sqltext import ident as _q
from exhunt.sqltext import literal
from exhunt.winlog import Mapper
from exhunt.winlog import sql as winsql

#: The window showing every row (see Session.set_window).
EARLIEST = datetime(1601, 1, 1)
LATEST = datetime(9999, 12, 31)
#: Rows per INSERT: small appends cost DuckDB far more per row (about two row groups here).
INSERT_ROWS = 245_760
#: Bytes of Arrow data pending per table, and over all tables, before an INSERT is forced
#: (Windows `Event` rows carry kilobytes of text; memory must stay flat as input grows).
INSERT_BYTES = 96 << 20
PENDING_BYTES = 192 << 20
#: Errors storing a file's rows: its report says so, the run goes on.
STORE_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, duckdb.IOException, duckdb.InvalidInputException)
#: ... and for a file DuckDB reads itself, any error decoding it (a damaged Parquet page).
DECODE_ERRORS: tuple[type[BaseException], ...] = (*STORE_ERRORS, duckdb.Error)

Progress = Callable[[int], None]
#: A large CSV hunted in place (Session.lines_later) keeps the columns the rules read in a
#: temporary table, filled by one parallel parse in any order; False: a view over the parse,
#: so every query parses the file again (slower as soon as two queries read it, see
#: docs/benchmarks.md, round 5).
COPY_CSV = True
#: A Windows event's time, parsed once when it is stored (NULL when it does not parse).
_EVENT_TIME = "CAST(TRY_CAST(NULLIF(trim(Time), '') AS TIMESTAMPTZ) AS TIMESTAMP) AS _time"


@dataclass
class _Part:
    """Rows of one file inside a (possibly coalesced) insert; `data` None for a DuckDB relation."""

    report: FileReport
    display: str
    data: pa.RecordBatch | pa.Table | None


@dataclass
class _Pending:
    schema: pa.Schema
    parts: list[_Part] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


def _time_source(t: TableSchema, names: list[str]) -> str | None:
    """The input column normalization takes the table's time from (see schema.normalize.plan)."""
    lower = {n.lower() for n in names}
    for cand in (t.time_column.lower(), "timegenerated", "timestamp"):
        if cand in lower:
            return cand
    return None


def _merge_schema(t: TableSchema, a: pa.Schema, b: pa.Schema) -> pa.Schema | None:
    """The common schema of two batches of table `t` that can share one INSERT, else None.

    Normalization picks input columns by name, case-insensitively, so batches merge only
    when every name is spelled the same way in both and the time comes from the same
    column; a column one batch lacks is null in its rows, which normalizes exactly as
    the absent column would (typed null, '' for strings), and a column that is all-null
    in one batch takes the other's type.
    """
    if a.equals(b):
        return a
    if _time_source(t, a.names) != _time_source(t, b.names):
        return None
    fields = {f.name: f for f in a}
    lower = {n.lower(): n for n in a.names}
    for fb in b:
        fa = fields.get(fb.name)
        if fa is None:
            if lower.setdefault(fb.name.lower(), fb.name) != fb.name:
                return None  # the same column spelled differently
            fields[fb.name] = fb
        elif not fa.type.equals(fb.type):
            if pa.types.is_null(fa.type):
                fields[fb.name] = fb
            elif not pa.types.is_null(fb.type):
                return None
    return pa.schema(list(fields.values()))


def check_stop(exc: BaseException | None = None) -> None:
    """Raise KeyboardInterrupt once the run is being stopped or `exc` says DuckDB was
    interrupted: a rule whose query was interrupted must not go on to its fallback queries,
    nor report the interruption as its own error (see lifecycle)."""
    if lifecycle.stopping() is not None or isinstance(exc, duckdb.InterruptException):
        raise KeyboardInterrupt


def _inert_columns(data: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """Column names as inert text: a NUL or escape sequence in a name chosen by whoever wrote
    the file (a CSV header, a JSON key, a Parquet schema) is shown escaped, and DuckDB, which
    cannot bind a name holding a NUL, gets one it can."""
    names = data.schema.names
    clean = [printable(n) for n in names]
    return data if clean == names else data.rename_columns(clean)


def key_match(keys: pa.Table) -> str:
    """The join condition of stored rows `r` and key rows `k` (an `_i` column, then table
    columns): equal on every column each key gives, and on the others where the key gives a
    value (null: that row does not constrain the column). Columns every key gives form
    DuckDB's hash key; the rest are checked on the pairs it finds."""
    out = []
    for name in keys.column_names:
        if name == "_i":
            continue
        c = _q(name)
        out.append(f"r.{c} = k.{c}" if keys.column(name).null_count == 0 else f"(k.{c} IS NULL OR r.{c} = k.{c})")
    return " AND ".join(out) or "true"


@dataclass
class LazyCsv:
    """A large CSV file hunted as DuckDB parsed it, its rows' lines found only on request
    (see Session._csv_in_place and Session.lines_of)."""

    display: str
    table: str
    #: The normalizing SELECT over DuckDB's parse of the file (file order when numbered).
    sql: str
    rows: int
    first_line: int
    fallback: Callable[[FileReport], Iterator[Batch]]
    #: Whether row i is on line first_line + i (no value spans lines).
    one_line_rows: bool


class Session:
    """One hunt's tables: sources loaded once (load_files), then queried through a
    `DuckDBBackend` over them."""

    def __init__(self, db_path: Path | None = None, memory_limit: str = "768MB", in_memory: bool = False) -> None:
        self._tmpdir: str | None = None
        if in_memory:
            db_path = Path(":memory:")
        elif db_path is None:
            # In memory, spilling to this folder beyond memory_limit: the tables of one hunt
            # need no write-ahead log or checkpoint (every record's text is stored once).
            # Its own pid file: removed at exit or by a later run once this process is gone.
            self._tmpdir = str(lifecycle.make_temp())
            db_path = Path(":memory:")
        # As duckdb_kql.connect does: KQL's datetimes are UTC whatever the machine's zone.
        try:
            self.con = duckdb.connect(str(db_path))
        except BaseException:
            lifecycle.remove_temp(self._tmpdir)
            raise
        lifecycle.register(self.con)
        self.run("SET TimeZone='UTC'")
        self.run(f"SET memory_limit='{memory_limit}'")
        if self._tmpdir:
            self.run(f"SET temp_directory='{self._tmpdir}'")
        self.tables = sch.tables()
        #: Table -> columns the inputs brought that the schema does not know (see _add_columns).
        self.extra: dict[str, list[str]] = {name: [] for name in self.tables}
        #: Counts changes of the tables' columns (a query translated before must be again).
        self.columns_version = 0
        self._plans: dict[tuple[str, pa.Schema], Plan] = {}
        self._pending: dict[str, _Pending] = {}
        #: Table -> lower-case names of the columns to store; tables not listed store all.
        self._keep: dict[str, set[str]] = {}
        #: Tables no query of the run names: rows are checked and counted, not stored.
        self._unread: set[str] = set()
        #: Query Parquet files on disk where they are instead of copying them (see _attach).
        self.in_place = False
        #: Table -> normalizing SELECTs over Parquet files queried in place.
        self._in_place: dict[str, list[str]] = {}
        #: Tables holding a parsed CSV file each (see _stage).
        self._staged: list[str] = []
        #: Windows events mapped in SQL (see _store_events): the table a load is forced into,
        #: the next record's sequence number, and per input file the Python mapping's state.
        self._forced: str | None = None
        self._seq = 0
        self._mapped_seq = 0
        self._win_ready = False
        self._win_files: list[_Part] = []
        self._win_index: dict[int, int] = {}
        self._win_views: set[str] = set()
        self._mappers: dict[int, tuple[FileReport, str, Mapper]] = {}
        #: Large CSV files are queried in place too, each row's line found only when asked for
        #: (`lines_of`; `exhunt detect` asks for the alerting rows only). Needs `in_place`.
        self.lines_later = False
        #: Display name -> CSV file queried in place without line numbers (see _csv_in_place).
        self.lazy: dict[str, LazyCsv] = {}
        #: Table -> indexes into _in_place[table] of the lazily numbered CSV files.
        self._lazy_parts: dict[str, set[int]] = {}
        #: Temporary tables holding those files' columns (see COPY_CSV).
        self._lazy_tables: list[str] = []
        #: Only rows with start < time <= end are ever visible (--from/--to; see restrict).
        self.bounds: tuple[datetime, datetime] = (EARLIEST, LATEST)
        #: Input files queries still read once file access is off (see seal).
        self._read_later: set[str] = set()
        self._seal_lock = threading.Lock()
        self._sealed = threading.Event()  # shared with the cursors (see on_cursor)
        self.memory_limit = memory_limit
        #: The window the connection's variables show (set_window skips setting it again).
        self._shown: tuple[datetime, datetime] | None = None
        self.set_window(EARLIEST, LATEST)
        for macro in sqlopt.MACROS:
            self.run(macro)
        compat.register_functions(self.con)
        for t in self.tables.values():
            self._create(t)

    # -- tables ---------------------------------------------------------------

    def _create(self, t: TableSchema) -> None:
        cols = [f"{_q(c.name)} {c.duckdb_type}" for c in t.columns]
        cols += [f"{_q(p)} VARCHAR" for p in PROVENANCE]
        self.run(f"CREATE TABLE {_q('_t_' + t.name)} ({', '.join(cols)})")
        self._create_view(t)

    def _create_view(self, t: TableSchema) -> None:
        time = _q(t.time_column)
        alias = "".join(f", {_q(src)} AS {_q(a)}" for a, src in t.aliases.items())
        self.run(
            f"CREATE OR REPLACE VIEW {_q(t.name)} AS SELECT *{alias} FROM {_q('_t_' + t.name)} "
            f"WHERE {time} > getvariable('exhunt_ws') AND {time} <= getvariable('exhunt_we')"
        )

    def run(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute SQL to completion (DuckDB 2 keeps a result pending until fetched)."""
        check_stop()
        return self.con.execute(sql, params or []).fetchall()

    @property
    def shown(self) -> tuple[datetime, datetime] | None:
        """The window queries see now (None: not set on this connection yet)."""
        return self._shown

    def set_window(self, start: datetime, end: datetime) -> None:
        """Only rows with start < time <= end are visible to queries (and within `bounds`)."""
        start, end = max(start, self.bounds[0]), min(end, self.bounds[1])
        if self._shown == (start, end):
            return
        self.run("SET VARIABLE exhunt_ws = CAST(? AS TIMESTAMP)", [start])
        self.run("SET VARIABLE exhunt_we = CAST(? AS TIMESTAMP)", [end])
        self._shown = (start, end)

    def restrict(self, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
        """Hide every row outside start < time <= end from all queries from now on (--from/--to),
        after loading; returns how many rows each (table, source file) had outside."""
        self.bounds = (start, end)
        self.set_window(EARLIEST, LATEST)
        outside: dict[tuple[str, str], int] = {}
        for t in self.tables.values():
            rows = self.run(f"SELECT {_q(SOURCE_FILE)}, count(*) FROM {_q('_t_' + t.name)} "
                            f"WHERE NOT ({self.in_bounds(t)}) GROUP BY 1")
            outside.update(((t.name, str(f or "")), int(n)) for f, n in rows)
        return outside

    def in_bounds(self, t: TableSchema) -> str:
        """SQL: the row's time is within `bounds` (TRUE when there are none)."""
        if self.bounds == (EARLIEST, LATEST):
            return "TRUE"
        lo, hi = (literal(b.isoformat(sep=" ")) for b in self.bounds)
        time = _q(t.time_column)
        return f"{time} > CAST({lo} AS TIMESTAMP) AND {time} <= CAST({hi} AS TIMESTAMP)"

    def load_only_for(self, queries: list[str]) -> None:
        """Store only the columns these queries can read (see exhunt.prune); call before loading.

        The other columns stay typed nulls, and a table no query names stores no rows.
        Problem detection still checks every column of every row, so the run summary is the
        same; only what is copied into the tables shrinks.
        """
        from exhunt.prune import keep_columns, unread_tables

        self._keep = keep_columns(queries, self.tables)
        self._unread = unread_tables(queries, self.tables)

    def clear(self) -> None:
        """Empty every table (tests reuse one session for many cases)."""
        for name in self.tables:
            if name in self._in_place:
                self.run(f"DROP VIEW {_q('_t_' + name)}")
                self.run(f"ALTER TABLE {_q(self._stored(name))} RENAME TO {_q('_t_' + name)}")
                del self._in_place[name]
            self.run(f"DELETE FROM {_q('_t_' + name)}")
        if self._win_ready:
            self.run("DELETE FROM _w_events")
            self.run("DELETE FROM _exhunt_seen")
        self._win_files.clear()
        self._win_index.clear()
        self._win_views.clear()
        self._mappers.clear()
        self._mapped_seq = self._seq
        for staged in self._staged:
            self.run(f"DROP TABLE {_q(staged)}")
        self._staged.clear()
        for copied in self._lazy_tables:
            self.run(f"DROP TABLE {_q(copied)}")
        self._lazy_tables.clear()
        self.lazy.clear()
        self._lazy_parts.clear()

    def kql_schema(self) -> dict[str, list[str]]:
        """Table -> columns, as duckdb-kql needs it for union/join column rules."""
        out = {}
        for t in self.tables.values():
            out[t.name] = t.names + self.extra[t.name] + list(PROVENANCE) + list(t.aliases)
        return out

    def row_count(self, table: str) -> int:
        return int(self.run(f"SELECT count(*) FROM {_q('_t_' + table)}")[0][0])

    def write_parquet(self, table: str, folder: Path, prefix: str, part_bytes: str) -> None:
        """Copy a table's rows, provenance included, into Parquet files `folder/<prefix>-<i>.parquet`
        of about `part_bytes` each (see exhunt.ingest)."""
        self.run(
            f"COPY (SELECT * FROM {_q('_t_' + table)}) TO {literal(str(folder))} "
            f"(FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES {literal(part_bytes)}, "
            f"FILENAME_PATTERN {literal(prefix + '-{i}')}, OVERWRITE_OR_IGNORE true)"
        )

    def table_batches(self, table: str, rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """A table's stored columns (provenance included) and its rows, `rows` at a time, read
        only as they are iterated (one table at a time: see exhunt.ingest.cluster_uploads)."""
        sql = f"SELECT * FROM {_q('_t_' + table)}"
        schema = self.con.sql(sql + " LIMIT 0").to_arrow_reader().schema

        def batches() -> Iterator[pa.RecordBatch]:
            yield from self.con.sql(sql).to_arrow_reader(rows)

        return schema, batches()

    # -- loading --------------------------------------------------------------

    def load_files(
        self,
        files: Iterable[SourceFile],
        input_format: str | None = None,
        table: str | None = None,
        progress: Progress | None = None,
        jobs: int | None = None,
    ) -> list[FileReport]:
        """Read, normalize and store every file; one report per file (archives add their members).

        `jobs` worker processes read files while this process stores them (None: one per
        core; 1 or a small input: all in this process). Results do not depend on it. As with
        any multiprocessing, a script calling this with jobs > 1 must keep its top level free
        of side effects (the `if __name__ == "__main__":` guard): workers import it.
        """
        if self.sealed:
            raise RuntimeError("files cannot be loaded once queries have run (file access is off, see seal)")
        if table is not None and sch.find_table(table) is None:
            from exhunt.errors import UsageError

            raise UsageError(f"unknown table {table!r}; known: {', '.join(sorted(self.tables))}")
        reports: list[FileReport] = []
        files = list(files)
        self._forced = table
        jobs = readpool.default_jobs() if jobs is None else jobs
        try:
            # DuckDB parses CSV itself only when the rows are queried in place (see _stage).
            text = self.in_place
            if readpool.worth_pooling(files, jobs):
                for src, events in readpool.pooled(files, input_format, table, reports, jobs, text):
                    self._store(events)
                    if progress:
                        progress(src.size)
            else:
                for src in files:
                    if jobs > 1 and not readpool.is_parquet(src):
                        events = readpool.prefetched(src, input_format, table, reports, parse_text=text)
                    else:
                        events = readpool.iter_source(src, input_format, table, reports, parse_text=text)
                    self._store(events)
                    if progress:
                        progress(src.size)
        finally:
            self.flush()
        return reports

    def _store(self, events: Iterator[Event]) -> None:
        for report, display, item in events:
            if isinstance(item, Relation) and item.fallback is not None:
                # A text file DuckDB parses: its rows if they pass the checks, else the reader's.
                if not (self.lines_later and self._csv_in_place(item, report, display)) and \
                        not self._stage(item, report, display):
                    try:
                        for batch in item.fallback(report):
                            self._add(batch, report, display)
                    except READ_ERRORS as exc:
                        report.error = f"stopped reading: {exc}"
            elif isinstance(item, Relation):
                # DuckDB reads the file itself: in place, or copied in one statement.
                try:
                    if self.in_place and self._attach(item.table, item.sql, report, display):
                        continue
                    self._insert_data(item.table, self.con.sql(item.sql), [_Part(report, display, None)])
                except DECODE_ERRORS as exc:
                    if item.recover is None:
                        report.error = f"stopped reading: {exc}"
                        continue
                    try:  # DuckDB refused the file: its reader keeps the readable parts
                        for batch in item.recover(report):
                            self._add(batch, report, display)
                    except READ_ERRORS as again:
                        report.error = f"stopped reading: {again}"
            else:
                self._add(item, report, display)

    def _add(self, batch: Batch, report: FileReport, display: str) -> None:
        """Queue a batch in its table's pending buffer (shared by all files of the load).

        Readers yield small batches, often one per file and table; each INSERT costs a fixed
        few milliseconds and DuckDB appends big batches far faster per row, so batches of one
        table are coalesced across files until INSERT_ROWS rows or a change of shape.
        """
        data = _inert_columns(batch.data)
        pend = self._pending.get(batch.table)
        if pend is not None and not pend.schema.equals(data.schema):
            merged = _merge_schema(self.tables[batch.table], pend.schema, data.schema)
            if merged is None:
                self._flush_table(batch.table)
                pend = None
            else:
                pend.schema = merged
        if pend is None:
            pend = self._pending[batch.table] = _Pending(data.schema)
        pend.parts.append(_Part(report, display, data))
        pend.rows += data.num_rows
        pend.bytes += data.nbytes
        if pend.rows >= INSERT_ROWS or pend.bytes >= INSERT_BYTES:
            self._flush_table(batch.table)
        elif sum(p.bytes for p in self._pending.values()) >= PENDING_BYTES:
            self._flush_table(max(self._pending, key=lambda name: self._pending[name].bytes))

    def flush(self) -> None:
        """Store every pending batch (load_files does this before it returns)."""
        self._flush_table(winsql.RAW)
        self._map_events()
        for report, display, mapper in self._mappers.values():
            self._add_rows(mapper.finish(), report, display)
        self._mappers.clear()
        for table in list(self._pending):
            self._flush_table(table)

    def _flush_table(self, table: str) -> None:
        pend = self._pending.pop(table, None)
        if pend is None or not pend.parts:
            return
        parts = pend.parts
        try:
            if len(parts) == 1:
                data = parts[0].data
            else:
                tables = []
                for i, part in enumerate(parts):
                    assert part.data is not None
                    d = pa.table(part.data)
                    if not d.schema.equals(pend.schema):
                        d = pa.table({f.name: d.column(f.name).cast(f.type) if f.name in d.column_names
                                      else pa.nulls(d.num_rows, f.type) for f in pend.schema})
                    tables.append(d.append_column(PART, pa.nulls(d.num_rows, pa.int32()).fill_null(i)))
                data = pa.concat_tables(tables)
            if table == winsql.RAW:
                self._store_events(data, parts)
            else:
                self._insert_data(table, data, parts)
        except STORE_ERRORS as exc:
            for part in parts:
                if part.report.error is None:
                    part.report.error = f"stopped reading: {exc}"

    # -- Windows events, mapped in SQL (exhunt.winlog.sql) ------------------------

    def _store_events(self, data: pa.RecordBatch | pa.Table, parts: list[_Part]) -> None:
        """Raw records of one or more files -> rows of the stored `_w_events` table.

        Records that are not Windows events are counted here; PowerShell and the cmdlet log
        go on through the Python mapping now (it keeps state per file). Every other table is
        made from `_w_events` once the load ends (_map_events).
        """
        if not self._win_ready:
            self.run(winsql.macros())
            self.run("CREATE TEMP TABLE IF NOT EXISTS _exhunt_seen (part INTEGER, k VARCHAR)")
        n = data.num_rows
        data = pa.table(data)
        if PART not in data.column_names:
            data = data.append_column(PART, pa.nulls(n, pa.int32()).fill_null(0))
        first = self._seq
        data = data.append_column("_exhunt_seq", pa.array(range(first, first + n), pa.int64()))
        self._seq += n
        files = [self._win_file(p) for p in parts]
        params = [files, [p.display for p in parts]]
        skipped: list[tuple[int, int, str, str, str]] = []  # (seq, part, where, reason, detail)
        forms = data.column("_form").unique().to_pylist() if "_form" in data.column_names else ["evtx"]
        for form in forms:
            rows = data if len(forms) == 1 else data.filter(pc.equal(data.column("_form"), form))
            self._insert_events(rows, winsql.events_sql(form), params)
            if form != "evtx":
                skipped += self._python_events(form, first)
        # Records that are not events were stored (filtering them out while parsing parses twice).
        gone = self.run("SELECT _exhunt_seq, _exhunt_part, _record, _what, CASE WHEN NOT json_valid(Doc) THEN Doc END "
                        "FROM _w_events WHERE _exhunt_seq >= ? AND NOT is_event", [first])
        found = [(seq, i, where, *winsql.not_an_event(what, text)) for seq, i, where, what, text in gone]
        for _seq, i, where, reason, detail in sorted(found + skipped):
            self._win_files[i].report.skip(where, reason, detail)
        if gone:
            self.run("DELETE FROM _w_events WHERE _exhunt_seq >= ? AND NOT is_event", [first])
        fresh = winsql.events_view(f"SELECT * FROM _w_events WHERE _exhunt_seq >= {first} "
                                    f"AND Kind IN {tuple(winsql.PYTHON_KINDS)}")
        rows = self.run(f"SELECT {', '.join(winsql.PYTHON_COLUMNS)} FROM ({fresh}) AS _w ORDER BY _exhunt_seq")
        out: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for row in rows:
            try:
                i, ev, rid = winsql.win_event(row)
            except ValueError as exc:  # data only DuckDB could read (nested too deep for Python)
                part = self._win_files[row[0]]
                part.report.message(f"{part.display}:{row[1]}: event data not readable here ({exc}): "
                                    "left out of its PowerShell / cmdlet-log rows")
                continue
            if i not in self._mappers:
                self._mappers[i] = (self._win_files[i].report, self._win_files[i].display, Mapper(""))
            out.setdefault(i, []).extend(self._mappers[i][2].map_stateful(ev, rid))
        for i, mapped_rows in out.items():
            self._add_rows(mapped_rows, self._win_files[i].report, self._win_files[i].display)

    def _insert_events(self, raw: pa.Table, events: str, params: list[Any]) -> None:
        """`events` (a form's SELECT over `_exhunt_rawbatch`, see winsql.events_sql) over `raw` into `_w_events`."""
        select = (f"SELECT * REPLACE (list_extract(?::INTEGER[], {_q(PART)} + 1) AS {_q(PART)}), "
                  f"list_extract(?::VARCHAR[], {_q(PART)} + 1) AS {_q(SOURCE_FILE)}, {_EVENT_TIME} "
                  f"FROM ({events}) AS _exhunt_e")
        self.con.register("_exhunt_rawbatch", raw)
        try:
            # A table of the session's database, not TEMP: rules run on cursors of their own,
            # which see the database's tables but not another connection's temporary ones.
            if self._win_ready:
                self.run(f"INSERT INTO _w_events BY NAME {select}", params)
            else:
                self.run(f"CREATE TABLE _w_events AS {select}", params)
                self._win_ready = True
        finally:
            self.con.unregister("_exhunt_rawbatch")

    def _python_events(self, form: str, first: int) -> list[tuple[int, int, str, str, str]]:
        """The records of `form` its SQL left to Python (is_event NULL: few), read there and stored
        again as events; returns those that are none, as (seq, part, where, reason, detail)."""
        rows = self.run(f"SELECT {', '.join(winsql.PY_FETCH)} FROM _w_events "
                        "WHERE _exhunt_seq >= ? AND is_event IS NULL ORDER BY _exhunt_seq", [first])
        if not rows:
            return []
        self.run("DELETE FROM _w_events WHERE _exhunt_seq >= ? AND is_event IS NULL", [first])
        table, skipped = winsql.python_events(form, rows)
        if table.num_rows:
            self.con.register("_exhunt_pyrows", table)
            try:
                self.run(f"INSERT INTO _w_events BY NAME SELECT *, {_EVENT_TIME} "
                         f"FROM ({winsql.events_over('SELECT * FROM _exhunt_pyrows')}) AS _exhunt_e")
            finally:
                self.con.unregister("_exhunt_pyrows")
        return [(seq, part, where, reason, detail) for part, seq, where, reason, detail in skipped]

    def _win_file(self, part: _Part) -> int:
        """The session-wide index of an input file of Windows events (the `_exhunt_part` of its events)."""
        key = id(part.report)
        if key not in self._win_index:
            self._win_index[key] = len(self._win_files)
            self._win_files.append(_Part(part.report, part.display, None))
        return self._win_index[key]

    def _map_events(self) -> None:
        """Every mapping over the events stored since the last call (see exhunt.winlog.sql).

        A table no query reads is only counted: the mappings of all such tables are one query
        that counts each one's rows per input file (DuckDB evaluates their filters only), so a
        mapping costs a run nothing unless a query reads its table. `Event` and `SecurityEvent`
        (every record, wide texts) are not copied: they become views computing their rows
        from `_w_events` when a query reads them, so a rule's filters on EventID or Source
        reach the stored columns and the texts are built for the rows that pass.
        """
        lo, self._mapped_seq = self._mapped_seq, self._seq
        if not self._win_ready or lo == self._seq:
            return
        fresh = f"SELECT * FROM _w_events WHERE _exhunt_seq >= {lo}"
        parts = self._win_files
        # Events whose time did not parse (few, often none): each mapping names them as skipped.
        untimed = bool(self.run(f"SELECT count(*) FROM ({fresh}) AS _w WHERE _time IS NULL")[0][0])
        counted: list[winsql.Mapping] = []
        for m in winsql.mappings():
            if self._forced is not None and m.table != self._forced:
                continue
            t = self.tables[m.table]
            if m.dedupe:  # the first of each kept row is chosen among all rows: one pass, times as text
                self._dedupe(m, fresh)
                if self.run("SELECT count(*) FROM _exhunt_mapped")[0][0]:
                    self._insert_data(m.table, self.con.sql("SELECT * FROM _exhunt_mapped"), parts,
                                      store=m.table not in self._unread)
                continue
            unread = m.table in self._unread
            if unread:
                counted.append(m)
            copy = not unread and not m.view
            # Times were parsed once into _w_events; only rows without one (few) give the
            # normalizer text, so its messages name the bad or missing time as for any input.
            for typed in (False, True) if not unread else (False,):
                if not typed and not untimed:
                    continue
                select = winsql.over(m, fresh, typed_time=typed)
                if copy:
                    self.run(f"CREATE OR REPLACE TEMP TABLE _exhunt_mapped AS {select}")
                    select = "SELECT * FROM _exhunt_mapped"
                if self.run(f"SELECT count(*) FROM ({select}) AS _exhunt_m")[0][0]:
                    self._insert_data(m.table, self.con.sql(select), parts, store=copy)
            if m.view and not unread and m.table not in self._win_views:
                self._win_views.add(m.table)
                viewed = winsql.over(m, "SELECT * FROM _w_events", typed_time=True)
                schema = self.con.sql(viewed).limit(0).to_arrow_table().schema
                p = self._plan(t, schema, f"({viewed}) AS _exhunt_src")
                self._expose(t, f"SELECT * EXCLUDE ({BAD}, {RAW_TIME}, {_q(PART)}) "
                                f"FROM ({p.sql}) AS _exhunt_norm WHERE {_q(t.time_column)} IS NOT NULL")
        self._count_unread(counted, fresh)

    def _count_unread(self, counted: list[winsql.Mapping], fresh: str) -> None:
        """The rows each mapping in `counted` (tables no query reads) makes from `fresh`, with
        a time, added to each input file's `used` counts: one query for all of them."""
        if not counted:
            return
        legs = " UNION ALL ".join(
            f"SELECT {i} AS _m, {_q(PART)} FROM ({winsql.over(m, fresh, typed_time=True)}) AS _exhunt_c{i}"
            for i, m in enumerate(counted))
        rows = self.run(f"SELECT _m, {_q(PART)}, count(*) FROM ({legs}) AS _exhunt_u GROUP BY ALL")
        for i in {i for i, _, _ in rows}:  # every file of the load names a table some file filled (as stored ones)
            for f in self._win_files:
                f.report.used[counted[i].table] += 0
        for i, part, n in rows:
            self._win_files[part].report.used[counted[i].table] += int(n)

    def _dedupe(self, m: winsql.Mapping, events: str) -> None:
        """`_exhunt_mapped` := the mapping's rows, first of each distinct `m.dedupe` value per input file."""
        key = "to_json({" + ", ".join(f"{literal(c)}: {_q(c)}" for c in m.dedupe) + "})::VARCHAR"
        self.run(f"CREATE OR REPLACE TEMP TABLE _exhunt_mapped AS SELECT * FROM ("
                 f"SELECT *, {key} AS _exhunt_key FROM ({winsql.over(m, events)}) AS _exhunt_m) "
                 f"QUALIFY row_number() OVER (PARTITION BY {_q(PART)}, _exhunt_key ORDER BY _exhunt_seq) = 1")
        self.run(f"DELETE FROM _exhunt_mapped WHERE ({_q(PART)}, _exhunt_key) IN (SELECT part, k FROM _exhunt_seen)")
        self.run(f"INSERT INTO _exhunt_seen SELECT {_q(PART)}, _exhunt_key FROM _exhunt_mapped")
        self.run("ALTER TABLE _exhunt_mapped DROP COLUMN _exhunt_key")

    def _add_rows(self, rows: list[tuple[str, dict[str, Any]]], report: FileReport, display: str) -> None:
        """Rows the Python mapping made, per table, into the pending buffers."""
        from exhunt.sources.winjson import rows_to_batch

        by_table: dict[str, list[dict[str, Any]]] = {}
        for name, row in rows:
            if self._forced is None or name == self._forced:
                by_table.setdefault(name, []).append(row)
        for name, table_rows in by_table.items():
            self._add(Batch(name, rows_to_batch(name, table_rows)), report, display)

    def _stored(self, table: str) -> str:
        """The DuckDB table rows are inserted into (`_t_<Table>` is a view once files are attached)."""
        return ("_s_" if table in self._in_place else "_t_") + table

    def _plan(self, t: TableSchema, schema: pa.Schema, relation: str = "_exhunt_batch") -> Plan:
        key = (t.name, schema)
        p = self._plans.get(key) if relation == "_exhunt_batch" else None
        if p is None:
            p = plan(t, schema, relation)
            if relation == "_exhunt_batch":
                self._plans[key] = p
            self._add_columns(t, p)
        return p

    def _add_columns(self, t: TableSchema, p: Plan) -> None:
        """Make the input's columns the schema does not know columns of the table."""
        for col in p.extra_columns:
            if col not in self.extra[t.name] and t.column(col) is None:
                self.run(f"ALTER TABLE {_q(self._stored(t.name))} ADD COLUMN {_q(col)} VARCHAR")
                self.extra[t.name].append(col)
                self._create_view(t)
                self.columns_version += 1

    def _enrich_column(self, t: TableSchema) -> str | None:
        """The command-line column whose -EncodedCommand is decoded into AdditionalFields, or
        None when there is nothing to do: the table has none, or no query reads AdditionalFields
        (the decoding writes nothing else, so skipping it changes no result)."""
        keep = self._keep.get(t.name)
        if t.name in self._unread or (keep is not None and "additionalfields" not in keep):
            return None
        return enrich.COMMAND_COLUMNS.get(t.name)

    def _attach(self, table: str, sql: str, report: FileReport, display: str) -> bool:
        """Expose a Parquet file on disk through the table without copying it; False when it
        must be copied instead (its command lines need decoding into AdditionalFields).

        `_t_<Table>` becomes a view: the stored rows UNION ALL BY NAME one normalizing SELECT
        per attached file. DuckDB reads only the columns and row groups a query needs, each
        time it needs them. Problems are found now, as for copied rows, by a query over the
        time and check columns only.
        """
        t = self.tables[table]
        rel = self.con.sql(sql)
        p = self._plan(t, rel.limit(0).to_arrow_table().schema, f"({sql}) AS _exhunt_src")
        source = f"({p.sql}) AS _exhunt_norm"
        cmd_col = self._enrich_column(t)
        if p.time_source is not None and cmd_col is not None and cmd_col.lower() in p.sql.lower() and self.run(
            f"SELECT count(*) FROM {source} WHERE {enrich.SQL_FILTER.format(col=_q(cmd_col))}"
        )[0][0]:
            return False
        report.unknown_columns.update(p.unknown_columns)
        total = int(self.run(f"SELECT count(*) FROM ({sql})")[0][0])
        if p.time_source is None:
            report.skip("(all rows)", f"no {t.time_column} column", count=total)
            return True
        time = _q(t.time_column)
        problems = self.run(
            f"SELECT {_q(SOURCE_RECORD)}, {BAD}, {RAW_TIME}, {time} IS NULL, 0 FROM {source} "
            f"WHERE len({BAD}) > 0 OR {time} IS NULL"
        )
        no_time = self._report_problems(t, problems, [_Part(report, display, None)], rel)[0]
        report.used[t.name] += total - no_time
        lit = literal(display)
        self._reads_later(display)
        self._expose(t, f"SELECT * EXCLUDE ({BAD}, {RAW_TIME}, {_q(SOURCE_FILE)}), "
                        f"COALESCE({_q(SOURCE_FILE)}, {lit}) AS {_q(SOURCE_FILE)} FROM {source} "
                        f"WHERE {time} IS NOT NULL")
        return True

    def _reads_later(self, display: str) -> None:
        """A file on disk queries read where it is (a view over it, or `lines_of`): it stays
        readable once file access is off. Spelled as the readers' SQL names it."""
        self._read_later.update((display, str(Path(display)), os.path.abspath(display)))

    def _expose(self, t: TableSchema, select: str) -> int:
        """Make the rows of `select` part of table `t` (see _attach); its index among them."""
        if t.name not in self._in_place:
            self.run(f"ALTER TABLE {_q('_t_' + t.name)} RENAME TO {_q('_s_' + t.name)}")
            self._in_place[t.name] = []
        self._in_place[t.name].append(select)
        self.run(f"CREATE OR REPLACE VIEW {_q('_t_' + t.name)} AS {self._union(t.name, self._in_place[t.name])}")
        self._create_view(t)
        return len(self._in_place[t.name]) - 1

    def _union(self, table: str, selects: list[str]) -> str:
        return " UNION ALL BY NAME ".join(f"({q})" for q in [f"SELECT * FROM {_q('_s_' + table)}", *selects])

    def searchable(self, table: str) -> str:
        """SQL naming the table's rows in scan order (what `LIMIT 1` meets first), without the
        CSV files whose lines are found later (see lines_of)."""
        lazy = self._lazy_parts.get(table, set())
        if not lazy:
            return _q("_t_" + table)
        return f"({self._union(table, [q for i, q in enumerate(self._in_place[table]) if i not in lazy])})"

    def _csv_in_place(self, rel: Relation, report: FileReport, display: str) -> bool:
        """Hunt a large CSV file as DuckDB's parallel reader parses it, with no line numbers;
        False, with nothing stored and nothing reported, when `_stage` must take it instead.

        One parallel parse of the columns the rules read fills a temporary table in any order
        (COPY_CSV; else a view over the parse, parsed again by every query), flagging any
        value that did not cast or missing time; meanwhile a thread counts the file's physical
        lines (DuckDB skips an empty line the reader counts as a record, so rows and lines must
        be compared for the run summary to stay the reader's). A clean file's rows join their
        table with `_record` null. The lines of the few rows that need one (alerts) are found
        afterwards by `lines_of`, a second, targeted read of the file.
        A file with any problem row, an empty line, or command lines to decode goes to
        `_stage` as before, so the run summary names every problem exactly as it always did.
        """
        t = self.tables[rel.table]
        assert rel.physical_records is not None and rel.fallback is not None and rel.blank_lines is not None
        try:
            schema = self.con.sql(rel.sql).limit(0).to_arrow_table().schema
        except duckdb.Error:
            return False
        p = plan(t, schema, f"({rel.sql}) AS _exhunt_src")
        if p.time_source is None:
            return False
        time = _q(t.time_column)
        problem = f"len({BAD}) > 0 OR {time} IS NULL"
        cmd_col = self._enrich_column(t)
        encoded = (enrich.SQL_FILTER.format(col=_q(cmd_col))
                   if cmd_col is not None and cmd_col.lower() in p.sql.lower() else "false")
        keep = self._keep.get(t.name)
        kept = [c for c in t.names + p.extra_columns if keep is None or c.lower() in keep]
        copy = COPY_CSV and t.name not in self._unread
        name = f"_v{len(self.lazy)}_{t.name}"
        lines = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exhunt-lines")
        physical = lines.submit(rel.physical_records)
        try:
            if copy:  # in any order: no row's position matters any more
                self.run("SET preserve_insertion_order = false")
                try:
                    # Not TEMP: the rules' cursors must see it (see _store_events).
                    self.run(f"CREATE TABLE {_q(name)} AS SELECT {', '.join(_q(c) for c in kept)}, "
                             f"{problem} AS _exhunt_problem, {encoded} AS _exhunt_encoded "
                             f"FROM ({p.sql}) AS _exhunt_norm")
                finally:
                    self.run("SET preserve_insertion_order = true")
                self._lazy_tables.append(name)
                rows, flagged, n_encoded = self.run(
                    f"SELECT count(*), count(*) FILTER (_exhunt_problem), count(*) FILTER (_exhunt_encoded) "
                    f"FROM {_q(name)}")[0]
            else:
                rows, flagged, n_encoded = self.run(
                    f"SELECT count(*), count(*) FILTER ({problem}), count(*) FILTER ({encoded}) "
                    f"FROM ({p.sql}) AS _exhunt_norm")[0]
            one_line_rows = physical.result() == rows
            clean = rows > 0 and not flagged and not n_encoded and (one_line_rows or not rel.blank_lines())
        except (duckdb.Error, OSError):
            clean = False
        finally:
            lines.shutdown(wait=True)
        if not clean:
            if name in self._lazy_tables:
                self.run(f"DROP TABLE {_q(name)}")
                self._lazy_tables.remove(name)
            return False
        self._take_parsed(t, p, report, rows)
        if t.name in self._unread:
            return True
        source = _q(name) if copy else f"({p.sql}) AS _exhunt_norm"
        select = (f"SELECT {', '.join(_q(c) for c in kept)}, {literal(display)} AS {_q(SOURCE_FILE)}, "
                  f"CAST(NULL AS VARCHAR) AS {_q(SOURCE_RECORD)} FROM {source}")
        self._reads_later(display)
        self._lazy_parts.setdefault(t.name, set()).add(self._expose(t, select))
        self.lazy[display] = LazyCsv(display, t.name, p.sql, rows, rel.first_line, rel.fallback, one_line_rows)
        return True

    def lines_of(self, display: str, keys: pa.Table) -> dict[int, str]:
        """`line N` of the first row of a CSV file queried in place (see _csv_in_place) matching each
        key row, by the key's `_i`: the other columns of `keys` are table columns to match.

        A second read of the file: DuckDB numbers its rows in file order, reading only the key
        columns, and row i is line first_line + i when the file's physical lines equal its rows
        (counted when it was loaded). Otherwise a value spans lines somewhere, and the reader,
        which knows each record's line, reads the file again.
        """
        lazy = self.lazy[display]
        cols = [c for c in keys.column_names if c != "_i"]
        on = key_match(keys)
        self.con.register("_exhunt_keys", keys)
        try:
            if lazy.one_line_rows:
                found = self.run(
                    f"SELECT k._i, min(r._n) FROM _exhunt_keys k JOIN (SELECT row_number() OVER () AS _n, "
                    f"{', '.join(_q(c) for c in cols)} FROM ({lazy.sql}) AS _exhunt_norm) r ON {on} GROUP BY k._i")
                return {int(i): f"line {n - 1 + lazy.first_line}" for i, n in found}
            return self._lines_by_reader(lazy, cols, on)
        finally:
            self.con.unregister("_exhunt_keys")

    def _lines_by_reader(self, lazy: LazyCsv, cols: list[str], on: str) -> dict[int, str]:
        """`lines_of` for a file whose rows are not one line each: the reader's batches, in order."""
        t = self.tables[lazy.table]
        out: dict[int, str] = {}
        wanted = int(self.run("SELECT count(*) FROM _exhunt_keys")[0][0])
        for batch in lazy.fallback(FileReport(lazy.display)):
            self.con.register("_exhunt_batch", batch.data)
            try:
                p = self._plan(t, batch.data.schema)
                select = ", ".join(_q(c) for c in [*cols, SOURCE_RECORD])
                found = self.run(
                    f"SELECT k._i, arg_min(r.{_q(SOURCE_RECORD)}, CAST(substr(r.{_q(SOURCE_RECORD)}, 6) AS BIGINT)) "
                    f"FROM _exhunt_keys k JOIN (SELECT {select} FROM ({p.sql}) AS _exhunt_norm) r ON {on} "
                    f"GROUP BY k._i")
            finally:
                self.con.unregister("_exhunt_batch")
            for i, record in found:
                out.setdefault(int(i), str(record))
            if len(out) == wanted:
                break
        return out

    def _stage(self, rel: Relation, report: FileReport, display: str) -> bool:
        """Store a text file DuckDB parses in parallel (CSV); False, with nothing stored and
        nothing reported, when its rows cannot be used as parsed (see Relation).

        One parse: the normalized rows go into a table of their own, in file order, with a
        flag per row for any value that did not cast and any missing time. Only if no row is
        flagged, the parse raised no error and the file's physical lines match its rows is
        the table exposed through `_t_<Table>`, each row's line computed from its position
        when a query asks for it. Otherwise the reader reads the file again itself and
        names every problem.
        """
        t = self.tables[rel.table]
        assert rel.physical_records is not None
        try:
            schema = self.con.sql(rel.sql).limit(0).to_arrow_table().schema
        except duckdb.Error:
            return False
        p = plan(t, schema, f"({rel.sql}) AS _exhunt_src")  # columns are added only if the rows are used
        if p.time_source is None:
            return False
        keep = self._keep.get(t.name)
        cmd_col = self._enrich_column(t)
        kept = [c for c in t.names + p.extra_columns
                if keep is None or c.lower() in keep or (cmd_col is not None and c == cmd_col)]
        name = f"_c{len(self._staged)}_{t.name}"
        time = _q(t.time_column)
        problem = f"(len({BAD}) > 0 OR {time} IS NULL)"
        store = t.name not in self._unread
        # Line numbers are only shown for stored rows; an unread table needs no line check.
        lines = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exhunt-lines")
        physical = lines.submit(rel.physical_records) if store else None
        try:
            if store:  # in file order (the session keeps preserve_insertion_order on): rowid = row
                self.run(f"CREATE TABLE {_q(name)} AS SELECT {', '.join(_q(c) for c in kept)}, "
                         f"{problem} AS _exhunt_problem FROM ({p.sql}) AS _exhunt_norm")
                self._staged.append(name)
                counted = f"SELECT count(*), count(*) FILTER (_exhunt_problem) FROM {_q(name)}"
            else:  # no query reads the table: check and count its rows, keep none
                counted = f"SELECT count(*), count(*) FILTER ({problem}) FROM ({p.sql}) AS _exhunt_norm"
            rows, flagged = self.run(counted)[0]
            # An empty file goes to the reader too, which reports it its own way.
            clean = rows > 0 and flagged == 0 and (physical is None or physical.result() == rows)
        except (duckdb.Error, OSError):
            clean = False
        finally:
            lines.shutdown(wait=True)
        if not clean:
            if store:
                self.run(f"DROP TABLE IF EXISTS {_q(name)}")
                if name in self._staged:
                    self._staged.remove(name)
            return False
        self._take_parsed(t, p, report, rows)
        if not store:
            return True
        if cmd_col is not None:  # kept, with AdditionalFields (see _enrich_column)
            enrich.apply(self.con, _q(name), t.name)
        lit = literal(display)
        self._expose(t, f"SELECT * EXCLUDE (_exhunt_problem), "
                        f"'line ' || CAST(rowid + {rel.first_line} AS VARCHAR) AS {_q(SOURCE_RECORD)}, "
                        f"{lit} AS {_q(SOURCE_FILE)} FROM {_q(name)}")
        return True

    def _take_parsed(self, t: TableSchema, p: Plan, report: FileReport, rows: int) -> None:
        """Count a CSV file DuckDB parsed cleanly as read and used, and add its extra columns."""
        self._add_columns(t, p)
        report.read += rows
        report.used[t.name] += rows
        report.unknown_columns.update(p.unknown_columns)

    def insert(self, batch: Batch, report: FileReport, display: str) -> None:
        """Normalize one batch into its table now; skipped rows and bad values go to the report."""
        self._insert_data(batch.table, batch.data, [_Part(report, display, batch.data)])

    def _insert_data(self, table: str, data: Any, parts: list[_Part], store: bool = True) -> None:
        """`data` is Arrow, or a DuckDB relation reading a file (see `_load_one`).

        With several parts (batches of several files coalesced), `data` has a PART column
        giving each row's index in `parts`, so the per-file accounting stays exact.
        """
        t = self.tables[table]
        arrow = isinstance(data, (pa.RecordBatch, pa.Table))
        schema = data.schema if arrow else data.limit(0).to_arrow_table().schema
        p = self._plan(t, schema)
        multi = len(parts) > 1
        for part in parts:
            if multi and part.data is not None:
                names = set(part.data.schema.names)
                part.report.unknown_columns.update(c for c in p.unknown_columns if c in names)
            else:
                part.report.unknown_columns.update(p.unknown_columns)
        if p.time_source is None:
            for part in parts:
                n = part.data.num_rows if part.data is not None else (data.num_rows if arrow else len(data))
                part.report.skip("(all rows)", f"no {t.time_column} column", count=n)
            return
        # One pass over the batch: problems are found by a query that only evaluates the
        # check expressions (DuckDB prunes the other columns), and rows go straight into the
        # table. Only a batch holding command lines to decode is staged in a temp table,
        # because the enrichment rewrites rows in place.
        time = _q(t.time_column)
        part_col = _q(PART) if multi else "0"
        self.con.register("_exhunt_batch", data)
        try:
            source = f"({p.sql}) AS _exhunt_norm"
            cmd_col = self._enrich_column(t)
            if cmd_col is not None and self.run(
                f"SELECT count(*) FROM {source} WHERE {enrich.SQL_FILTER.format(col=_q(cmd_col))}"
            )[0][0]:
                self.run(f"CREATE OR REPLACE TEMP TABLE _exhunt_norm AS {p.sql}")
                enrich.apply(self.con, "_exhunt_norm", t.name)
                source = "_exhunt_norm"
            problems = self.run(
                f"SELECT {_q(SOURCE_RECORD)}, {BAD}, {RAW_TIME}, {time} IS NULL, {part_col} FROM {source} "
                f"WHERE len({BAD}) > 0 OR {time} IS NULL"
            )
            # An ordered append from Arrow runs on one thread; a big batch is appended in
            # parallel instead (1.3x to 2.7x faster measured). Only the physical order of rows inside
            # that batch changes, which no KQL result depends on.
            unordered = arrow and data.num_rows >= INSERT_ROWS // 2
            if unordered:
                self.run("SET preserve_insertion_order = false")
            keep = self._keep.get(t.name)
            if keep is None:
                exclude = [BAD, RAW_TIME, _q(SOURCE_FILE)] + ([_q(PART)] if PART in schema.names else [])
                columns = f"* EXCLUDE ({', '.join(exclude)})"
            else:
                kept = [c for c in t.names + p.extra_columns if c.lower() in keep]
                columns = ", ".join(_q(c) for c in [*kept, *(x for x in PROVENANCE if x != SOURCE_FILE)])
            displays = [part.display for part in parts]
            fallback = f"list_extract(?::VARCHAR[], {part_col} + 1)" if multi else "?"
            try:
                if t.name in self._unread or not store:  # count what would be stored
                    inserted = self.run(f"SELECT count(*) FROM {source} WHERE {time} IS NOT NULL")
                else:
                    inserted = self.run(
                        f"INSERT INTO {_q(self._stored(t.name))} BY NAME "
                        f"SELECT {columns}, "
                        f"COALESCE({_q(SOURCE_FILE)}, {fallback}) AS {_q(SOURCE_FILE)} "
                        f"FROM {source} WHERE {time} IS NOT NULL",
                        [displays if multi else displays[0]],
                    )
            finally:
                if unordered:
                    self.run("SET preserve_insertion_order = true")
        finally:
            self.con.unregister("_exhunt_batch")
        no_time = self._report_problems(t, problems, parts, data)
        if multi and not arrow:  # a relation of several files' rows: count each file's
            counts = dict(self.run(f"SELECT {_q(PART)}, count(*) FROM ({data.sql_query()}) AS _exhunt_r GROUP BY 1"))
            for i, part in enumerate(parts):
                part.report.used[t.name] += int(counts.get(i, 0)) - no_time[i]
        elif multi:
            for i, part in enumerate(parts):
                assert part.data is not None
                part.report.used[t.name] += part.data.num_rows - no_time[i]
        else:
            parts[0].report.used[t.name] += int(inserted[0][0]) if inserted else 0

    def _report_problems(self, t: TableSchema, problems: list[tuple[Any, ...]], parts: list[_Part],
                         data: Any) -> list[int]:
        """Skipped rows and coerced values into each part's report; rows skipped per part."""
        no_time = [0] * len(parts)
        for where, bad, raw_time, missing, i in problems:
            where = where or "?"
            report = parts[i].report
            if missing:
                no_time[i] += 1
                if raw_time in (None, ""):
                    report.skip(where, f"missing {t.time_column}")
                else:
                    report.skip(where, f"bad {t.time_column}", f"{raw_time!r} is not a date-time")
            for col in bad or []:
                if col != t.time_column:
                    quoted = len(report.messages) < MAX_MESSAGES
                    raw = parts[i].data if parts[i].data is not None else data
                    report.coerce(where, col, self._raw_value(raw, where, col) if quoted else "")
        return no_time

    @staticmethod
    def _raw_value(data: Any, where: str, column: str) -> str:
        if not isinstance(data, (pa.RecordBatch, pa.Table)):
            data = data.filter(f"{_q(SOURCE_RECORD)} = {literal(where)}").to_arrow_table()
        names = {n.lower(): n for n in data.schema.names}
        name = names.get(column.lower())
        if name is None:
            return "?"
        records = data.column(SOURCE_RECORD).to_pylist()
        try:
            i = records.index(where)
        except ValueError:
            return "?"
        return str(data.column(name)[i].as_py())

    @property
    def sealed(self) -> bool:
        """Whether DuckDB's file access is off (seal)."""
        return self._sealed.is_set()

    def seal(self) -> None:
        """Turn DuckDB's file access off for the rest of the session (it cannot be turned on again).

        Queries (rules, ad-hoc KQL) run only after this, so none can read, write or attach a
        file, nor install or load an extension, whatever its SQL says. Only the inputs hunted
        in place stay readable: their views read them at query time, and `lines_of` reads a
        CSV file again for its alerts' lines. DuckDB's spilling to its temporary folder is
        its own and unaffected. Loading files is refused from here on.
        """
        if self._sealed.is_set():
            return
        with self._seal_lock:
            if not self._sealed.is_set():
                self.run("SET allowed_paths = ?", [sorted(self._read_later)])
                self.run("SET enable_external_access = false")
                self._sealed.set()

    def on_cursor(self) -> Session:
        """This session on a DuckDB cursor of its own, to query from another thread (see
        DuckDBBackend.worker). A cursor has its own settings, variables and temporary macros,
        so those are made again; tables and views are shared. It must not load files; close
        it before the session."""
        other = copy.copy(self)
        other.con = self.con.cursor()
        lifecycle.register(other.con)
        other._tmpdir = None
        other._shown = None
        other.run("SET TimeZone='UTC'")
        for macro in sqlopt.MACROS:
            other.run(macro)
        compat.register_functions(other.con)
        other.set_window(EARLIEST, LATEST)
        return other

    def close(self) -> None:
        lifecycle.unregister(self.con)
        try:
            self.con.close()
        finally:
            lifecycle.remove_temp(self._tmpdir)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
