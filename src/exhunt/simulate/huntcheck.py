"""`hunts:` in a scenario: each shipped hunting query run on the scenario's host, rows compared.

A hunt entry says which steps the hunt's rows come from (each row tied to the last step that
started at or before its time, as --check ties alerts), exactly: every step named gives a row and
no row comes from another step or from before the scenario. `rows`/`min_rows` bound the number of
rows, `columns` gives values every row must have (compared as text, case-insensitively). A hunt
without its own Host filter (file-origin, smb-source-writes) still sees the rows of its scenario's
host only: rows are attributed by their DeviceName/Computer/Device column.

Parameters are written as on the command line, with the step's texts (${host}, ${agents}...)
and `${pid:STEP}` (the process the step started or that acted in it) or `${sha1:STEP}` (the file,
module or image of the step) filled in; Host defaults to the scenario's host.

n/a: the entry names other families (`on`), the format fills none of the tables the hunt reads,
or none of its steps is of a kind the format holds.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from exhunt import hunts as shipped_hunts
from exhunt import schema
from exhunt.backends.base import Backend
from exhunt.errors import RuleError, UsageError
from exhunt.rule import tables_named_in
from exhunt.simulate.check import Verdict, at_resolution
from exhunt.simulate.events import Generator, Simulation, step_times
from exhunt.simulate.formats import Writer
from exhunt.simulate.layout import Layout, Placed
from exhunt.simulate.scenario import STEP_REF, HuntExpectation, Scenario

#: The columns that name a row's server, in the order looked for.
HOST_COLUMNS = ("DeviceName", "Computer", "Device")
#: The columns that give a row's time, before any other datetime column.
TIME_COLUMNS = ("Timestamp", "TimeGenerated")
#: Tables the Windows readers fill besides their SQL mappings' (PowerShell and the Exchange cmdlet log).
WINDOWS_PYTHON_TABLES = frozenset({"DeviceEvents", "ExchangeAdminAuditLogs"})


def filled(writer: Writer) -> frozenset[str]:
    """The tables `writer`'s files can fill: its own list, else its family's."""
    if writer.tables is not None:
        return writer.tables
    if writer.family == "windows":
        from exhunt.winlog.sql import mappings

        return frozenset(m.table for m in mappings()) | WINDOWS_PYTHON_TABLES
    return frozenset(t for t in schema.tables() if t.startswith("Device"))


def _placeholder(kind: str) -> str:
    return {"string": "", "long": "0", "real": "0", "bool": "false", "datetime": "2000-01-01", "timespan": "1h"}[kind]


def queries(scenarios: list[Scenario]) -> list[str]:
    """The hunts the scenarios name, bound with placeholder values: the columns to load for them."""
    known = shipped_hunts.shipped()
    out = []
    for name in sorted({e.hunt for sc in scenarios for e in sc.hunts}):
        h = known[name]
        out.append(shipped_hunts.bind(h, {p.name: _placeholder(p.type) for p in h.params if p.required}))
    return out


def _step_value(sim: Simulation, what: str, step: str) -> str:
    ev = next((e for e in sim.events if e.step == step), None)
    if ev is None:
        return ""
    if what == "pid":
        return str(ev.proc.pid) if ev.proc is not None else ""
    return str(ev.data.get("sha1") or (ev.proc.sha1 if ev.proc is not None else ""))


def params(entry: HuntExpectation, placed: Placed) -> dict[str, str]:
    """The entry's --param texts on this host: places and step values filled, Host defaulted."""
    gen = Generator(placed.host, exchange_root=placed.root)
    given = {
        k: gen.text(STEP_REF.sub(lambda m: _step_value(placed.sim, m.group(1), m.group(2)), v))
        for k, v in entry.params.items()
    }
    h = shipped_hunts.get(entry.hunt)
    if h.param("Host") is not None and "Host" not in given:
        given["Host"] = placed.host
    return given


