"""Windows events mapped inside DuckDB, from the SQL files in exhunt/schema/windows.

Readers hand over records as the parser renders them: JSON text in Arrow batches of
the pseudo-table `RAW`, tagged with their form (`evtx`: .evtx files and evtx_dump JSON;
`ecs`: Winlogbeat / Elastic Agent; `otrf`: OTRF / NXLog flat records), no per-record
Python work. For each batch one statement per form (`events-<form>.sql`, then
`events.sql`) parses every record once for its System fields into the stored
`_w_events` table, beside its data (`Doc`). A form's SQL may hand a few records to
Python (`is_event` NULL: shapes only Python's rules read right, see the SQL files); they
are read by exhunt.winlog.forms and stored with the same columns (`python_events`).
Each mapping file then selects its table's rows from `events` (`events_view`:
`_w_events` plus the record's data, read from Doc for the rows the mapping selects). A
mapping file's first lines say where its rows go: `-- table: X`; `-- dedupe: a, b`
keeps the first row per input file of each distinct value of those columns;
`-- view: yes` queries it in place instead of copying it (Event, SecurityEvent); `-- fill: EventData`
gives every column of the table the file's SQL does not name the event's data of that name (the
SELECT passes `M` through; see `fill`): SecurityEvent's 200-odd columns are data. Only
PowerShell logging (script blocks reassembled across records) and the Exchange cmdlet
log (parameter text parsed) go on through the Python mapping: few rows.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from exhunt.errors import UsageError
from exhunt.schema import find_table
from exhunt.sources.base import Batch, FileReport, SourceFile, text_stream
from exhunt.winlog.common import text
from exhunt.winlog.event import WinEvent

#: The pseudo-table of raw record batches (never a table of the schema).
RAW = "_WinRaw"
#: Columns of a RAW batch: the record's position, its JSON text, the record header's time,
#: the file's name (the fallback identity of events without a record number), what a
#: record of the input is called in the run summary ("not a Windows event record"), and
#: its form (which events-<form>.sql reads it).
RAW_COLUMNS = ("_record", "data", "header_time", "fallback_id", "_what", "_form")
#: Records per RAW batch a reader yields.
RAW_ROWS = 20_000
#: Kinds of event the Python mapping still handles (see exhunt.winlog.Mapper).
PYTHON_KINDS = ("powershell", "exchange")
_HEADER = re.compile(r"^--\s*(table|dedupe|view|fill):\s*(.+?)\s*$", re.M)


@dataclass(frozen=True)
class Mapping:
    """One mapping file: the rows of `table` selected from `events`."""

    name: str
    table: str
    sql: str
    dedupe: tuple[str, ...] = ()
    #: Queried in place (a view over the stored events), not copied.
    view: bool = False
    #: The table's columns the SQL does not name are filled from the event's data (`fill`).
    fill: bool = False


def _text(name: str) -> str:
    return resources.files("exhunt.schema").joinpath("windows", name).read_text(encoding="utf-8")


@cache
def macros() -> str:
    return _text("macros.sql")


#: The forms of Windows events mapped in SQL: a RAW batch's `_form`, each read by events-<form>.sql.
FORMS = ("evtx", "ecs", "otrf")


@cache
def events_sql(form: str = "evtx") -> str:
    """The SELECT producing the `events` rows of one batch of `_exhunt_rawbatch` in `form`."""
    return events_over(_text(f"events-{form}.sql"))


def events_over(select: str) -> str:
    """events.sql over the rows of `select` (the columns of events-evtx.sql)."""
    return f"WITH _exhunt_form AS ({select})\n{_text('events.sql')}"


#: A folder of extra mapping files (same format); one named like a shipped file replaces it.
MAPPINGS_ENV = "EXHUNT_WINDOWS_MAPPINGS"


@cache
def mappings() -> tuple[Mapping, ...]:
    """Every mapping file (not the macros, not the event extraction), shipped and from
    $EXHUNT_WINDOWS_MAPPINGS, in name order."""
    files: dict[str, str] = {}
    shipped = resources.files("exhunt.schema").joinpath("windows")
    for entry in shipped.iterdir():
        files[entry.name] = entry.read_text(encoding="utf-8")
    extra = os.environ.get(MAPPINGS_ENV)
    if extra:
        folder = Path(extra)
        if not folder.is_dir():
            raise UsageError(f"{MAPPINGS_ENV}={extra}: not a folder")
        for path in folder.glob("*.sql"):
            files[path.name] = path.read_text(encoding="utf-8")
    out = []
    for name in sorted(files):
        if not name.endswith(".sql") or name == "macros.sql" or name.startswith("events"):
            continue
        sql = files[name]
        header: dict[str, str] = {m.group(1): m.group(2) for m in _HEADER.finditer(sql)}
        if "table" not in header or find_table(header["table"]) is None:
            raise UsageError(f"Windows mapping {name}: its first lines must name a table of the schema "
                             "('-- table: DeviceProcessEvents')")
        dedupe = tuple(c.strip() for c in header.get("dedupe", "").split(",") if c.strip())
        view = header.get("view", "no").lower() in ("yes", "true")
        fill = header.get("fill", "").lower() == "eventdata"
        out.append(Mapping(name.removesuffix(".sql"), header["table"], sql, dedupe, view, fill))
    return tuple(out)


def events_view(source: str) -> str:
    """`source` (a SELECT over `_w_events`) with each record's data read from its Doc: Data (named,
    JSON), DataList (positional) and M (Data as a map of texts; a key written twice keeps its first
    place and last value, see win_map_last). DuckDB computes a column only where a query reads it,
    after the query's filters, so data is parsed for selected rows only.

    Doc is a record's whole text (the evtx forms: its EventData, else UserData, read here), or for
    the forms whose SQL already took the data out (events-ecs.sql, ...) that data in brackets:
    '[{named}]' or '[[positional texts]]'. No evtx record starts with '[' (it is an object).
    """
    return ("SELECT * EXCLUDE (_m, _s, _vs), coalesce(_m, win_map_last(_s, _vs)) AS M FROM ("
            "SELECT *, CASE WHEN _m IS NULL AND Data IS NOT NULL THEN list_sort(list_transform(json_keys(Data), "
            "lambda k, i: {k: k, i: i})) END AS _s, "
            "CASE WHEN _m IS NULL AND Data IS NOT NULL THEN json_extract_string(Data, '$.*') END AS _vs FROM ("
            "SELECT *, TRY_CAST(Data AS MAP(VARCHAR, VARCHAR)) AS _m FROM ("
            "SELECT * EXCLUDE (_ed, _own), "
            "CASE WHEN _own THEN CASE WHEN starts_with(Doc, '[{') THEN _ed END ELSE win_named(_ed) END AS Data, "
            "CASE WHEN _own THEN CASE WHEN starts_with(Doc, '[[') THEN list_transform("
            "json_extract_string(_ed, '$[*]'), lambda v: coalesce(v, '')) END ELSE win_list(_ed) END AS DataList "
            "FROM (SELECT *, coalesce(starts_with(Doc, '['), false) AS _own, "
            "CASE WHEN starts_with(Doc, '[') THEN substr(Doc, 2, length(Doc) - 2) "
            "ELSE win_ed(from_json(Doc, '{\"Event\": {\"EventData\": \"JSON\", \"UserData\": \"JSON\"}}').Event) "
            f"END AS _ed FROM ({source}) AS _w))))")


def over(m: Mapping, source: str, typed_time: bool | None = None) -> str:
    """The mapping's SELECT with `events` bound to the rows of `source` (see events_view).

    `typed_time` True: only rows whose time parsed at load, with `Time` that TIMESTAMP (the
    normalizer passes it through); False: only the rows whose time did not parse, `Time` as
    text (the normalizer names the problem); None: every row, `Time` as text.
    """
    if typed_time is not None:
        source = (f"SELECT * REPLACE (_time AS Time) FROM ({source}) AS _s WHERE _time IS NOT NULL" if typed_time
                  else f"SELECT * FROM ({source}) AS _s WHERE _time IS NULL")
    events = f"events AS NOT MATERIALIZED ({events_view(source)})"
    body = "\n".join(line for line in m.sql.splitlines() if not line.startswith("--")).strip()
    if m.fill:
        body = fill(m.table, body)
    head = re.match(r"WITH\s", body, re.IGNORECASE)
    if head:
        return f"WITH {events}, {body[head.end():]}"
    return f"WITH {events} {body}"


def filled_columns(table: str, body: str) -> list[tuple[str, str]]:
    """(column, KQL type) of `table` that the mapping SQL `body` never names (a whole word, case
    as written): those a `-- fill: EventData` mapping takes from the event's data."""
    t = find_table(table)
    assert t is not None
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
    return [(c.name, c.kql_type) for c in t.columns if c.name not in named]


