"""Exchange's admin audit log as an incident responder exports it: `Search-AdminAuditLog` results saved
with `Export-Csv -NoTypeInformation` (or with its `#TYPE` line), or with `ConvertTo-Json` (an array, one
object, or JSON lines).

Each entry becomes an ExchangeAdminAuditLogs row with the columns the MSExchange Management event log
fills (exhunt.winlog.exchange.table_row): TimeGenerated from RunDate (UTC), Computer from
OriginatingServer (its build number dropped), Status from Succeeded, Caller, CmdletName, CmdletParameters
in the event log's `-Name "value"` form with `Parameters` parsed, ErrorMessage from Error, TargetObject
from -Identity/-Name (else ObjectModified) and the entry itself as JSON in EventData. EventID stays empty
(no event log recorded it); the admin audit log does not record the runspace type or host process.

`CmdletParameters` is a collection, which `Export-Csv` writes as its type name unless the export expands
it: read are the expanded forms (`-Name "X" -AssemblyPath "C:\\a.dll"` or `Name=X; AssemblyPath=C:\\a.dll`,
Exchange 2010's `{Name=X, ...}`), ConvertTo-Json's list of {Name, Value} objects, and the names-only and
type-name forms, whose values are not in the file: those rows are kept (the cmdlet name is evidence) and
the file's note says what is missing.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exhunt.sources.base import (
    NESTED_TOO_DEEP,
    Batch,
    FileReport,
    RowBuffer,
    SourceFile,
    TooDeep,
    printable,
    shorten,
    text_stream,
)
from exhunt.sources.winjson import first_record, head_text, iter_records
from exhunt.winlog.common import dumps, text
from exhunt.winlog.exchange import CANONICAL, parse_parameters, table_row

TABLE = "ExchangeAdminAuditLogs"
#: The properties that tell an admin audit log entry from any other record (lower-case): RunDate is the
#: audit log's own; a Sentinel export of the ExchangeAdminAuditLogs rows (TimeGenerated) is mde-csv's.
_NEEDED = ("cmdletname", "rundate")

_TYPE_LINE = "#TYPE"
#: `Microsoft.Exchange.Data.MultiValuedProperty`1[...]`, `System.Collections.ArrayList`, `Deserialized.…`
_TYPE_NAME = re.compile(r"^(?:Deserialized\.)?(?:System|Microsoft)\.[\w.`+]+(?:\[.*\])?$", re.S)
_PAIR_START = re.compile(r"^[A-Za-z]\w*\s*=")
_PAIR_SPLIT = re.compile(r";\s*(?=[A-Za-z]\w*\s*=)")
_BUILD = re.compile(r"\s*\(\s*\d+(?:\.\d+)+\s*\)\s*$")
#: ConvertTo-Json of a DateTime in Windows PowerShell: "\/Date(1764381600000)\/", maybe with an offset.
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
#: en-US, as Export-Csv writes a DateTime on most Exchange servers: 11/21/2026 2:00:08 AM.
_US_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*([AaPp][Mm])?$"
)
#: Dotted day-first dates (de-DE and others): 21.11.2026 02:00:08.
_DOT_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$")

_NAMES_ONLY = "CmdletParameters holds parameter names only"
_TYPE_ONLY = "CmdletParameters holds only its type name"


class BadEntry(ValueError):
    """An entry that cannot become a row: the reason, and what to quote."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Parameters:
    #: As the MSExchange Management log writes them: -Name "value" -Other "value".
    text: str
    parsed: dict[str, str]
    #: Why their values are not in the file ("" when they are).
    missing: str = ""


