"""The DuckDB session: normalized tables in, KQL (via duckdb-kql) over them.

Every table of the schema exists from the start with all its columns (a rule
never fails because one export lacked a column), rows are stored in `_t_<Table>`
and queried through a view `<Table>` that adds `TimeGenerated` and applies the
current time window, so replaying a rule's schedule is a matter of moving two
variables. Rows live in a temporary on-disk database, not in Python memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import duckdb_kql
import pyarrow as pa
from duckdb_kql.translate import CLOCK_SLOT

from exhunt import enrich, sources
from exhunt import schema as sch
from exhunt.errors import RuleError
from exhunt.schema import PROVENANCE, SOURCE_FILE, SOURCE_RECORD, TableSchema
from exhunt.schema.normalize import BAD, RAW_TIME, Plan, plan
from exhunt.sources.base import MAX_MESSAGES, Batch, FileReport, SourceFile

EARLIEST = datetime(1601, 1, 1)
LATEST = datetime(9999, 12, 31)
#: Hidden column carrying each row's replay slice end (see Session.query_sliced).
SLICE_END = "_exhunt_now"
#: Rows per INSERT: small appends cost DuckDB far more per row (about two row groups here).
INSERT_ROWS = 245_760

Progress = Callable[[int], None]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Translated:
    sql: str
    params: dict[str, Any]
    uses_clock: bool


class Session:
    """One hunt: tables loaded once, any number of KQL queries run over them."""

    def __init__(self, db_path: Path | None = None, memory_limit: str = "768MB", in_memory: bool = False) -> None:
        self._tmpdir: str | None = None
        if in_memory:
            db_path = Path(":memory:")
        elif db_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="exhunt-")
            db_path = Path(self._tmpdir) / "hunt.duckdb"
        self.con = duckdb_kql.connect(str(db_path))
        self.run(f"SET memory_limit='{memory_limit}'")
        if self._tmpdir:
            self.run(f"SET temp_directory='{self._tmpdir}'")
        self.tables = sch.tables()
        self._extra: dict[str, list[str]] = {name: [] for name in self.tables}
        self._plans: dict[tuple[str, pa.Schema], Plan] = {}
        self._translated: dict[str, Translated] = {}
        self.set_window(EARLIEST, LATEST)
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
        return self.con.execute(sql, params or []).fetchall()

    def set_window(self, start: datetime, end: datetime) -> None:
        """Only rows with start < time <= end are visible to queries."""
        self.run("SET VARIABLE exhunt_ws = CAST(? AS TIMESTAMP)", [start])
        self.run("SET VARIABLE exhunt_we = CAST(? AS TIMESTAMP)", [end])

    def clear(self) -> None:
        """Empty every table (tests reuse one session for many cases)."""
        for name in self.tables:
            self.run(f"DELETE FROM {_q('_t_' + name)}")

    def kql_schema(self) -> dict[str, list[str]]:
        """Table -> columns, as duckdb-kql needs it for union/join column rules."""
        out = {}
        for t in self.tables.values():
            out[t.name] = t.names + self._extra[t.name] + list(PROVENANCE) + list(t.aliases)
        return out

    def row_count(self, table: str) -> int:
        return int(self.run(f"SELECT count(*) FROM {_q('_t_' + table)}")[0][0])

    def time_span(self, tables: Iterable[str]) -> tuple[datetime, datetime] | None:
        """Earliest and latest row time over the given tables (None when empty)."""
        lo: datetime | None = None
        hi: datetime | None = None
        for name in tables:
            t = self.tables[name]
            row = self.run(
                f"SELECT min({_q(t.time_column)}), max({_q(t.time_column)}) FROM {_q('_t_' + name)}"
            )[0]
            if row[0] is not None:
                lo = row[0] if lo is None else min(lo, row[0])
                hi = row[1] if hi is None else max(hi, row[1])
        return (lo, hi) if lo is not None and hi is not None else None

    # -- loading --------------------------------------------------------------

    def load_files(
        self,
        files: Iterable[SourceFile],
        input_format: str | None = None,
        table: str | None = None,
        progress: Progress | None = None,
    ) -> list[FileReport]:
        """Read, normalize and store every file; one report per file (archives add their members)."""
        if table is not None and sch.find_table(table) is None:
            from exhunt.errors import UsageError

            raise UsageError(f"unknown table {table!r}; known: {', '.join(sorted(self.tables))}")
        reports: list[FileReport] = []
        for src in files:
            self._load_one(src, input_format, table, reports, progress)
        return reports

    def _load_one(
        self, src: SourceFile, input_format: str | None, table: str | None,
        reports: list[FileReport], progress: Progress | None,
    ) -> None:
        report = FileReport(src.display)
        reports.append(report)
        try:
            head = src.head(sources.SNIFF_BYTES)
        except OSError as exc:
            report.error = f"cannot read: {exc}"
            return
        if not head:
            report.error = "empty file"
            return
        if input_format is None:
            for container in sources.containers():
                if container.sniff(src, head):
                    report.format = container.name
                    for member in container.members(src, report):
                        self._load_one(member, None, table, reports, progress)
                    if progress:
                        progress(src.size)
                    return
        reader = sources.choose(src, head, input_format)
        if reader is None:
            report.error = "not a telemetry format exhunt reads (unknown file type)"
            if progress:
                progress(src.size)
            return
        report.format = reader.name
        pending: list[Batch] = []
        try:
            direct = getattr(reader, "relation", None)
            found = direct(src, report, table) if direct else None
            if found is not None:
                # DuckDB reads the file itself: one statement, no Arrow round trip.
                self._insert_data(found[0], self.con.sql(found[1]), report, src.display)
            else:
                # Readers yield small batches; DuckDB appends far faster in big ones.
                for batch in reader.read(src, report, table):
                    if pending and (batch.table, batch.data.schema) != (pending[0].table, pending[0].data.schema):
                        self._flush(pending, report, src.display)
                    pending.append(batch)
                    if sum(b.data.num_rows for b in pending) >= INSERT_ROWS:
                        self._flush(pending, report, src.display)
                self._flush(pending, report, src.display)
        except (OSError, ValueError, pa.ArrowException, duckdb.IOException, duckdb.InvalidInputException) as exc:
            report.error = f"stopped reading: {exc}"
            try:
                self._flush(pending, report, src.display)
            except (ValueError, pa.ArrowException):
                pass
        if progress:
            progress(src.size)

    def _flush(self, pending: list[Batch], report: FileReport, display: str) -> None:
        if pending:
            data = pa.Table.from_batches([b for p in pending for b in pa.table(p.data).to_batches()]) \
                if len(pending) > 1 else pending[0].data
            table = pending[0].table
            pending.clear()
            self._insert_data(table, data, report, display)

    def insert(self, batch: Batch, report: FileReport, display: str) -> None:
        """Normalize one batch into its table; skipped rows and bad values go to the report."""
        self._insert_data(batch.table, batch.data, report, display)

    def _insert_data(self, table: str, data: Any, report: FileReport, display: str) -> None:
        """`data` is Arrow, or a DuckDB relation reading a file (see `_load_one`)."""
        t = self.tables[table]
        arrow = isinstance(data, (pa.RecordBatch, pa.Table))
        schema = data.schema if arrow else data.limit(0).to_arrow_table().schema
        key = (t.name, schema)
        p = self._plans.get(key)
        if p is None:
            p = plan(t, schema, "_exhunt_batch")
            self._plans[key] = p
            for col in p.extra_columns:
                if col not in self._extra[t.name] and t.column(col) is None:
                    self.run(f"ALTER TABLE {_q('_t_' + t.name)} ADD COLUMN {_q(col)} VARCHAR")
                    self._extra[t.name].append(col)
                    self._create_view(t)
                    self._translated.clear()
        report.unknown_columns.update(p.unknown_columns)
        if p.time_source is None:
            report.skip("(all rows)", f"no {t.time_column} column", count=data.num_rows if arrow else len(data))
            return
        # One pass over the batch: problems are found by a query that only evaluates the
        # check expressions (DuckDB prunes the other columns), and rows go straight into the
        # table. Only a batch holding command lines to decode is staged in a temp table,
        # because the enrichment rewrites rows in place.
        time = _q(t.time_column)
        self.con.register("_exhunt_batch", data)
        try:
            source = f"({p.sql}) AS _exhunt_norm"
            cmd_col = enrich.COMMAND_COLUMNS.get(t.name)
            if cmd_col is not None and self.run(
                f"SELECT count(*) FROM {source} WHERE {enrich.SQL_FILTER.format(col=_q(cmd_col))}"
            )[0][0]:
                self.run(f"CREATE OR REPLACE TEMP TABLE _exhunt_norm AS {p.sql}")
                enrich.apply(self.con, "_exhunt_norm", t.name)
                source = "_exhunt_norm"
            problems = self.run(
                f"SELECT {_q(SOURCE_RECORD)}, {BAD}, {RAW_TIME}, {time} IS NULL FROM {source} "
                f"WHERE len({BAD}) > 0 OR {time} IS NULL"
            )
            # An ordered append from Arrow runs on one thread; a big batch is appended in
            # parallel instead (1.3x to 2.7x faster measured). Only the physical order of rows inside
            # that batch changes, which no KQL result depends on.
            unordered = arrow and data.num_rows >= INSERT_ROWS // 2
            if unordered:
                self.run("SET preserve_insertion_order = false")
            try:
                inserted = self.run(
                    f"INSERT INTO {_q('_t_' + t.name)} BY NAME "
                    f"SELECT * EXCLUDE ({BAD}, {RAW_TIME}, {_q(SOURCE_FILE)}), "
                    f"COALESCE({_q(SOURCE_FILE)}, ?) AS {_q(SOURCE_FILE)} "
                    f"FROM {source} WHERE {time} IS NOT NULL",
                    [display],
                )
            finally:
                if unordered:
                    self.run("SET preserve_insertion_order = true")
        finally:
            self.con.unregister("_exhunt_batch")
        skipped = 0
        for where, bad, raw_time, no_time in problems:
            where = where or "?"
            if no_time:
                skipped += 1
                if raw_time in (None, ""):
                    report.skip(where, f"missing {t.time_column}")
                else:
                    report.skip(where, f"bad {t.time_column}", f"{raw_time!r} is not a date-time")
            for col in bad or []:
                if col != t.time_column:
                    quoted = len(report.messages) < MAX_MESSAGES
                    report.coerce(where, col, self._raw_value(data, where, col) if quoted else "")
        report.used[t.name] += int(inserted[0][0]) if inserted else 0

    @staticmethod
    def _raw_value(data: Any, where: str, column: str) -> str:
        if not isinstance(data, (pa.RecordBatch, pa.Table)):
            data = data.filter(f"{_q(SOURCE_RECORD)} = '{where.replace(chr(39), chr(39) * 2)}'").to_arrow_table()
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

    # -- queries --------------------------------------------------------------

    def translate(self, kql: str) -> Translated:
        """KQL -> SQL once per query text; the clock stays a parameter so windows reuse it."""
        cached = self._translated.get(kql)
        if cached is not None:
            return cached
        try:
            result = duckdb_kql.to_sql(kql, schema=self.kql_schema(), query_now=EARLIEST)
        except duckdb_kql.KqlUnsupportedError as exc:
            raise RuleError(f"the query uses KQL the engine cannot run: {exc}") from None
        except duckdb_kql.KqlError as exc:
            raise RuleError(self._kql_message(kql, exc)) from None
        params = dict(result.parameters)
        out = Translated(str(result), params, CLOCK_SLOT in params)
        self._translated[kql] = out
        return out

    def _kql_message(self, kql: str, exc: Exception) -> str:
        text = str(exc)
        m = re.search(r"unknown table '?([A-Za-z_][\w]*)", text) or re.search(r"table '([^']+)'", text)
        if m and m.group(1) not in self.tables:
            return f"table {m.group(1)!r} does not exist (known tables: {', '.join(sorted(self.tables))})"
        return f"KQL error: {text}"

    def query(self, kql: str, now: datetime | None = None) -> pa.Table:
        """Run KQL with now() pinned (defaults to the end of the current window or the wall clock)."""
        tr = self.translate(kql)
        params = dict(tr.params)
        if tr.uses_clock:
            params[CLOCK_SLOT] = now or datetime.utcnow()
        try:
            rel = self.con.sql(tr.sql, params=params) if params else self.con.sql(tr.sql)
            return rel.to_arrow_table()
        except duckdb.BinderException as exc:
            raise RuleError(self.binder_message(kql, str(exc))) from None
        except duckdb.Error as exc:
            raise RuleError(f"query failed in the engine: {str(exc).splitlines()[0]}") from None

    def query_sliced(self, kql: str, step: timedelta) -> pa.Table | None:
        """A row-wise rule's whole replay in one query, or None when that cannot be done exactly.

        Replaying a rule judged row by row means one run per `step`-aligned slice with
        now() at the slice's end. Each row is seen by exactly one run, so the union of
        all runs equals one query where every row carries its own slice end and the
        query's clock reads it. That holds only if the clock is used where a source
        row is in scope; otherwise DuckDB cannot bind the column and the caller
        replays slice by slice.
        """
        tr = self.translate(kql)
        params = {k: v for k, v in tr.params.items() if k != CLOCK_SLOT}
        sql = tr.sql
        if tr.uses_clock:
            slot = "$" + CLOCK_SLOT
            head = sql.lstrip()
            if CLOCK_SLOT in kql or head[:5].upper() != "WITH " or head[5:15].upper().startswith("RECURSIVE"):
                return None
            size = int(step / timedelta(microseconds=1))
            ctes = []
            for t in self.tables.values():
                if _q(t.name) not in sql:
                    continue
                time = _q(t.time_column)
                alias = "".join(f", {_q(src)} AS {_q(a)}" for a, src in t.aliases.items())
                ctes.append(
                    f"{_q(t.name)} AS (SELECT *{alias}, make_timestamp(CAST(ceil(epoch_us({time}) / {size}) "
                    f"AS BIGINT) * {size}) AS {_q(SLICE_END)} FROM {_q('_t_' + t.name)})"
                )
            if not ctes:
                return None
            sql = "WITH " + ", ".join(ctes) + ", " + head[5:].replace(slot, _q(SLICE_END))
        try:
            rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
            table = rel.to_arrow_table()
        except duckdb.BinderException:
            return None
        except duckdb.Error as exc:
            raise RuleError(f"query failed in the engine: {str(exc).splitlines()[0]}") from None
        return table.drop_columns([SLICE_END]) if SLICE_END in table.column_names else table

    def tables_named_in(self, kql: str) -> list[str]:
        """Tables the query text names (a word match; comments are ignored)."""
        text = re.sub(r"//[^\n]*", "", kql)
        words = set(re.findall(r"[A-Za-z_]\w*", text))
        return [t for t in self.tables if t in words]

    def binder_message(self, kql: str, text: str) -> str:
        m = re.search(r'[Cc]olumn (?:with name )?"([^"]+)"', text)
        if m:
            col = m.group(1)
            named = self.tables_named_in(kql)
            lacking = [t for t in named if not self.tables[t].has(col) and col not in self._extra[t]]
            if lacking:
                where = ", ".join(lacking)
                return (f"column {col!r} does not exist in table {where} "
                        f"(the query names it; Defender would reject it the same way)")
            return f"column {col!r} is not available where the query uses it"
        return f"query failed in the engine: {text.splitlines()[0]}"

    def close(self) -> None:
        self.con.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