def fill(table: str, body: str) -> str:
    """`body` (whose SELECT passes `M` through) with every column it does not name taken from the
    event's data of that name: text, or an integer (decimal or hex) for the table's int and long
    columns. DuckDB computes each only where a query reads it."""
    exprs = []
    for name, kql in filled_columns(table, body):
        value = f"M[{_lit(name)}]"
        if kql in ("int", "long"):
            value = f"TRY_CAST(win_int({value}) AS {'INTEGER' if kql == 'int' else 'BIGINT'})"
        exprs.append(f'{value} AS "{name}"')
    return f"SELECT * EXCLUDE (M){''.join(', ' + e for e in exprs)} FROM ({body}) AS _exhunt_fill"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: Columns fetched for the events the Python mapping handles, in `win_event` order.
PYTHON_COLUMNS = ("_exhunt_part", "_record", "Channel", "Provider", "EventID", "Level", "Task", "RecordId",
                  "Computer", "Time", "UserSid", "Message", "Data", "DataList", "ReportId")


def win_event(row: tuple[Any, ...]) -> tuple[int, WinEvent, int]:
    """(part, event, ReportId) from a row of PYTHON_COLUMNS."""
    ev = WinEvent()
    part, ev.where, ev.channel, ev.provider, ev.event_id, ev.level, ev.task, ev.record_id, ev.computer, ev.time, \
        ev.user_sid, ev.message, data, data_list, rid = row
    if data is not None:
        parsed = _loads(data)
        if isinstance(parsed, dict):
            ev.data = parsed
    ev.data_list = list(data_list) if data_list is not None else None
    return part, ev, rid