def run_date(value: Any) -> str | None:
    """RunDate (UTC) as ISO 8601 with Z, from ISO text, ConvertTo-Json's forms or en-US / dotted text."""
    if isinstance(value, dict):  # Windows PowerShell's DateTime with its extra properties
        value = next((v for k, v in value.items() if k.lower() == "value"), None)
    if not isinstance(value, str):
        return None
    v = value.strip()
    m = _MS_DATE.match(v.replace("\\/", "/"))
    if m:
        try:
            t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(m.group(1)))
        except OverflowError:
            return None
        return _iso(t)
    m = _US_DATE.match(v)
    if m:
        month, day, year, hour, minute = (int(m.group(i)) for i in (1, 2, 3, 4, 5))
        ampm = (m.group(8) or "").lower()
        if ampm and not 1 <= hour <= 12:
            return None
        if ampm:
            hour = hour % 12 + (12 if ampm == "pm" else 0)
        micro = int((m.group(7) or "0").ljust(7, "0")[:6])
        return _make(year, month, day, hour, minute, int(m.group(6) or 0), micro)
    m = _DOT_DATE.match(v)
    if m:
        day, month, year, hour, minute = (int(m.group(i)) for i in (1, 2, 3, 4, 5))
        return _make(year, month, day, hour, minute, int(m.group(6) or 0), 0)
    if not v[:4].isdigit():
        return None
    iso = re.sub(r"(\.\d{6})\d+", r"\1", v.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return _iso(t if t.tzinfo else t.replace(tzinfo=UTC))


def _make(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int) -> str | None:
    try:
        return _iso(datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC))
    except ValueError:
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(name: str) -> str:
    return CANONICAL.get(name.lower(), name)


