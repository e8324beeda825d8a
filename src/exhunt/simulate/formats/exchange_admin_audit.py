"""Exchange's admin audit log as an incident responder exports it: `Search-AdminAuditLog | Select-Object
…, @{n='CmdletParameters'; e={($_.CmdletParameters | ForEach-Object {"$($_.Name)=$($_.Value)"}) -join
'; '}}, … | Export-Csv -NoTypeInformation` (`<host>-admin-audit.csv`, newest entry first, as the search
returns them). `entries` and `json_text` give the same entries as `ConvertTo-Json -Depth 4` writes them.

The log holds cmdlets only, so a scenario's other steps leave no trace here. What it records, and so
what is written:
- every cmdlet run through the Exchange Management Shell, the admin center or remote PowerShell, with
  its parameters, caller, success or failure (Error) and the server it ran on (OriginatingServer);
- not `Get-*` cmdlets (they change nothing) nor, by default, `Test-*` cmdlets;
- a failed cmdlet with Succeeded False and its error. A cmdlet refused before Exchange's audit agent is
  called (a parameter-binding error) is not recorded at all; the simulated failures are the cmdlets'
  own errors, which are.
RunDate is UTC and, as Export-Csv writes a date, en-US text to the second: --check ties alerts to steps
at that resolution. The runspace type and host process, which the MSExchange Management event log has,
are not in this log.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Simulation, fake_hash
from exhunt.simulate.formats import Writer

#: Export-Csv's columns for an AdminAuditLogEvent (remote PowerShell adds RunspaceId first).
COLUMNS = (
    "RunspaceId", "ObjectModified", "CmdletName", "CmdletParameters", "ModifiedProperties", "Caller",
    "ExternalAccess", "Succeeded", "Error", "RunDate", "OriginatingServer", "Identity", "IsValid", "ObjectState",
)
#: Verbs the admin audit log leaves out (Test-* unless TestCmdletLoggingEnabled is set).
UNLOGGED_VERBS = ("get", "test")
#: Exchange Server 2019 CU14's build, as OriginatingServer shows it after the server's name.
BUILD = "15.02.1544.004"
#: `-Name "value"`, `-Name 'value'`, `-Name value` or a bare switch `-Force`.
_MS_DATE = re.compile(r'"/Date\((-?\d+)\)/"')
_PARAM = re.compile(r"""-(\w+)(?::|\s+)?(?:"([^"]*)"|'([^']*)'|(?<=[\s:])([^\s"'-][^\s]*))?""")


def _guid(text: str) -> str:
    h = fake_hash(text, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pairs(params: str) -> list[tuple[str, str]]:
    """The scenario's parameter text as (name, value) pairs; a switch is True, as Exchange logs it."""
    out = []
    for m in _PARAM.finditer(params):
        value = next((g for g in m.groups()[1:] if g is not None), None)
        out.append((m.group(1), "True" if value is None else value))
    return out


def us_date(t: datetime) -> str:
    """A DateTime as Export-Csv writes it under en-US: 11/21/2026 2:00:08 AM."""
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {'AM' if t.hour < 12 else 'PM'}"


def entries(sim: Simulation) -> list[dict[str, Any]]:
    """The entries of the simulation's cmdlets, newest first; CmdletParameters as {Name, Value} objects."""
    server = f"{sim.host.split('.', 1)[0].upper()} ({BUILD})"
    domain = sim.host.split(".", 1)[-1]
    out = []
    for ev in sim.events:
        d = ev.data
        if ev.kind != "cmdlet_log" or not ev.seen("exchange") or d["cmdlet"].split("-", 1)[0].lower() in UNLOGGED_VERBS:
            continue
        pairs = _pairs(d["params"])
        named = {k.lower(): v for k, v in pairs}
        pid = ev.proc.pid if ev.proc is not None else 0
        identity = base64.b64encode(bytes.fromhex(fake_hash(f"audit:{ev.time.isoformat()}", 48))).decode()
        out.append(
            {
                "RunspaceId": _guid(f"runspace:{sim.host}:{pid}:{d['caller'].name}"),
                "ObjectModified": named.get("identity") or named.get("name") or "",
                "CmdletName": d["cmdlet"],
                "CmdletParameters": [{"Name": k, "Value": v} for k, v in pairs],
                "ModifiedProperties": [],
                "Caller": f"{domain}/Users/{d['caller'].name}",
                "ExternalAccess": False,
                "Succeeded": bool(d["success"]),
                "Error": "" if d["success"] else (d["error"] or "Error"),
                "RunDate": ev.time.astimezone(UTC),
                "OriginatingServer": server,
                "Identity": identity,
                "IsValid": True,
                "ObjectState": "Unchanged",
            }
        )
    out.sort(key=lambda e: e["RunDate"], reverse=True)
    return out


def _csv_value(column: str, value: Any) -> str:
    if column == "CmdletParameters":
        return "; ".join(f"{p['Name']}={p['Value']}" for p in value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime):
        return us_date(value)
    if isinstance(value, list):
        return ""
    return str(value)


def csv_text(items: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for e in items:
        w.writerow([_csv_value(c, e[c]) for c in COLUMNS])
    return buf.getvalue()


def json_text(items: list[dict[str, Any]]) -> str:
    """The entries as Windows PowerShell's ConvertTo-Json writes them (dates as \\/Date(ms)\\/)."""

    def date(t: datetime) -> str:
        return f"/Date({(t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)})/"

    docs = [{k: date(v) if isinstance(v, datetime) else v for k, v in e.items()} for e in items]
    return _MS_DATE.sub(r'"\\/Date(\1)\\/"', json.dumps(docs, indent=4))


def write(sim: Simulation, out: Path) -> list[Path]:
    path = out / f"{sim.host.split('.', 1)[0]}-admin-audit.csv"
    path.write_text(csv_text(entries(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "exchange-admin-audit",
    "exchange",
    "Exchange admin audit log (Search-AdminAuditLog | Export-Csv): cmdlets only",
    write,
    tables=frozenset({"ExchangeAdminAuditLogs"}),
    kinds=frozenset({"cmdlet_log"}),
    resolution=timedelta(seconds=1),
)