def not_an_event(what: str, text: str | None) -> tuple[str, str]:
    """(reason, detail) for a record that yielded no event; `text` is set when it is not JSON."""
    if text is not None:
        try:
            json.loads(text)
        except RecursionError:
            return "nested too deep", ""
        except ValueError as exc:
            return "invalid JSON", str(exc).split(":")[0][:200]
    return f"not a {what} record", ""


def _loads(text: str) -> Any:
    """JSON text as Python reads it (orjson, else the json module: NaN, huge integers); ValueError
    when it is not JSON, also when it nests deeper than Python can follow."""
    try:
        return orjson.loads(text)
    except ValueError:
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("nested too deep") from None


#: Columns of the rows the Python path makes for the records a form's SQL hands it, in order.
PY_COLUMNS: dict[str, pa.DataType] = {
    "_exhunt_part": pa.int32(), "_exhunt_seq": pa.int64(), "_record": pa.string(), "is_event": pa.bool_(),
    "Channel": pa.string(), "Provider": pa.string(), "EventID": pa.int32(), "Level": pa.int64(),
    "Task": pa.int64(), "Opcode": pa.int64(), "Version": pa.int64(), "Keywords": pa.string(),
    "RecordId": pa.int64(), "Computer": pa.string(), "Time": pa.string(), "UserSid": pa.string(),
    "Message": pa.string(), "Doc": pa.string(), "fallback_id": pa.string(), "_what": pa.string(),
    "_source_file": pa.string(),
}
#: Columns fetched for those records (is_event NULL), in `python_events` order.
PY_FETCH = ("_exhunt_part", "_exhunt_seq", "_record", "Doc", "fallback_id", "_what", "_source_file")


def _converters() -> dict[str, Callable[[Any], WinEvent | None]]:
    from exhunt.winlog.forms import from_ecs, from_otrf

    return {"ecs": from_ecs, "otrf": from_otrf}


def _int(v: int | None, bits: int = 64) -> int | None:
    """A number the column holds, else NULL (a huge id in hostile JSON)."""
    return v if v is None or -(1 << (bits - 1)) <= v < (1 << (bits - 1)) else None


def _clean(v: str) -> str:
    """Text Arrow takes (a lone surrogate, which Python's json reads from "\\ud800", becomes U+FFFD)."""
    try:
        v.encode("utf-8")
        return v
    except UnicodeEncodeError:
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _doc(ev: WinEvent) -> str | None:
    """The event's data as events_view reads a Doc of the JSON forms ('[{named}]', '[[texts]]')."""
    if ev.data_list is not None:
        body: Any = [text(v) for v in ev.data_list]
    elif ev.data:
        body = ev.data
    else:
        return None
    return _clean("[" + json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "]")


def python_events(form: str, rows: list[tuple[Any, ...]]) -> tuple[pa.Table, list[tuple[int, int, str, str, str]]]:
    """The records of `form` its SQL handed to Python (rows of PY_FETCH): each parsed and read
    by the form's Python reader (exhunt.winlog.forms), as `_w_events` rows (PY_COLUMNS, before
    events.sql adds Kind and ReportId), and those that are no event: (part, seq, where, reason, detail).

    Few records come here: those whose reading needs Python's own rules (see events-<form>.sql).
    """
    convert = _converters()[form]
    out: dict[str, list[Any]] = {name: [] for name in PY_COLUMNS}
    skipped = []
    for part, seq, where, raw, fallback, what, source in rows:
        try:
            doc = _loads(raw)
        except ValueError as exc:
            skipped.append((part, seq, where, "invalid JSON", str(exc).split(":")[0]))
            continue
        try:
            ev = convert(doc)
        except Exception as exc:  # a shape the reader did not foresee: the record says so, the run goes on
            skipped.append((part, seq, where, f"unreadable {what} record", type(exc).__name__))
            continue
        if ev is None:
            skipped.append((part, seq, where, f"not a {what} record", ""))
            continue
        values = (part, seq, where, True, ev.channel, ev.provider, _int(ev.event_id, 32), _int(ev.level),
                  _int(ev.task), _int(ev.opcode), _int(ev.version), ev.keywords, _int(ev.record_id), ev.computer,
                  ev.time, ev.user_sid, ev.message, _doc(ev), fallback, what, source)
        for name, v in zip(PY_COLUMNS, values, strict=True):
            out[name].append(_clean(v) if isinstance(v, str) else v)
    table = pa.table({name: pa.array(out[name], typ) for name, typ in PY_COLUMNS.items()})
    return table, skipped