def _value_text(value: Any) -> str:
    """A parameter's value as the log shows it: a list joined with ';' (as Exchange joins multi-valued
    parameters), booleans as PowerShell writes them."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ";".join(_value_text(v) for v in value)
    if isinstance(value, dict):
        return dumps(value)
    return text(value)


def _from_pairs(pairs: list[tuple[str, str]]) -> Parameters:
    shown = " ".join(f'-{name} "{value}"' for name, value in pairs)
    return Parameters(shown, {_canonical(name): value for name, value in pairs})


def parameters(value: Any) -> Parameters:
    """CmdletParameters in any of the forms an export holds (see the module's docstring)."""
    if isinstance(value, dict):
        # Windows PowerShell's {"value": [...], "Count": n}, or one parameter object alone
        inner = next((v for k, v in value.items() if k.lower() == "value"), None)
        value = inner if isinstance(inner, list) else [value]
    if isinstance(value, list):
        pairs: list[tuple[str, str]] = []
        names: list[str] = []
        for item in value:
            if isinstance(item, dict):
                low = {str(k).lower(): v for k, v in item.items()}
                name = text(low.get("name")).strip()
                if name:
                    pairs.append((name, _value_text(low.get("value"))))
            elif text(item).strip():
                names.append(text(item).strip())
        if names and not pairs:
            return Parameters("{" + ", ".join(names) + "}", {}, _NAMES_ONLY)
        return _from_pairs(pairs)
    s = text(value).strip()
    if not s:
        return Parameters("", {})
    if _TYPE_NAME.match(s):
        return Parameters("", {}, _TYPE_ONLY)
    if s.startswith("{") and s.endswith("}") and "=" not in s:
        return Parameters(s, {}, _NAMES_ONLY)
    if _PAIR_START.match(s):
        pairs = []
        for part in _PAIR_SPLIT.split(s):
            name, _, val = part.partition("=")
            pairs.append((name.strip(), val.strip()))
        return _from_pairs(pairs)
    return Parameters(s, parse_parameters(s))


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    v = text(value).strip().lower()
    return True if v == "true" else False if v == "false" else None


def entry_row(entry: dict[str, Any]) -> tuple[dict[str, Any], Parameters]:
    """One admin audit log entry -> its ExchangeAdminAuditLogs row (BadEntry when it cannot be one)."""
    low = {str(k).lower(): v for k, v in entry.items()}
    cmdlet = text(low.get("cmdletname")).strip()
    if not cmdlet:
        raise BadEntry("no CmdletName")
    raw_date = low.get("rundate")
    when = run_date(raw_date)
    if when is None:
        shown = raw_date if isinstance(raw_date, str) else dumps(raw_date)
        raise BadEntry("RunDate is not a date" if raw_date not in (None, "") else "no RunDate",
                       printable(shorten(shown)) if raw_date not in (None, "") else "")
    succeeded = _bool(low.get("succeeded"))
    error = text(low.get("error")).strip()
    if error.lower() == "none" or succeeded:
        error = ""
    params = parameters(low.get("cmdletparameters"))
    server = _BUILD.sub("", text(low.get("originatingserver")))
    row = table_row(
        time=when,
        computer=server,
        event_id=None,
        succeeded=succeeded,
        caller=text(low.get("caller")),
        cmdlet=cmdlet,
        parameters_text=params.text,
        parameters=params.parsed,
        error=error,
        event_data=dumps(entry),
        target=text(low.get("objectmodified")),
    )
    return row, params


def _header_line(head: str) -> tuple[list[str], bool]:
    """(CSV header names, whether a #TYPE line precedes them) from the file's first lines."""
    lines = head.lstrip("\ufeff").splitlines()
    typed = bool(lines) and lines[0].startswith(_TYPE_LINE)
    first = lines[1 if typed else 0] if len(lines) > (1 if typed else 0) else ""
    try:
        return [c.strip() for c in next(csv.reader([first]))], typed
    except (StopIteration, csv.Error):
        return [], typed


def _is_entry(keys: list[str]) -> bool:
    low = {k.lower() for k in keys}
    return all(k in low for k in _NEEDED)


class ExchangeAudit:
    name = "exchange-admin-audit"
    description = "Exchange admin audit log (Search-AdminAuditLog) exported as CSV or JSON"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        text_head = head_text(head)
        if text_head[:1] in ("{", "["):
            rec = first_record(head)
            if rec is not None:
                return 95 if _is_entry(list(rec)) else 0
            return 85 if '"CmdletName"' in text_head and '"RunDate"' in text_head else 0
        names, _ = _header_line(text_head)
        return 95 if _is_entry(names) else 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        if table is not None and table.lower() != TABLE.lower():
            report.error = f"an Exchange admin audit log export fills {TABLE}, not {printable(table)}"
            return
        buf = RowBuffer()
        missing: set[str] = set()
        if head_text(src.head())[:1] in ("{", "["):
            entries: Iterator[tuple[str, Any]] = self._json(src, report)
        else:
            entries = self._csv(src, report)
        for where, entry in entries:
            report.read += 1
            if not isinstance(entry, dict):
                report.skip(where, "record is not a JSON object")
                continue
            try:
                row, params = entry_row(entry)
            except BadEntry as exc:
                report.skip(where, exc.reason, exc.detail)
                continue
            except (RecursionError, TooDeep):
                report.skip(where, NESTED_TOO_DEEP)
                continue
            if params.missing:
                missing.add(params.missing)
            batch = buf.add(TABLE, row, where)
            if batch is not None:
                yield batch
        yield from buf.drain()
        if missing:
            report.note = "; ".join(sorted(missing)) + ": parameter values are not in the file"
            report.message(f"{report.path}: {report.note} (expand CmdletParameters when exporting, e.g. "
                           "Name=Value pairs, or ConvertTo-Json -Depth 4)")

    @staticmethod
    def _json(src: SourceFile, report: FileReport) -> Iterator[tuple[str, Any]]:
        for where, rec in iter_records(src, report):
            inner = rec.get("value") if isinstance(rec, dict) and set(rec) <= {"value", "Count"} else None
            if isinstance(inner, list):  # Windows PowerShell's {"value": [...], "Count": n}
                for i, item in enumerate(inner, 1):
                    yield f"{where} item {i}", item
                continue
            yield where, rec

    @staticmethod
    def _csv(src: SourceFile, report: FileReport) -> Iterator[tuple[str, Any]]:
        csv.field_size_limit(min(sys.maxsize, 1 << 30))
        with src.open() as fh:
            stream = text_stream(fh)
            first = 1
            line = stream.readline()
            if line.lstrip("\ufeff").startswith(_TYPE_LINE):
                first = 2
                line = stream.readline()
            try:
                header = [c.strip() for c in next(csv.reader([line]))]
            except (StopIteration, csv.Error):
                header = []
            if not _is_entry(header):
                report.error = (f"line {first}: not an admin audit log header (needs CmdletName and RunDate; "
                                f"found {printable(shorten(', '.join(header[:8]), 120))})")
                return
            seen: set[str] = set()
            names = []
            for name in header:  # a repeated column: the first one counts
                names.append("" if name.lower() in seen else name)
                seen.add(name.lower())
            reader = csv.reader(stream)
            base = first  # physical lines read before the records
            end = base
            while True:
                start = end + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    end = base + reader.line_num
                    report.read += 1
                    report.skip(f"line {start}", "malformed CSV line", str(exc))
                    continue
                end = base + reader.line_num
                if not record or record == [""]:
                    continue  # a blank line is not a record
                if len(record) != len(names):
                    report.read += 1
                    report.skip(f"line {start}", "malformed CSV line",
                                f"expected {len(names)} fields, found {len(record)}")
                    continue
                yield f"line {start}", {n: v for n, v in zip(names, record, strict=True) if n}


READER = ExchangeAudit()
