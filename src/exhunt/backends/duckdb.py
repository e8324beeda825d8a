"""The embedded DuckDB engine as a backend: KQL translated by duckdb-kql, run over the tables
`exhunt.engine.Session` loaded (see exhunt.backends.base for the contract).

Every table is queried through a view `<Table>` that adds `TimeGenerated` and shows only the
current window (two variables of the connection); a replay instead hides the views behind
CTEs of the same name over the stored rows `_t_<Table>`, so that all its runs are one query
(query_sliced, query_windows). Queries run only once loading is done and DuckDB's file access
is off (seal): a rule reads the tables, no file.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from exhunt import kqlcache, sqlguard, sqlopt
from exhunt.backends.base import SLICE_END, Events, Later, Source, Window
from exhunt.engine import EARLIEST, LATEST, Session, check_stop, key_match
from exhunt.errors import RuleError
from exhunt.kql import compat, messages, splice
from exhunt.rule import tables_named_in
from exhunt.schema import SOURCE_FILE, SOURCE_RECORD, TableSchema
from exhunt.sqltext import ident as _q

#: duckdb-kql's parameter for now() (`duckdb_kql.translate.CLOCK_SLOT`; a test checks they agree).
#: Named here, not imported: a run whose translations are all cached never loads the translator
#: (its ANTLR parser is a tenth of a second of every start-up).
CLOCK_SLOT = "kqlnow"
#: Hidden column carrying each row's replay slice end (see DuckDBBackend.query_sliced).
ROW_NOW = "_exhunt_now"


def regex_message(pattern: str, why: str) -> str:
    """Why RE2 refuses a rule's regular expression, in words."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in pattern)
    return (f"the regular expression `{shown}` cannot run: RE2, the local engine's regex library, refuses it ({why}); "
            f"RE2 has no look-around, back-references, atomic groups or possessive quantifiers")


def _quiet_arrow() -> None:
    """Query results are alert-sized, so the extra copy DuckDB warns about does not matter.

    A filter set before each query, not `warnings.catch_warnings` around it: that one is not
    thread-safe (rules run on several threads, see DuckDBBackend.worker), and a filter set once
    can be dropped by a caller's own catch_warnings (pytest's, around each test).
    """
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)


def _ceil_div(expr: str, size: int) -> str:
    """SQL for ceil(expr / size) over BIGINTs, exact for any sign (DuckDB's `//` truncates)."""
    return f"(({expr} + {size - 1}) - ((({expr} + {size - 1}) % {size}) + {size}) % {size}) // {size}"


@dataclass
class Translated:
    sql: str
    params: dict[str, Any]
    uses_clock: bool


@dataclass
class _Translations:
    """Translations by query text, shared by a backend and its workers; made again when the
    tables gained columns (the loading side's `columns_version`)."""

    version: int
    entries: dict[str, Translated] = field(default_factory=dict)


#: Where an alert's row may still be (CSV files hunted in place, see Session.lines_of): for
#: each, the file and the values of the row in that file's table, in search order.
_Candidates = list[tuple[str, dict[str, Any]]]
#: KQL column type -> (Python types an alert's value must have to be that column's stored
#: value, the Arrow type the keys are sent to DuckDB as). A value of another type was made
#: by the rule (`extend ReportId = strcat(...)`), so it does not pin the row down.
_KEY_TYPES: dict[str, tuple[tuple[type, ...], pa.DataType]] = {
    "string": ((str,), pa.string()), "dynamic": ((str,), pa.string()), "guid": ((str,), pa.string()),
    "long": ((int,), pa.int64()), "int": ((int,), pa.int64()), "bool": ((bool,), pa.bool_()),
    "datetime": ((datetime,), pa.timestamp("us")), "real": ((float, int), pa.float64()),
    "double": ((float, int), pa.float64()), "timespan": ((timedelta,), pa.duration("us")),
}
#: Per table, result row keys -> _key_spec of them (the rows of one result share their keys).
_Specs = dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str, str], ...]]


