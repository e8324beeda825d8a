"""`exhunt hunt list|show|NAME`: the shipped hunting queries (exhunt.hunts) run by name.

`exhunt hunt NAME PATHS... --param K=V` is `exhunt hunt run NAME ...`: a word that is not a
subcommand is taken as a hunt's name. The group adds itself to exhunt.cli's app (which imports
this module). Parameters reach the query only as typed `let` literals (hunts.bind).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from exhunt import hunt as hunting
from exhunt import hunts, safetext, timerange, zones
from exhunt.backends import choose
from exhunt.cli import (
    AuthOpt,
    ClusterOpt,
    DatabaseOpt,
    FormatOpt,
    FromOpt,
    InputFormatOpt,
    JobsOpt,
    MemoryOpt,
    OptPathsArg,
    OutputOpt,
    PasswordOpt,
    QuietOpt,
    StrictOpt,
    TableOpt,
    TimezoneOpt,
    ToOpt,
    VerboseOpt,
    WorkspaceOpt,
    _check_format,
    _check_output,
    _guard,
    _options,
    app,
    write_results,
)


class _ByName(TyperGroup):
    """A group whose unknown first word is a hunt's name: `hunt NAME ...` runs `hunt run NAME ...`."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().resolve_command(ctx, args)


hunt_app = typer.Typer(cls=_ByName, no_args_is_help=True, help=(
    "Named hunting queries from the rule guides: `exhunt hunt list`, `exhunt hunt show NAME`, "
    "`exhunt hunt NAME PATHS... --param Host=...`."))

ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", metavar="NAME=VALUE",
    help="A parameter of the hunt (repeatable; `exhunt hunt show NAME` lists them).")]


@hunt_app.command("list")
@_guard
def list_hunts() -> None:
    """The shipped hunts: name, title, the rules they support, their parameters."""
    console = safetext.console(highlight=False, soft_wrap=False)
    table = Table(box=None, pad_edge=False)
    table.add_column("Name", no_wrap=True)
    table.add_column("Title", ratio=2)
    table.add_column("Rules", ratio=1)
    table.add_column("Parameters", ratio=1)
    for h in hunts.shipped().values():
        params = ", ".join(f"{p.name}: {p.type}{'' if not p.required else ' (required)'}" for p in h.params)
        table.add_row(h.name, h.title, ", ".join(h.rules), params or "-")
    console.print(table)


@hunt_app.command("show")
@_guard
def show_hunt(name: Annotated[str, typer.Argument(help="The hunt's name (see `exhunt hunt list`).")]) -> None:
    """A hunt's description, parameters and query."""
    h = hunts.get(name)
    console = safetext.console(highlight=False, markup=False, soft_wrap=True)
    console.print(f"{h.name}: {h.title}")
    console.print(h.description)
    console.print(f"rules: {', '.join(h.rules)}")
    console.print("parameters:" if h.params else "parameters: none")
    for p in h.params:
        console.print(f"  {p.name}: {p.type} = {p.shown_default()}" + (f"  -- {p.help}" if p.help else ""))
    console.print("time range: --from/--to (default: the data's whole span)")
    console.print("")
    console.print(h.query)


@hunt_app.command("run")
@_guard
def run_hunt(
    name: Annotated[str, typer.Argument(help="The hunt's name (see `exhunt hunt list`).")],
    paths: OptPathsArg = None,
    param: ParamOpt = None,
    time_from: FromOpt = None,
    time_to: ToOpt = None,
    fmt: FormatOpt = "table",
    output_path: OutputOpt = None,
    tz: TimezoneOpt = None,
    input_format: InputFormatOpt = None,
    table: TableOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    jobs: JobsOpt = None,
    mem: MemoryOpt = None,
    password: PasswordOpt = None,
    cluster: ClusterOpt = None,
    database: DatabaseOpt = None,
    workspace: WorkspaceOpt = None,
    auth: AuthOpt = "default",
) -> None:
    """Run a hunt by name over files, a Kusto cluster or a workspace; rows as a grid (or -f json/jsonl/csv)."""
    _check_format(fmt)
    _check_output(output_path)
    h = hunts.get(name)
    given = hunts.parse_given(param or [])
    hunts.values(h, given)  # unknown names, bad values, missing ones: refused before reading
    span = timerange.parse_range(time_from, time_to)
    zone = zones.parse_zone(tz) if tz else zones.UTC_ZONE
    remote = choose.remote(paths, cluster, database, workspace, auth, span)
    kql = hunts.bind(h, given, separators=remote is None)
    options = _options(quiet, verbose, strict, input_format=input_format, table=table, jobs=jobs, memory=mem,
                       span=span, passwords=password)
    backend: Any = remote if remote is not None else hunting.open_local(paths or [], [kql], options)[0]
    with backend:
        result = backend.query(kql)
    write_results(result, fmt, output_path, zone, quiet)


app.add_typer(hunt_app, name="hunt")
