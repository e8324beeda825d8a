"""`exhunt alerts list|show|ack|close|reopen`: the alerts a state file remembers (exhunt.state).

The group adds itself to exhunt.cli's app (which imports this module, so either can be imported first). Every value
shown comes from telemetry or from a person's --by/--comment: it passes through safetext or
the output writers like any alert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.table import Table
from rich.text import Text

from exhunt import safetext, state
from exhunt.cli import OutputOpt, _check_format, _guard, _output, _write, app, err
from exhunt.errors import UsageError
from exhunt.output.table import SEVERITY_LABEL, SEVERITY_STYLE, short_host
from exhunt.statestore import Store, open_store

alerts_app = typer.Typer(no_args_is_help=True,
                         help="Alerts remembered by a --state file: list, show, ack, close, reopen.")

StateOpt = Annotated[Path | None, typer.Option(
    "--state", envvar="EXHUNT_STATE", show_envvar=False,
    help="The state file (as given to `detect --state`; default: $EXHUNT_STATE).")]
IdsArg = Annotated[list[str], typer.Argument(help="Alert ids, or unique prefixes of at least 4 hex digits.",
                                             metavar="ID", show_default=False)]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who does it (default: your user name).")]
CommentOpt = Annotated[str | None, typer.Option("--comment", help="A note kept in the alert's history.")]


def _store(path: Path | None, write: bool) -> Store:
    if path is None:
        raise UsageError("give --state FILE (or set EXHUNT_STATE)")
    return open_store(path, create=False, write=write)


#: Statuses as the narrow table column shows them.
_STATUS_LABEL = {state.ACKNOWLEDGED: "ack"}


def _table(rows: list[dict[str, Any]], out: TextIO) -> None:
    """One line per alert that fits 80 columns: id, status, severity, host, event time, rule
    (cut to the width; `show` and the other formats have it whole)."""
    console = safetext.console(file=out, highlight=False, soft_wrap=False)
    if not rows:
        console.print("No alerts.")
        return
    table = Table(box=None, pad_edge=False, expand=False)
    table.add_column("ID", no_wrap=True, min_width=16)
    table.add_column("Status", no_wrap=True, max_width=6)
    table.add_column("Sev", no_wrap=True, max_width=4)
    table.add_column("Device", no_wrap=True, max_width=12)
    table.add_column("Time (UTC)", no_wrap=True, min_width=16, max_width=16)
    table.add_column("Rule", ratio=1)
    for r in rows:
        sev, status = str(r["severity"]), str(r["status"])
        table.add_row(Text(safetext.shown(r["alert_id"])), Text(safetext.shown(_STATUS_LABEL.get(status, status))),
                      Text(safetext.shown(SEVERITY_LABEL.get(sev, sev[:4].upper())), style=SEVERITY_STYLE.get(sev, "")),
                      Text(safetext.shown(short_host(str(r["DeviceName"])))),
                      Text(safetext.shown(str(r["Timestamp"] or "")[:16].replace("T", " "))),
                      Text(safetext.shown(r["rule_name"]), no_wrap=True, overflow="ellipsis"))
    console.print(table)


@alerts_app.command("list")
@_guard
def alerts_list(
    state_path: StateOpt = None,
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="Only these (repeatable or comma-separated): new, open, acknowledged, closed.")] = None,
    rule: Annotated[str | None, typer.Option(
        "--rule", help="Only this rule: id or name, case-insensitive, * and ? as wildcards.")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="Only this device: full name or host name (exch01 matches exch01.contoso.local).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since",
        help="Only alerts first seen by a run at or after this time (ISO-8601; UTC unless it has an offset).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | jsonl | json | csv")] = "table",
    output_path: OutputOpt = None,
) -> None:
    """List remembered alerts with their status, oldest event first."""
    _check_format(fmt)
    state.check_statuses(status)
    after = state.parse_since(since) if since else None
    with _store(state_path, write=False) as store:
        found = state.select(store.everything(), status, rule, device, after)
    rows = [t.row() for t in found]
    if fmt == "table":
        with _output(output_path) as out:
            _table(rows, out)
    else:
        _write(rows, fmt, output_path)


def _shown_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return safetext.shown(text)


def _show_text(t: state.Tracked, history: list[state.Change]) -> str:
    s = safetext.shown
    lines = [f"alert {t.alert_id}  [{s(t.status)}]",
             f"  rule          {s(t.rule_name)} ({s(t.rule_id)})",
             f"  severity      {s(t.severity)}",
             f"  device        {s(t.device)}",
             f"  time          {s(t.timestamp or '')}",
             f"  first seen    {s(t.first_seen)} (run {t.first_run})",
             f"  last seen     {s(t.last_seen)} (run {t.last_run}); seen by {t.times_seen} run(s)"]
    if t.acked_by:
        lines.append(f"  acknowledged  {s(t.acked_at)} by {s(t.acked_by)}")
    if t.closed_by:
        lines.append(f"  closed        {s(t.closed_at)} by {s(t.closed_by)}: {s(t.close_reason)}")
    if t.comment:
        lines.append(f"  comment       {s(t.comment)}")
    lines.append("fields (as the latest run reported them):")
    lines += [f"  {s(k)}: {_shown_value(v)}" for k, v in t.alert.items() if v not in (None, "", [])]
    lines.append("history:")
    for c in history:
        move = f"{s(c.from_status)} -> {s(c.to_status)}" if c.from_status else f"-> {s(c.to_status)}"
        who = f" by {s(c.actor)}" if c.actor else (f" (run {c.run_id})" if c.run_id else "")
        note = f": {s(c.note)}" if c.note else ""
        lines.append(f"  {s(c.at)}  {s(c.action)}{who}  {move}{note}")
    return "\n".join(lines) + "\n"


@alerts_app.command("show")
@_guard
def alerts_show(
    alert: Annotated[str, typer.Argument(help="Alert id or a unique prefix (at least 4 hex digits).", metavar="ID")],
    state_path: StateOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (text) | json")] = "table",
) -> None:
    """One alert: its status, every field of its latest sighting, and its history."""
    if fmt not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {fmt!r}")
    with _store(state_path, write=False) as store:
        aid = state.resolve(store, alert)
        t = store.fetch([aid])[aid]
        history = store.history(aid)
    with _output(None) as out:
        if fmt == "json":
            out.write(json.dumps({**t.row(), "alert": t.alert, "history": [c.row() for c in history]},
                                 ensure_ascii=False, indent=2, default=str) + "\n")
        else:
            out.write(_show_text(t, history))


def _done(what: str, changed: list[state.Tracked]) -> None:
    for t in changed:
        err.print(f"{t.alert_id} {what} ({safetext.markup(t.rule_name)} on {safetext.markup(t.device)})")


@alerts_app.command("ack")
@_guard
def alerts_ack(ids: IdsArg, state_path: StateOpt = None, by: ByOpt = None, comment: CommentOpt = None) -> None:
    """Acknowledge alerts (someone is on them): new or open -> acknowledged."""
    with _store(state_path, write=True) as store:
        _done("acknowledged", state.acknowledge(store, ids, by, comment))


@alerts_app.command("close")
@_guard
def alerts_close(
    ids: IdsArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (false positive, remediated, approved change...).",
                                        show_default=False)],
    state_path: StateOpt = None,
    by: ByOpt = None,
) -> None:
    """Close alerts; later runs that find them again leave them closed (`reopen` undoes it)."""
    with _store(state_path, write=True) as store:
        _done("closed", state.close(store, ids, reason, by))


@alerts_app.command("reopen")
@_guard
def alerts_reopen(ids: IdsArg, state_path: StateOpt = None, by: ByOpt = None, comment: CommentOpt = None) -> None:
    """Reopen acknowledged or closed alerts: -> open."""
    with _store(state_path, write=True) as store:
        _done("reopened", state.reopen(store, ids, by, comment))


app.add_typer(alerts_app, name="alerts")