class RawBatches:
    """Collects one input file's records as text and hands them out as RAW batches of `form`."""

    def __init__(self, fallback_id: str, what: str, form: str = "evtx") -> None:
        self.fallback_id = fallback_id
        self.what = what
        self.form = form
        self.wheres: list[str] = []
        self.texts: list[str] = []
        self.times: list[str] = []
        #: Records queued as Arrow arrays (where, text), before those in the lists above.
        self.chunks: list[tuple[pa.Array, pa.Array]] = []
        self.queued = 0

    def add(self, where: str, text: str, header_time: str = "") -> Batch | None:
        """Queue one record; a full batch is returned, to be yielded by the reader."""
        self.wheres.append(where)
        self.texts.append(text)
        self.times.append(header_time)
        self.queued += 1
        return self.done() if self.queued >= RAW_ROWS else None

    def extend(self, wheres: pa.Array, texts: pa.Array) -> Iterator[Batch]:
        """Queue many records at once (no header times); yields the batches that fill up."""
        self._list_chunk()
        start = 0
        while start < len(texts):
            take = min(RAW_ROWS - self.queued, len(texts) - start)
            self.chunks.append((wheres.slice(start, take), texts.slice(start, take)))
            self.queued += take
            start += take
            if self.queued >= RAW_ROWS:
                yield self.done()  # type: ignore[misc]

    def _list_chunk(self) -> None:
        if self.texts:
            self.chunks.append((pa.array(self.wheres, pa.string()), pa.array(self.texts, pa.string())))
            self.wheres, self.texts = [], []

    def done(self) -> Batch | None:
        """The records queued so far as one batch (None when there are none)."""
        n = self.queued
        if not n:
            return None
        times = pa.array(self.times, pa.string()) if len(self.times) == n else pa.nulls(n, pa.string())
        self._list_chunk()
        wheres = pa.chunked_array([w for w, _ in self.chunks], pa.string())
        texts = pa.chunked_array([t for _, t in self.chunks], pa.string())
        zeros = pa.array([0] * n, pa.int32())
        const = [pa.DictionaryArray.from_arrays(zeros, pa.array([v], pa.string())).cast(pa.string())
                 for v in (self.fallback_id, self.what, self.form)]
        batch = Batch(RAW, pa.table([wheres, texts, times, *const], names=list(RAW_COLUMNS)))
        self.chunks, self.times, self.queued = [], [], 0
        return batch


#: A line of nothing but what Python's str.strip() removes (str.isspace: a test checks), in RE2.
BLANK_LINE = ("^[\\t-\\r\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
              "\\x{202f}\\x{205f}\\x{3000}]*$")
#: Characters of text read at a time from a JSON-lines file.
LINES_HINT = 4 << 20


def raw_lines(src: SourceFile, report: FileReport, what: str, form: str) -> Iterator[Batch]:
    """Every non-blank line of a JSON-lines file, as text in RAW batches of `form`.

    Lines are split and numbered as Python's text reading does (a BOM dropped, bytes that are
    not UTF-8 replaced; a line ends at \\n, \\r or \\r\\n) and filtered by Arrow, a few megabytes at
    a time: nothing here runs per line.
    """
    raw = RawBatches(src.name, what, form)
    lineno = 0
    with src.open() as fh:
        stream = text_stream(fh)
        while lines := stream.readlines(LINES_HINT):
            texts = pa.array(lines, pa.string())
            numbers = pa.array(range(lineno + 1, lineno + 1 + len(lines)), pa.int64())
            lineno += len(lines)
            keep = pc.invert(pc.match_substring_regex(texts, BLANK_LINE))
            texts = texts.filter(keep)
            report.read += len(texts)
            wheres = pc.binary_join_element_wise("line ", numbers.filter(keep).cast(pa.string()), "")
            yield from raw.extend(wheres, texts)
    last = raw.done()
    if last is not None:
        yield last
