"""What the Kusto and Log Analytics backends share: they both run KQL, so a window, the time
span, the slices and the provenance lookup are KQL written here, and only sending a query and
reading its answer differ (`RemoteBackend._send`, `RemoteBackend._list_tables`).

A window (start, end] is put in front of the rule as `let T = T | where Time > start and Time
<= end;` for each table the rule names (`Timestamp`, or `TimeGenerated` where a table has no
`Timestamp`), so the rule's own text runs unchanged. A Defender table without `TimeGenerated`
gets it as an alias of `Timestamp` the same way (`| extend TimeGenerated = Timestamp`), as the
local engine's views do, so Sentinel-style rules run on both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from exhunt.backends import kqltext
from exhunt.backends.base import SLICE_END, Events, Window
from exhunt.backends.parallel import MAX_CONCURRENCY, bounded_map, with_retries
from exhunt.errors import RuleError
from exhunt.schema import SOURCE_FILE, SOURCE_RECORD

EARLIEST = datetime(1601, 1, 1)
LATEST = datetime(9999, 12, 31)
EPOCH = datetime(1970, 1, 1)
#: Provenance look-ups per query (each a `take 1` leg of one union).
SOURCES_PER_QUERY = 64
#: Replay runs per query, and characters of query text (see RemoteBackend.query_windows).
WINDOWS_PER_QUERY = 32
WINDOW_CHARS = 256 << 10

#: KQL type -> Arrow type of a result column (dynamic values are given as JSON text, as the
#: local engine stores them).
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "long": pa.int64(), "int": pa.int32(), "bool": pa.bool_(), "boolean": pa.bool_(),
    "datetime": pa.timestamp("us"), "date": pa.timestamp("us"), "real": pa.float64(), "double": pa.float64(),
    "dynamic": pa.string(), "guid": pa.string(), "timespan": pa.duration("us"), "time": pa.duration("us"),
    "decimal": pa.string(),
}

Columns = list[tuple[str, str]]


def _value(value: Any, kind: str) -> Any:
    """A value from an engine's answer as the local engine would give it."""
    if value is None:
        return None
    if kind in ("datetime", "date"):
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return kqltext.naive_utc(value)
    if kind == "dynamic":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if kind in ("guid", "decimal"):
        return str(value)
    if kind in ("timespan", "time") and not isinstance(value, timedelta):
        return None if value == "" else _parse_timespan(str(value))
    return value


