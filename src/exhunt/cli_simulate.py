"""`exhunt simulate`: write a scenario's telemetry in an input format, list scenarios, or --check them.

Adds itself to exhunt.cli's app (as cli_alerts does). Scenario texts are the package's or the
user's files: everything printed passes through safetext.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from exhunt import safetext
from exhunt.cli import _guard, app
from exhunt.errors import UsageError
from exhunt.simulate import check as checking
from exhunt.simulate.events import DEFAULT_HOST, DEFAULT_START, generate, install_root
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import Scenario, by_atomic, resolve, root_option, shipped

out_console = safetext.console(highlight=False, soft_wrap=True)


def _start(text: str | None) -> datetime:
    if not text:
        return DEFAULT_START
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--start {text!r}: give an ISO time such as 2026-11-21T02:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: What `--format` cannot give, said wherever the formats are listed.
NO_EVTX = ("Binary .evtx files are not written: evtx-json holds the same records as evtx_dump renders them "
           "(exhunt reads both).")


def _list() -> None:
    for sc in shipped():
        must = ", ".join(sorted({e.rule for e in sc.must()})) or "-"
        must_not = ", ".join(e.rule for e in sc.must_not()) or "-"
        atomic = f" [atomic {', '.join(sc.atomic)}]" if sc.atomic else ""
        out_console.print(safetext.markup(f"{sc.id} ({sc.kind}): {sc.title}{atomic}"))
        out_console.print(safetext.markup(f"    must alert: {must}"))
        out_console.print(safetext.markup(f"    must not:   {must_not}"))
        if sc.tuning is not None:
            name = sc.tuning if isinstance(sc.tuning, str) else sc.tuning.name
            still = ", ".join(sorted({e.rule for e in sc.tuned})) or "-"
            out_console.print(safetext.markup(f"    tuned with {name}, still alerts: {still}"))
        if sc.exchange_root:
            out_console.print(safetext.markup(f"    Exchange at: {sc.exchange_root}"))
        if sc.hunts:
            out_console.print(safetext.markup(f"    hunts:      {', '.join(sorted({e.hunt for e in sc.hunts}))}"))
    out_console.print("\nFormats (--format), by family:")
    for w in sorted(writers().values(), key=lambda w: (w.family, w.name)):
        out_console.print(safetext.markup(f"    {w.name:22} {w.family:9} {w.description}"))
    out_console.print(safetext.markup(NO_EVTX))


@app.command("simulate")
@_guard
def simulate_command(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SCENARIO", show_default=False, help="Scenario ids (see --list) or scenario YAML files."
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format: " + ", ".join(writers()) + " (--check: default every format). Binary .evtx"
            " files are not written (evtx-json is their evtx_dump form); --list describes each format.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder to write the files into.")] = None,
    host: Annotated[str, typer.Option("--host", help="The server's name.")] = DEFAULT_HOST,
    exchange_root: Annotated[
        str | None,
        typer.Option(
            "--exchange-root",
            help="Exchange's install folder on the server (default C:\\Program Files\\Microsoft\\Exchange Server\\V15,"
            " or the scenario's exchange_root).",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="UTC time of the first step (ISO).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for ids, GUIDs and time fractions.")] = 1,
    noise: Annotated[int, typer.Option("--noise", min=0, help="Add N background events.")] = 0,
    list_: Annotated[bool, typer.Option("--list", help="List the shipped scenarios and their rules.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Generate, detect and compare with each scenario's expectations and hunts (exit 1 on any"
            " miss or unexpected alert). Several scenarios share one detect per format, each on its own"
            " server (--host NAME.domain gives NAME-01.domain, NAME-02.domain...).",
        ),
    ] = False,
    atomic: Annotated[
        str | None,
        typer.Option("--atomic", help="Scenarios of an Atomic Red Team test: its technique (T1505.002) or GUID."),
    ] = None,
) -> None:
    """Write attack or benign telemetry without a lab, or check that the rules catch it."""
    if list_:
        _list()
        return
    chosen: list[Scenario] = []
    for ref in scenarios or []:
        chosen += resolve(ref)
    if atomic:
        chosen += by_atomic(atomic)
    if not chosen:
        raise UsageError("name a scenario (exhunt simulate --list), a scenario file, or --atomic T1505.002")
    known = writers()
    if fmt is not None and fmt not in known:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(known)}")
    when = _start(start)
    if exchange_root is not None:
        exchange_root = root_option(exchange_root)
    if check:
        # one detect per format over every scenario, each on its own server (simulate.layout)
        for sc in chosen:
            install_root([sc], exchange_root)  # a root at odds with --exchange-root fails before any output
        failed = 0
        for name in [fmt] if fmt else list(known):
            for v in checking.check_all(chosen, name, host=host, start=when, seed=seed, exchange_root=exchange_root):
                failed += not v.ok
                out_console.print(safetext.markup(f"{v.label}  {v.scenario} [{v.format}]  {v.text}"))
        if failed:
            raise typer.Exit(1)
        return
    install_root(chosen, exchange_root)  # scenarios that need another server fail here, before any output
    if fmt is None or out is None:
        raise UsageError("give --format and --out (or --check, or --list)")
    out.mkdir(parents=True, exist_ok=True)
    sim = generate(chosen, host, when, seed, noise, exchange_root)
    for path in known[fmt].write(sim, out):
        out_console.print(safetext.markup(str(path)))