def _key_spec(t: TableSchema, keys: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(row key, stored column, its KQL type) for each key of a result row naming a column of
    `t` exactly (or through an alias)."""
    out = []
    for key in keys:
        name = t.aliases.get(key, key)
        col = t.column(name)
        if col is not None and col.name == name and col.kql_type in _KEY_TYPES:
            out.append((key, col.name, col.kql_type))
    return tuple(out)


class DuckDBBackend:
    """The tables of a loaded `Session`, queried with KQL (a `Backend`)."""

    name = "duckdb"

    def __init__(self, session: Session, own: bool = False) -> None:
        """`own`: closing the backend closes the session too."""
        self.session = session
        self.con = session.con
        self._own = own
        self._translations = _Translations(session.columns_version)
        self._workers: list[DuckDBBackend] = []
        #: Sources handed out as `Later`, found at the first `get` of any (see _settle).
        self._later: list[tuple[Later, _Candidates]] = []
        self._later_lock = threading.Lock()
        #: Result columns of translated queries (query_matching).
        self._result_columns: dict[str, set[str]] = {}

    # -- tables -----------------------------------------------------------------------

    def tables(self) -> dict[str, list[str]]:
        return self.session.kql_schema()

    def _run(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """A statement of the backend's own (time span, slices, provenance); an engine error
        in plain words (a RuleError)."""
        try:
            return self.session.run(sql, params)
        except duckdb.Error as exc:
            check_stop(exc)  # the run is being stopped: not this rule's failure
            raise RuleError(self.failure(exc)) from None

    def time_span(self, tables: Sequence[str]) -> Window | None:
        """Earliest and latest row time over the given tables (None when empty)."""
        lo: datetime | None = None
        hi: datetime | None = None
        for name in tables:
            t = self.session.tables[name]
            row = self._run(
                f"SELECT min({_q(t.time_column)}), max({_q(t.time_column)}) FROM {_q('_t_' + name)} "
                f"WHERE {self.session.in_bounds(t)}"
            )[0]
            if row[0] is not None:
                lo = row[0] if lo is None else min(lo, row[0])
                hi = row[1] if hi is None else max(hi, row[1])
        return (lo, hi) if lo is not None and hi is not None else None

    def slice_ends(self, tables: Sequence[str], step: timedelta) -> list[datetime]:
        """End of every `step`-aligned slice (since 1970) that holds at least one row of `tables`."""
        size = int(step / timedelta(microseconds=1))
        ends: set[int] = set()
        for name in tables:
            t = self.session.tables[name]
            col = _q(t.time_column)
            rows = self._run(f"SELECT DISTINCT CAST(ceil(epoch_us({col}) / {size}) AS BIGINT) "
                             f"FROM {_q('_t_' + name)} WHERE {col} IS NOT NULL AND {self.session.in_bounds(t)}")
            ends.update(int(r[0]) for r in rows)
        epoch = datetime(1970, 1, 1)
        return [epoch + timedelta(microseconds=e * size) for e in sorted(ends)]

    # -- queries ----------------------------------------------------------------------

    def translate(self, kql: str) -> Translated:
        """KQL -> SQL once per query text; the clock stays a parameter so windows reuse it."""
        cache = self._translations
        if cache.version != self.session.columns_version:  # columns were added: schema changed
            cache.entries.clear()
            cache.version = self.session.columns_version
        cached = cache.entries.get(kql)
        if cached is not None:
            return cached
        schema = self.session.kql_schema()
        # Keyed by the text as written and the workarounds' version: a warm run rewrites nothing.
        entry = kqlcache.inputs(kql, schema, EARLIEST)
        entry = dataclasses.replace(entry, translator=f"{entry.translator}+compat{compat.VERSION}")
        stored = kqlcache.get(entry)
        fresh = stored is None
        spliced = False
        if stored is None:
            refused = messages.refusals(kql)
            if refused:
                raise RuleError("; ".join(refused))
            spliced = splice.find(kql) is not None
            stored = self._to_sql(kql, {})
        sql = sqlopt.use_tostring_macro(sqlopt.merge_regex_runs(stored[0]))
        params = stored[1]
        # Whatever wrote it (the translator, or a cache entry), only one SELECT ever runs. DuckDB
        # parses a new translation; a signed entry was parsed when stored: the tokens suffice.
        kind = sqlguard.statement_kind(self.con, sql, thorough=fresh)
        if kind is not None and kind.startswith("SQL DuckDB cannot parse"):
            raise RuleError(messages.untranslatable(kind))
        if kind is not None:
            raise RuleError(f"refused to run: the query's SQL is {kind}, not one SELECT "
                            f"(a rule may only read the hunted tables)")
        if fresh and not spliced:  # a spliced query's columns may come from the data: not kept
            kqlcache.put(entry, *stored)
        out = Translated(sql, params, CLOCK_SLOT in params)
        cache.entries[kql] = out
        return out

    def _to_sql(self, kql: str, extra: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
        """KQL -> (SQL, parameters) over the loaded tables and `extra` ones (a spliced query's
        parts); every translator error in plain words."""
        import duckdb_kql

        compat.install()
        schema = {**self.session.kql_schema(), **extra}
        plan = splice.find(kql)
        if plan is not None:
            return splice.splice(kql, plan, self._to_sql, self._describe, self._rows, extra)
        try:
            rewritten = compat.rewrite(kql, schema, self._columns_of).kql
            result = duckdb_kql.to_sql(rewritten, schema=schema, query_now=EARLIEST)
        except duckdb_kql.KqlUnsupportedError as exc:
            said = messages.translator(kql, exc, self.session.tables)
            if re.search(r"construct '(source:)?[A-Za-z]+'", str(exc)):
                # an operator or source: compat names it as written (`top-nested`, `evaluate pivot`)
                where = re.search(r"\(line \d+, column \d+\)", said)
                said = compat.explain(str(exc)) + (f" {where.group(0)}" if where else "")
            elif "not supported" in said and "--cluster" not in said:
                said += ("; run the query on Azure Data Explorer or Log Analytics "
                         "(--cluster/--database or --workspace), or rewrite that part")
            raise RuleError(said) from None
        except duckdb_kql.KqlError as exc:
            raise RuleError(messages.translator(kql, exc, self.session.tables)) from None
        except RecursionError:
            raise RuleError("the query is nested too deeply to translate: simplify it") from None
        return str(result), dict(result.parameters)

    def _describe(self, sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """The columns (name, DuckDB type) of a spliced query's part."""
        return self._spliced_run(sql, params, rows=False)[0]

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a spliced query's part (the keys bag_unpack and pivot make columns of)."""
        return self._spliced_run(sql, params, rows=True)[1]

    def _spliced_run(self, sql: str, params: dict[str, Any], rows: bool) -> tuple[list[tuple[str, str]],
                                                                                  list[tuple[Any, ...]]]:
        """Run a part over every row, then show the window shown before (a rule's replay window
        must not decide which columns a bag or a pivot makes: the translation serves every window)."""
        params = {**params}
        if CLOCK_SLOT in params or f"${CLOCK_SLOT}" in sql:
            params[CLOCK_SLOT] = EARLIEST
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        shown = self.session.shown
        self.session.set_window(EARLIEST, LATEST)
        try:
            cur = self.con.execute(sql, used)
            columns = [(str(d[0]), str(d[1])) for d in cur.description or ()]
            return columns, (list(cur.fetchall()) if rows else [])
        except duckdb.Error as exc:
            check_stop(exc)
            raise RuleError(self.failure(exc)) from None
        finally:
            if shown is not None:
                self.session.set_window(*shown)

    def _columns_of(self, kql: str) -> list[tuple[str, str]]:
        """The result columns of a query and their DuckDB types (compat's rewrites need the
        columns reaching an operator, and the type of a between's bound)."""
        tr = self.translate(kql)
        params = dict(tr.params)
        if tr.uses_clock:
            params[CLOCK_SLOT] = EARLIEST
        try:
            cur = self.con.execute(f"SELECT * FROM ({tr.sql}) AS _exhunt_c LIMIT 0", params)
        except duckdb.Error as exc:
            raise RuleError(self.failure(exc, tr)) from None
        return [(str(d[0]), str(d[1])) for d in cur.description or ()]

    def _prepared(self, kql: str, now: datetime | None, window: Window | None) -> tuple[Translated, dict[str, Any]]:
        """The query translated, its parameters with now() pinned (the wall clock when None), and
        the session's window set to `window` (everything when None)."""
        check_stop()
        tr = self.translate(kql)
        params = dict(tr.params)
        if tr.uses_clock:
            params[CLOCK_SLOT] = now or datetime.utcnow()
        self.session.set_window(*(window or (EARLIEST, LATEST)))
        return tr, params

    def query(self, kql: str, now: datetime | None = None, window: Window | None = None) -> pa.Table:
        """Run KQL with now() pinned (the wall clock when None), over the rows of `window`."""
        tr, params = self._prepared(kql, now, window)
        try:
            # execute() plans once; the relation API (con.sql) binds and plans the statement
            # again when it runs, which doubles the cost of every replay window.
            return self._execute(tr.sql, params)
        except duckdb.BinderException as exc:
            raise RuleError(self.binder_message(kql, str(exc))) from None
        except duckdb.Error as exc:
            check_stop(exc)
            raise RuleError(self.failure(exc, tr, kql)) from None

    def check(self, kql: str) -> None:
        """Raise the RuleError the query would get if it ran: translated and bound, no row read.

        A rule whose tables hold no rows is not run; without this its unknown table or column
        would pass as "no rows" (every table of the schema is a view, loaded or not).
        """
        tr, params = self._prepared(kql, None, None)
        try:
            self._execute(f"SELECT * FROM ({tr.sql}) AS _exhunt_c LIMIT 0", params)
        except duckdb.BinderException as exc:
            raise RuleError(self.binder_message(kql, str(exc))) from None
        except duckdb.Error as exc:
            check_stop(exc)
            raise RuleError(self.failure(exc, tr, kql)) from None

    def query_matching(self, kql: str, match: dict[str, Any], now: datetime | None = None,
                       window: Window | None = None, limit: int = 100) -> pa.Table:
        """The rows of `query(kql, now, window)` whose columns equal `match` (at most `limit`);
        columns of `match` the result does not have are left out, and none left matches nothing.

        The values are bound as parameters, never written into the SQL: they come from the data
        (an alert's values, which whoever wrote the logs chose). DuckDB pushes the comparisons
        down to the tables' scans where a column is passed on unchanged.
        """
        tr, params = self._prepared(kql, now, window)
        inner = f"SELECT * FROM ({tr.sql}) AS _exhunt_m"
        try:
            names = self._result_columns.get(tr.sql)
            if names is None:  # binding a rule's SQL costs; its columns do not change
                names = self._result_columns[tr.sql] = set(self._execute(inner + " LIMIT 0", params).column_names)
            conds = []
            for i, (col, value) in enumerate(match.items()):
                if col in names:
                    conds.append(f"_exhunt_m.{_q(col)} = $exhunt_match{i}")
                    params[f"exhunt_match{i}"] = value
            where = " AND ".join(conds) or "false"
            return self._execute(f"{inner} WHERE {where} LIMIT {int(limit)}", params)
        except duckdb.BinderException as exc:
            raise RuleError(self.binder_message(kql, str(exc))) from None
        except duckdb.Error as exc:
            check_stop(exc)
            raise RuleError(self.failure(exc, tr, kql)) from None

    def query_sliced(self, kql: str, step: timedelta) -> pa.Table | None:
        """A row-wise rule's whole replay in one query, or None when that cannot be done exactly.

        Replaying a rule judged row by row means one run per `step`-aligned slice with
        now() at the slice's end. Each row is seen by exactly one run, so the union of
        all runs equals one query where every row carries its own slice end and the
        query's clock reads it. That holds only if the clock is used where a source
        row is in scope; otherwise DuckDB cannot bind the column and the caller
        replays slice by slice.
        """
        check_stop()
        tr = self.translate(kql)
        params = {k: v for k, v in tr.params.items() if k != CLOCK_SLOT}
        sql = tr.sql
        if tr.uses_clock:
            if CLOCK_SLOT in kql:
                return None
            size = int(step / timedelta(microseconds=1))
            end = f"make_timestamp(CAST(ceil(epoch_us({{time}}) / {size}) AS BIGINT) * {size}) AS {_q(ROW_NOW)}"
            shadowed = self._shadow_tables(sql.replace("$" + CLOCK_SLOT, _q(ROW_NOW)), extra=end)
            if shadowed is None:
                return None
            sql = shadowed
        self.session.set_window(EARLIEST, LATEST)
        try:
            # execute(), not con.sql(): the relation binds the statement once to make the
            # relation and again to run it, and binding is most of a rule's cost on small data.
            table = self._execute(sql, params)
        except duckdb.BinderException:
            return None
        except duckdb.Error as exc:
            check_stop(exc)
            raise RuleError(self.failure(exc, tr, kql)) from None
        return table.drop_columns([ROW_NOW]) if ROW_NOW in table.column_names else table

    def query_windows(self, kql: str, windows: list[Window], step: timedelta | None = None) -> pa.Table | None:
        """Every run of a replay in one query, or None when DuckDB cannot run it that way.

        Run i sees the rows with start_i < time <= end_i and reads now() as end_i, exactly as
        `query(kql, end_i, (start_i, end_i))` would. One query per run pays, per run, the
        binding of the translated SQL (0.05-0.5 s for the shipped rules, whatever the data)
        and a scan of every stored row. Here the runs are a list and the rule a LATERAL
        subquery evaluated for each: DuckDB binds it once and decorrelates it into joins on
        the run, so each table is read once and each row goes to the runs that see it. When
        every run is as long and ends on the `step` grid (a replay's runs do), each row also
        carries the index of every run that can see it, so that join is on equal keys instead
        of comparing each row with each run. The result carries each row's run end in
        SLICE_END and is ordered by it (the order runs would have been made in); rows within
        one run come in any order, as they do from a single run.
        """
        if not windows:
            return None
        check_stop()
        tr = self.translate(kql)
        if CLOCK_SLOT in kql or "_exhunt_w" in tr.sql:
            return None
        us = timedelta(microseconds=1)
        epoch = datetime(1970, 1, 1)
        size = int(step / us) if step else 0
        length = {end - start for start, end in windows}
        keyed = size > 0 and len(length) == 1 and all(int((end - epoch) / us) % size == 0 for _, end in windows)
        bounds = "{time} > _exhunt_w.ws AND {time} <= _exhunt_w.we"
        key = ""
        if keyed:
            # Run k ends at k * size and sees the rows with k * size - span < time <= k * size: a row
            # is seen by runs ceil(us / size) .. ceil((us + span) / size) - 1 (in integers: exact).
            span = int(length.pop() / us)
            first = _ceil_div("epoch_us({time})", size)
            last = _ceil_div(f"(epoch_us({{time}}) + {span})", size)
            key = f"unnest(generate_series({first}, {last} - 1))"
            bounds = "_exhunt_k = _exhunt_w.k AND " + bounds
        sql = self._shadow_tables(tr.sql.replace("$" + CLOCK_SLOT, "_exhunt_w.we"), where=bounds, key=key)
        if sql is None:
            return None
        runs = "unnest($exhunt_starts) AS ws, unnest($exhunt_ends) AS we"
        if keyed:
            runs += f", CAST(epoch_us(unnest($exhunt_ends)) // {size} AS BIGINT) AS k"
        sql = (f"SELECT _exhunt_w.we AS {_q(SLICE_END)}, _exhunt_q.* FROM (SELECT {runs}) AS _exhunt_w, "
               f"LATERAL ({sql}) AS _exhunt_q ORDER BY 1")
        params = {k: v for k, v in tr.params.items() if k != CLOCK_SLOT}
        params["exhunt_starts"] = [start for start, _ in windows]
        params["exhunt_ends"] = [end for _, end in windows]
        try:
            return self._execute(sql, params)
        except duckdb.Error as exc:
            check_stop(exc)
            return None  # the caller runs window by window, which reports a real error itself

    def _execute(self, sql: str, params: dict[str, Any]) -> pa.Table:
        """Run a query's SQL, file access off (see seal)."""
        self.seal()
        _quiet_arrow()
        return self.con.execute(sql, params).to_arrow_table()

    def seal(self) -> None:
        """Turn DuckDB's file access off for good (see Session.seal): only queries from here on."""
        self.session.seal()

    def failure(self, exc: duckdb.Error, tr: Translated | None = None, kql: str = "") -> str:
        """A query's failure in plain words (the rule's name is added by the caller)."""
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, duckdb.PermissionException):
            return ("refused: the query tried to read or write a file, or to load an extension, which "
                    f"no query may do (file access is off while queries run): {text}")
        if isinstance(exc, duckdb.OutOfMemoryException):
            return (f"ran out of memory (DuckDB's share of this run is {self.session.memory_limit}; give the run "
                    f"more with --memory, or hunt fewer files at once): {text}")
        if isinstance(exc, duckdb.InvalidInputException) and tr is not None:
            bad = sqlguard.regex_problems(self.con, tr.sql, tr.params)
            if bad:
                return "; ".join(regex_message(pattern, why) for pattern, why in bad)
        return messages.engine(kql, text, self.session.tables)

    def _shadow_tables(self, sql: str, extra: str = "", where: str = "", key: str = "") -> str | None:
        """`sql` with a CTE in front for each table it reads, named as the table so it hides
        the table's view: the stored rows with the view's aliases, plus `extra` columns,
        filtered by `where`, which may read `_exhunt_k` computed by `key` (`{time}` stands
        for the table's time column in each). None when the statement's shape does not
        allow it (a recursive WITH)."""
        head = sql.lstrip()
        if head[:5].upper() == "WITH " and head[5:15].upper().startswith("RECURSIVE"):
            return None
        words = set(re.findall(r"[A-Za-z_]\w*", sql))
        bounded = self.session.bounds != (EARLIEST, LATEST)
        ctes = []
        for t in self.session.tables.values():
            if t.name not in words:
                continue
            time = _q(t.time_column)
            alias = "".join(f", {_q(src)} AS {_q(a)}" for a, src in t.aliases.items())
            more = ", " + extra.format(time=time) if extra else ""
            filt = " WHERE " + where.format(time=time) if where else ""
            if bounded:
                filt += (" AND " if filt else " WHERE ") + self.session.in_bounds(t)
            # NOT MATERIALIZED: a table two parts of a rule read would otherwise be copied
            # whole before either filters it (measured 0.64 s -> 0.50 s on the seed rule).
            source = _q("_t_" + t.name)
            columns = "*"
            if key:  # a column the filter reads, not one the rule sees
                source = f"(SELECT *, {key.format(time=time)} AS _exhunt_k FROM {source})"
                columns = "* EXCLUDE (_exhunt_k)"
            ctes.append(f"{_q(t.name)} AS NOT MATERIALIZED (SELECT {columns}{alias}{more} FROM {source}{filt})")
        if not ctes:
            return None
        if head[:5].upper() == "WITH ":
            return "WITH " + ", ".join(ctes) + ", " + head[5:]
        return "WITH " + ", ".join(ctes) + " " + head

    def binder_message(self, kql: str, text: str) -> str:
        m = re.search(r'(?:[Cc]olumn|Alias) (?:with name )?"(.+?)"(?= not found| exists| referenced| cannot|$)', text)
        if m:
            col = m.group(1)
            tables = self.session.tables
            named = tables_named_in(kql, tables)
            lacking = [t for t in named if not tables[t].has(col) and col not in self.session.extra[t]]
            if lacking:
                where = ", ".join(lacking)
                return (f"column `{col}`{messages.located(kql, col)} does not exist in table {where} "
                        f"(Defender would reject it the same way)")
            return f"column `{col}`{messages.located(kql, col)} is not available where the query uses it"
        return messages.engine(kql, text.splitlines()[0], self.session.tables)

    # -- events around a time (the HTML report's timeline) -----------------------------

    def events(self, tables: Sequence[str], host: str, window: Window, near: Sequence[datetime],
               limit: int) -> Events:
        """Rows of `tables` on server `host` within `window` (both ends included), the `limit`
        nearest to a time of `near` first (then by time), returned in time order.

        The server, the times and the limit are bound parameters: a server's name comes from
        the data, and no value from the data is ever part of the SQL's text.
        """
        self.seal()
        found: list[tuple[datetime, str, dict[str, Any]]] = []
        total = 0
        for name in tables:
            t = self.session.tables.get(name)
            device = next((c for c in ("DeviceName", "Computer") if t is not None and t.has(c)), None)
            if t is None or device is None:
                continue
            time = _q(t.time_column)
            name_of = f"lower(trim(CAST({_q(device)} AS VARCHAR)))"
            host_of = (f"CASE WHEN regexp_full_match({name_of}, '[0-9.]+') OR contains({name_of}, ':') "
                       f"THEN {name_of} ELSE split_part({name_of}, '.', 1) END")
            where = (f"{time} >= CAST(? AS TIMESTAMP) AND {time} <= CAST(? AS TIMESTAMP) AND {host_of} = ? "
                     f"AND {self.session.in_bounds(t)}")
            params: list[Any] = [window[0], window[1], host]
            source = _q("_t_" + name)
            total += int(self._run(f"SELECT count(*) FROM {source} WHERE {where}", params)[0][0])
            distance = (f"(SELECT min(abs(epoch_us({time}) - epoch_us(_exhunt_n))) "
                        f"FROM unnest(CAST(? AS TIMESTAMP[])) AS _exhunt_u(_exhunt_n))")
            sql = (f"SELECT * FROM {source} WHERE {where} "
                   f"ORDER BY {distance}, {time}, {_q(SOURCE_FILE)}, {_q(SOURCE_RECORD)} LIMIT ?")
            try:
                check_stop()
                cursor = self.con.execute(sql, [*params, list(near), limit])
                names = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            except duckdb.Error as exc:
                check_stop(exc)
                raise RuleError(self.failure(exc)) from None
            for values in rows:
                row = {k: v for k, v in zip(names, values, strict=True)
                       if v is not None and (not k.startswith("_") or k in (SOURCE_FILE, SOURCE_RECORD))}
                found.append((values[names.index(t.time_column)], name, row))
        found.sort(key=lambda f: min((abs(f[0] - n) for n in near), default=timedelta(0)))
        kept = sorted(found[:limit], key=lambda f: (f[0], f[1]))
        return Events([(name, row) for _, name, row in kept], total)

    # -- threads ----------------------------------------------------------------------

    def worker(self) -> DuckDBBackend:
        """This backend on a DuckDB cursor of its own, to run queries from another thread.

        Rules are independent and, on small inputs, each costs mostly DuckDB's binding of its
        SQL, which runs on one core: two rules bound at once take about half the time. A cursor
        has its own settings, variables and temporary macros, so those are made again; tables,
        views and translations are shared. It is closed with this backend.
        """
        other = copy.copy(self)
        other.session = self.session.on_cursor()
        other.con = other.session.con
        other._own = True
        other._workers = []
        other._later = []
        other._later_lock = threading.Lock()
        self._workers.append(other)
        return other

    def close(self) -> None:
        """Close the workers, and the session when the backend owns it."""
        for w in self._workers:
            w.close()
        self._workers.clear()
        if self._own:
            self.session.close()

    def __enter__(self) -> DuckDBBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- provenance -------------------------------------------------------------------

    def sources(self, rows: list[dict[str, Any]], tables: Sequence[str]) -> list[Source | Later | None]:
        """The file and record of each row: its provenance columns when the rule kept them,
        else the first row in scan order of the first of `tables` holding its values. A row
        that may come from a CSV file hunted in place (Session.lines_later) gets a `Later`:
        its line is found by one read of that file for every such row of every rule."""
        specs: _Specs = {}
        looked_up = self._find_sources(list(tables), rows, specs)
        out: list[Source | Later | None] = []
        for i, row in enumerate(rows):
            if SOURCE_FILE in row:
                source = (str(row.get(SOURCE_FILE) or ""), str(row.get(SOURCE_RECORD) or ""))
            else:
                source = looked_up.get(i, ("", ""))
            candidates = self._candidates(tables, row, source, specs)
            if candidates:
                later = Later(self._settle, source)
                with self._later_lock:
                    self._later.append((later, candidates))
                out.append(later)
            else:
                out.append(source)
        return out

    def _conditions(self, name: str, row: dict[str, Any], specs: _Specs) -> dict[str, Any] | None:
        """Column -> value for each value the row kept that can be the stored value of a column
        of table `name`; None when they cannot pin a row down (no time, or nothing besides it)."""
        t = self.session.tables[name]
        conds: dict[str, Any] = {}
        shape = (name, tuple(row))
        spec = specs.get(shape)
        if spec is None:
            spec = specs[shape] = _key_spec(t, shape[1])
        for key, col, kind in spec:
            value = row[key]
            if value is not None and value != "" and type(value) in _KEY_TYPES[kind][0] and \
                    (type(value) is not int or -(1 << 63) <= value < 1 << 63):
                conds[col] = value
        if t.time_column not in conds or len(conds) < 2:
            return None
        return conds

    def _key_table(self, name: str, rows: dict[int, dict[str, Any]]) -> pa.Table:
        """The rows' values as one Arrow table: `_i` (the row's index), then one column per table
        column any row constrains, typed as stored, null where that row does not constrain it
        (see engine.key_match), so one join matches every row whatever its shape."""
        t = self.session.tables[name]
        order = list(rows)
        names = list(dict.fromkeys(c for conds in rows.values() for c in conds))
        columns: dict[str, Any] = {"_i": pa.array(order, pa.int64())}
        for col in names:
            kind = t.column(col).kql_type  # type: ignore[union-attr]
            columns[col] = pa.array([rows[i].get(col) for i in order], _KEY_TYPES[kind][1])
        return pa.table(columns)

    def _first_matches(self, table: str, keys: pa.Table) -> list[tuple[Any, ...]]:
        """(key `_i`, file, record) of the first row in scan order of `table` (CSV files whose
        lines come later left out, see Session.searchable) matching each key row (key_match).

        One join: DuckDB builds its hash table on the keys and streams the table's key and
        provenance columns past it, so memory stays bounded whatever the number of keys.
        """
        cols = [c for c in keys.column_names if c != "_i"]
        select = ", ".join(_q(c) for c in [*cols, SOURCE_FILE, SOURCE_RECORD])
        self.con.register("_exhunt_keys", keys)
        try:
            return self._run(
                f"SELECT k._i, arg_min(r.{_q(SOURCE_FILE)}, r._exhunt_o), arg_min(r.{_q(SOURCE_RECORD)}, r._exhunt_o) "
                f"FROM _exhunt_keys k JOIN (SELECT {select}, row_number() OVER () AS _exhunt_o "
                f"FROM {self.session.searchable(table)} AS _exhunt_s) r ON {key_match(keys)} GROUP BY k._i")
        finally:
            self.con.unregister("_exhunt_keys")

    def _find_sources(self, tables: list[str], rows: list[dict[str, Any]], specs: _Specs) -> dict[int, Source]:
        """(file, record) of each row that lost its provenance columns, by row index: the first
        row in scan order of the first table holding a row with its values.

        One join per table for all rows, the rows' values sent as one Arrow table: time and
        memory grow with the rows' values and one scan of the table's key columns, never with
        alerts times rows (DuckDB builds its hash table on the keys and streams the table).
        CSV files hunted in place are not searched here but by `_settle`, after every other
        file (their rows have no line number until then).
        """
        found: dict[int, Source] = {}
        pending = [i for i, row in enumerate(rows) if SOURCE_FILE not in row]
        for name in tables:
            keys = {i: c for i in pending if (c := self._conditions(name, rows[i], specs)) is not None}
            if not keys:
                continue
            for i, file, record in self._first_matches(name, self._key_table(name, keys)):
                found.setdefault(int(i), (str(file or ""), str(record or "")))
            pending = [i for i in pending if i not in found]
        return found

    def _candidates(self, tables: Sequence[str], row: dict[str, Any], source: Source, specs: _Specs) -> _Candidates:
        """Where an alert's row may be among the CSV files hunted in place."""
        lazy = self.session.lazy
        if source[1] or not lazy:
            return []
        files = [lazy[source[0]]] if source[0] in lazy else [] if source[0] else \
            [f for name in tables for f in lazy.values() if f.table == name]
        out = []
        for f in files:
            conds = self._conditions(f.table, row, specs)
            if conds is not None:
                out.append((f.display, conds))
        return out

    def _settle(self) -> None:
        """Find the lines of every pending `Later`: one targeted read per CSV file hunted in place
        for all the rows it may hold (see Session.lines_of), files in the order rows named them."""
        with self._later_lock:  # held throughout: a `get` on another thread waits for the lines
            pending, self._later = self._later, []
            left = dict(enumerate(pending))
            files = list(dict.fromkeys(display for _, cands in pending for display, _ in cands))
            for display in files:
                keys = {i: conds for i, (_, cands) in left.items() for d, conds in cands if d == display}
                table = self.session.lazy[display].table
                for i, line in self.session.lines_of(display, self._key_table(table, keys)).items():
                    left.pop(i)[0].source = (display, line)
            for later, _ in pending:
                later.settled = True