def not_applicable(entry: HuntExpectation, writer: Writer, scenario: Scenario) -> str | None:
    """Why `writer`'s format cannot judge `entry` (None: it can)."""
    if writer.family not in entry.families:
        return f"meant for {', '.join(entry.families)} formats"
    h = shipped_hunts.get(entry.hunt)
    read = tables_named_in(h.query, schema.tables())
    if not set(read) & filled(writer):
        return f"the hunt reads {', '.join(read)}; this format fills none of them"
    kinds = {s.id: s.kind for s in scenario.steps}
    if entry.steps and writer.kinds is not None and not any(kinds.get(s) in writer.kinds for s in entry.steps):
        return f"none of its steps is a {' or '.join(sorted(writer.kinds))} step, all this format holds"
    return None


def _time(row: dict[str, Any]) -> datetime | None:
    value = next((row[c] for c in TIME_COLUMNS if c in row), None)
    if value is None:
        value = next((v for v in row.values() if isinstance(v, datetime)), None)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def judge(entry: HuntExpectation, rows: list[dict[str, Any]], placed: Placed, writer: Writer) -> Verdict:
    """The verdict of one entry on its host's rows."""
    sc = placed.scenario
    starts = step_times(placed.sim.events)
    times = [at_resolution(t, writer.resolution) for t, _, _ in starts]
    got: dict[str, int] = {}
    for row in rows:
        t = _time(row)
        i = bisect.bisect_right(times, t) - 1 if t is not None else -1
        key = starts[i][2] if i >= 0 else "(before the scenario)"
        got[key] = got.get(key, 0) + 1
    text = f"hunt {entry.hunt} returns " + (", ".join(entry.steps) if entry.steps else "nothing")
    problems = []
    missed = [s for s in entry.steps if s not in got]
    extra = sorted(set(got) - set(entry.steps))
    if missed:
        problems.append(f"missed {', '.join(missed)}")
    if extra:
        problems.append(f"also returned {', '.join(extra)}")
    if entry.rows is not None and len(rows) != entry.rows and (entry.steps or rows):
        problems.append(f"{len(rows)} row(s), expected {entry.rows}")
    if entry.min_rows is not None and len(rows) < entry.min_rows:
        problems.append(f"{len(rows)} row(s), expected at least {entry.min_rows}")
    for col, want in entry.columns.items():
        lacking = [r for r in rows if col not in r]
        if lacking:
            problems.append(f"no column {col}")
            continue
        off = sorted({str(r[col]) for r in rows if str(r[col]).lower() != want.lower()})
        if off:
            problems.append(f"{col} is {', '.join(off)}, not {want}")
    if entry.rows is not None or entry.min_rows is not None:
        text += f" ({entry.rows if entry.rows is not None else f'at least {entry.min_rows}'} row(s))"
    return Verdict(not problems, sc.id, writer.name, text + ("; " + "; ".join(problems) if problems else ""))


def run(layout: Layout, writer: Writer, backend: Backend) -> dict[str, list[Verdict]]:
    """Every placed scenario's hunt verdicts (by host), the hunts run on `backend`'s loaded data."""
    out: dict[str, list[Verdict]] = {}
    for p in layout.placed:
        verdicts = out.setdefault(p.host, [])
        for entry in p.scenario.hunts:
            reason = not_applicable(entry, writer, p.scenario)
            if reason is not None:
                what = f"hunt {entry.hunt} returns {', '.join(entry.steps) or 'nothing'}"
                verdicts.append(Verdict(True, p.scenario.id, writer.name, f"{what}: n/a ({reason})", applies=False))
                continue
            h = shipped_hunts.get(entry.hunt)
            try:
                table = backend.query(shipped_hunts.bind(h, params(entry, p)))
            except (RuleError, UsageError) as exc:
                verdicts.append(Verdict(False, p.scenario.id, writer.name, f"hunt {entry.hunt}: failed: {exc}"))
                continue
            rows = table.to_pylist()
            mine = [r for r in rows if layout.owner(next((r[c] for c in HOST_COLUMNS if c in r), None)) is p]
            verdicts.append(judge(entry, mine, p, writer))
    return out