def _parse_timespan(text: str) -> timedelta:
    """[-][d.]hh:mm:ss[.fffffff], Kusto's wire form of a timespan."""
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("-")
    days = 0
    if "." in text.split(":")[0]:
        head, text = text.split(".", 1)
        days = int(head)
    hours, minutes, seconds = text.split(":")
    return sign * timedelta(days=days, hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def to_arrow(columns: Columns, rows: Iterable[Sequence[Any]]) -> pa.Table:
    """An engine's answer (column names and KQL types, rows of values) as an Arrow table."""
    data: list[list[Any]] = [[] for _ in columns]
    kinds = [kind.lower() for _, kind in columns]
    for row in rows:
        for i, value in enumerate(row):
            data[i].append(_value(value, kinds[i]))
    arrays = [pa.array(values, type=ARROW_TYPES.get(kind)) for values, kind in zip(data, kinds, strict=True)]
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


class RemoteBackend:
    """A Backend over an engine reached with KQL (see exhunt.backends.base for the contract)."""

    name = "remote"

    def __init__(self, max_concurrency: int = MAX_CONCURRENCY) -> None:
        #: Queries in flight at once over every thread using this backend (rules run in
        #: parallel, and each rule's windows too): the engine's own limit is per user.
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        #: Only rows with start < time <= end are ever visible (--from/--to).
        self.bounds: Window = (EARLIEST, LATEST)
        self._schema: dict[str, Columns] | None = None

    # -- what a subclass provides -----------------------------------------------------------

    def _send(self, kql: str, now: datetime | None) -> pa.Table:
        """Run `kql` once with now() at `now`; raise Throttled when the engine is overloaded and
        RuleError (plain words) for anything else."""
        raise NotImplementedError

    def _list_tables(self) -> dict[str, Columns]:
        """Every table with its columns and their KQL types."""
        raise NotImplementedError

    def run(self, kql: str, now: datetime | None = None) -> pa.Table:
        """`_send`, holding one of the backend's slots, retried while the engine throttles."""

        def attempt() -> pa.Table:
            with self._slots:
                return self._send(kql, now)

        return with_retries(attempt)

    # -- tables -----------------------------------------------------------------------------

    def schema(self) -> dict[str, Columns]:
        """Table -> (column, KQL type), as the engine has them (read once)."""
        if self._schema is None:
            self._schema = self._list_tables()
        return self._schema

    def tables(self) -> dict[str, list[str]]:
        out = {}
        for table, columns in self.schema().items():
            names = [name for name, _ in columns]
            if self._needs_alias(names):
                names.append("TimeGenerated")
            out[table] = names
        return out

    @staticmethod
    def _needs_alias(names: list[str]) -> bool:
        return "Timestamp" in names and "TimeGenerated" not in names

    def time_column(self, table: str) -> str | None:
        names = [name for name, _ in self.schema().get(table, [])]
        for candidate in ("Timestamp", "TimeGenerated"):
            if candidate in names:
                return candidate
        return None

    def named_tables(self, kql: str) -> list[str]:
        """The engine's tables that `kql` refers to."""
        return kqltext.tables_named(kql, list(self.schema()))

    # -- queries ----------------------------------------------------------------------------

    def _clip(self, window: Window | None) -> Window | None:
        lo, hi = window or (EARLIEST, LATEST)
        lo, hi = max(lo, self.bounds[0]), min(hi, self.bounds[1])
        return None if (lo, hi) == (EARLIEST, LATEST) else (lo, hi)

    def _restrict(self, table: str, window: Window | None, extra: str = "") -> str:
        """`T | where <time in window> | extend <alias>` for one table ("" when nothing to add)."""
        parts = []
        time = self.time_column(table)
        if window is not None and time is not None:
            lo, hi = (kqltext.datetime_literal(t) for t in window)
            parts.append(f"where {kqltext.ident(time)} > {lo} and {kqltext.ident(time)} <= {hi}")
        if self._needs_alias([name for name, _ in self.schema()[table]]):
            parts.append("extend TimeGenerated = Timestamp")
        if extra:
            parts.append(extra.format(time=kqltext.ident(time or "TimeGenerated")))
        if not parts:
            return ""
        return f"{kqltext.ident(table)} | " + " | ".join(parts)

    def prefix(self, kql: str, window: Window | None = None, extra: str = "") -> str:
        """The `let T = T | ...;` statements that show `kql` only `window`'s rows (and the aliases)."""
        window = self._clip(window)
        lets = []
        for table in self.named_tables(kql):
            body = self._restrict(table, window, extra)
            if body:
                lets.append(f"let {kqltext.ident(table)} = {body};\n")
        return "".join(lets)

    def query(self, kql: str, now: datetime | None = None, window: Window | None = None) -> pa.Table:
        text = self.prefix(kql, window) + kql
        return self.run(text, now)

    def _scan(self, tables: Sequence[str], body: str) -> pa.Table | None:
        """`union` of `T | <body>` over the tables that exist here, `{time}` standing for each
        one's time column; None when none does."""
        legs = []
        window = self._clip(None)
        for table in tables:
            time = self.time_column(table)
            if table not in self.schema() or time is None:
                continue
            source = kqltext.ident(table)
            if window is not None:
                lo, hi = (kqltext.datetime_literal(t) for t in window)
                source += f" | where {kqltext.ident(time)} > {lo} and {kqltext.ident(time)} <= {hi}"
            legs.append(f"{source} | {body.format(time=kqltext.ident(time))}")
        if not legs:
            return None
        text = legs[0] if len(legs) == 1 else "union " + ", ".join(f"({leg})" for leg in legs)
        return self.run(text)

    def time_span(self, tables: Sequence[str]) -> Window | None:
        found = self._scan(tables, "summarize _lo = min({time}), _hi = max({time})")
        if found is None:
            return None
        los = [t for t in found.column("_lo").to_pylist() if t is not None]
        his = [t for t in found.column("_hi").to_pylist() if t is not None]
        return (min(los), max(his)) if los and his else None

    @staticmethod
    def slice_end(step: timedelta) -> str:
        """KQL for the end of the `step` slice `{time}` falls in (aligned on the Unix epoch,
        closed at its end), in whole microseconds: `bin` would align on 0001-01-01 instead."""
        size = step // timedelta(microseconds=1)
        us = f"datetime_diff('microsecond', {{time}}, {kqltext.datetime_literal(EPOCH)})"
        # Long division truncates towards zero: that is the ceiling for a negative quotient.
        k = f"iff({us} > 0, ({us} + {size - 1}) / {size}, {us} / {size})"
        return f"datetime_add('microsecond', ({k}) * {size}, {kqltext.datetime_literal(EPOCH)})"

    def slice_ends(self, tables: Sequence[str], step: timedelta) -> list[datetime]:
        body = f"where isnotnull({{time}}) | summarize by _e = {self.slice_end(step)}"
        found = self._scan(tables, body)
        if found is None:
            return []
        return sorted({t for t in found.column("_e").to_pylist() if t is not None})

    def query_windows(self, kql: str, windows: list[Window], step: timedelta | None = None) -> pa.Table | None:
        """Every run of a replay as statements of few queries: run i's tables are `let`s of
        their own (`T__w<i> = T | where <window i>`), its `let`s renamed the same way and its
        clock pinned to its end, and the query is the `union` of every run's result with its
        end in SLICE_END. Exact by construction (each run is the rule's own text over its own
        rows); up to WINDOWS_PER_QUERY runs and WINDOW_CHARS characters a query, the queries
        sent a few at a time. None when the rule cannot be split so (kqltext.template), or
        the engine refuses the combined text: the caller then runs window by window."""
        if not windows:
            return None
        tables = self.named_tables(kql)
        columns = {c for t in tables for c in self.tables()[t]}
        shape = kqltext.template(kql, tables, columns)
        if shape is None:
            return None
        parts = [self._window_query(shape, tables, i, window) for i, window in enumerate(windows)]
        batches: list[list[tuple[list[str], str]]] = [[]]
        size = 0
        for part in parts:
            length = sum(map(len, part[0])) + len(part[1])
            if batches[-1] and (len(batches[-1]) >= WINDOWS_PER_QUERY or size + length > WINDOW_CHARS):
                batches.append([])
                size = 0
            batches[-1].append(part)
            size += length

        def send(batch: list[tuple[list[str], str]]) -> pa.Table:
            lets = "".join(let + ";\n" for statements, _ in batch for let in statements)
            legs = [body for _, body in batch]
            text = lets + (legs[0] if len(legs) == 1 else "union " + ", ".join(f"({leg})" for leg in legs))
            return self.run(text)

        try:
            results = bounded_map(send, batches, self.max_concurrency)
        except RuleError:
            return None  # window by window, which reports a real error itself
        results = [r for r in results if r.num_columns]
        if not results:
            return None
        table = pa.concat_tables(results, promote_options="permissive")
        return table.sort_by(SLICE_END)

    def _window_query(self, shape: kqltext.Template, tables: list[str], i: int,
                      window: Window) -> tuple[list[str], str]:
        """Run i of a replay: its tables' `let`s and the rule's, and its result with SLICE_END."""
        suffix = f"__w{i}"
        clipped = self._clip(window)
        lets = []
        for table in tables:
            body = self._restrict(table, clipped) or kqltext.ident(table)
            lets.append(f"let {table}{suffix} = {body}")
        own, body = shape.render(suffix, window[1])
        return lets + own, f"{body} | extend {SLICE_END} = {kqltext.datetime_literal(window[1])}"

    def query_sliced(self, kql: str, step: timedelta) -> pa.Table | None:
        """A row-wise rule's replay in one query: without a clock, every row judged once over the
        whole data; with one, now() read from a column holding each row's slice end. None
        when the rule reads the clock where no source row is in scope (a `let` of ago())."""
        if not kqltext.uses_clock(kql):
            return self.query(kql)
        column = "_exhunt_now"
        end = f"extend {column} = {self.slice_end(step)}"
        rewritten = kqltext.pin_clock(kql, column)
        text = self.prefix(kql, None, extra=end) + rewritten
        try:
            table = self.run(text)
        except RuleError:
            return None  # the caller replays slice by slice, which reports a real error itself
        return table.drop_columns([column]) if column in table.column_names else table

    def events(self, tables: Sequence[str], host: str, window: Window, near: Sequence[datetime],
               limit: int) -> Events | None:
        """No timeline: the server's name comes from the data and would have to be written into
        the query's text as a literal, which no value from the data ever is here."""
        return None

    def worker(self) -> RemoteBackend:
        return self  # one client serves many threads

    def seal(self) -> None:
        """Nothing to seal: a remote engine's queries cannot reach this machine's files."""

    def close(self) -> None:
        """Let go of the connection (a subclass holding one closes it)."""

    def __enter__(self) -> RemoteBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- provenance ----------------------------------------------------------------------------

    def _conditions(self, table: str, row: dict[str, Any]) -> str | None:
        """KQL `where` conditions pinning `row` down in `table` (its time and another column),
        or None when its values cannot."""
        columns = {name for name, _ in self.schema().get(table, [])}
        time = self.time_column(table)
        conds = []
        have_time = False
        for key, value in row.items():
            col = "Timestamp" if key == "TimeGenerated" and "TimeGenerated" not in columns else key
            if col not in columns or value is None or value == "" or isinstance(value, (list, dict)):
                continue
            try:
                literal = _python_literal(value)
            except kqltext.Unquotable:
                continue
            if literal is None:
                continue
            have_time |= col == time
            conds.append(f"{kqltext.ident(col)} == {literal}")
        if not have_time or len(conds) < 2:
            return None
        return " and ".join(dict.fromkeys(conds))

    def sources(self, rows: list[dict[str, Any]], tables: Sequence[str]) -> list[tuple[str, str] | None]:
        """The file and record each row came from, when the rows were put here by `exhunt ingest
        --cluster` (which keeps them in `_source_file` and `_record`); None otherwise."""
        found: list[tuple[str, str] | None] = [None] * len(rows)
        for i, row in enumerate(rows):
            if SOURCE_FILE in row:
                found[i] = (str(row.get(SOURCE_FILE) or ""), str(row.get(SOURCE_RECORD) or ""))
        for table in tables:
            names = {name for name, _ in self.schema().get(table, [])}
            if SOURCE_FILE not in names or SOURCE_RECORD not in names:
                continue
            legs = []
            for i, row in enumerate(rows):
                if found[i] is not None:
                    continue
                where = self._conditions(table, row)
                if where is not None:
                    legs.append(f"{kqltext.ident(table)} | where {where} | take 1 "
                                f"| project _i = {i}, {kqltext.ident(SOURCE_FILE)}, {kqltext.ident(SOURCE_RECORD)}")
            for start in range(0, len(legs), SOURCES_PER_QUERY):
                part = legs[start:start + SOURCES_PER_QUERY]
                text = part[0] if len(part) == 1 else "union " + ", ".join(f"({leg})" for leg in part)
                hits = self.run(text).to_pylist()
                for hit in hits:
                    found[int(hit["_i"])] = (str(hit[SOURCE_FILE] or ""), str(hit[SOURCE_RECORD] or ""))
        return found


def _python_literal(value: Any) -> str | None:
    """A KQL literal for a value from a result row, by its Python type (None: no literal)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"long({value})"
    if isinstance(value, float):
        return kqltext.value_literal(value, "real")
    if isinstance(value, datetime):
        return kqltext.datetime_literal(value)
    if isinstance(value, str):
        return kqltext.string(value)
    return None
