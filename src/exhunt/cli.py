"""Command line: detect, query, rules. Errors a user can fix print one line and exit 2."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from exhunt import __version__, output, safetext, sources, state, summary, timerange, timespan, tuning, zones
from exhunt import alerts as alerting
from exhunt import hunt as hunting
from exhunt.backends import choose
from exhunt.errors import ExhuntError, UsageError
from exhunt.replay import RuleRun
from exhunt.rule import SEVERITIES, Rule, load_rules, severity_rank
from exhunt.sources.base import FileReport

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Hunt Exchange transport-agent persistence (T1505.002) with KQL over local telemetry.")
rules_app = typer.Typer(no_args_is_help=True, help="List, show, validate, test and export rules.")
app.add_typer(rules_app, name="rules")

err = safetext.console(stderr=True, highlight=False)

EXIT_OK, EXIT_ALERTS, EXIT_ERROR = 0, 1, 2
FORMAT_CHOICES = ("table", "jsonl", "json", "csv")

PathsArg = Annotated[list[Path], typer.Argument(help="Files or folders (read recursively).", show_default=False)]
OptPathsArg = Annotated[list[Path] | None, typer.Argument(
    help="Files or folders (read recursively); none with --cluster or --workspace.", show_default=False)]
ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Kusto endpoint URL (Azure Data Explorer over https, or a loopback http endpoint).")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="Database on --cluster.")]
AuthOpt = Annotated[str, typer.Option(
    "--auth", help="How to sign in to an https cluster: default (Azure CLI, environment, managed identity...), "
                   "device (a code to enter in a browser), app (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET).")]
WorkspaceOpt = Annotated[str | None, typer.Option(
    "--workspace", help="Hunt a Log Analytics (Sentinel) workspace by its ID instead of input files.")]

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | jsonl | json | csv")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write results to this file.")]
NowOpt = Annotated[str | None, typer.Option(
    "--now", help="Run once with now() pinned to this UTC time (ISO-8601), as the live platform would.")]
InputFormatOpt = Annotated[str | None, typer.Option(
    "--input-format", help="Force the input format (see `exhunt formats`).")]
TableOpt = Annotated[str | None, typer.Option("--table", help="Force the table the input belongs to.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 2 if any record was skipped or value coerced.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No run summary on stderr.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="List every input problem kept.")]
JobsOpt = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1,
    help="Processes reading files in parallel, and rules run at once (default: one per core; 1 = none).")]
PasswordOpt = Annotated[list[str] | None, typer.Option(
    "--password", help="Password of encrypted zip and 7z archives (repeatable); 'infected' is always tried.")]
MemoryOpt = Annotated[str | None, typer.Option(
    "--memory", help="Memory for the whole run, all processes (e.g. 1GB; default 1536MB or "
                     "$EXHUNT_MEMORY); DuckDB spills to a temporary folder beyond its share.")]
FromOpt = Annotated[str | None, typer.Option(
    "--from", help="Hunt only data at or after this time (ISO-8601; UTC unless it has an offset; "
                   "a date alone: its start). Rows before it are counted as skipped.")]
ToOpt = Annotated[str | None, typer.Option(
    "--to", help="Hunt only data at or before this time (as --from; a date alone: its end).")]
TimezoneOpt = Annotated[str | None, typer.Option(
    "--timezone", help="Show times in this zone in table and CSV output (Europe/Berlin, +02:00); JSON stays UTC.")]
TuningOpt = Annotated[list[Path] | None, typer.Option(
    "--tuning", metavar="FILE",
    help="Suppress known-good alerts with this YAML tuning file (repeatable; see the user guide).")]
KnownVendorsOpt = Annotated[bool, typer.Option(
    "--known-vendors", help="Also suppress the known third-party agents (name, factory and path) exhunt ships.")]
ShowSuppressedOpt = Annotated[bool, typer.Option(
    "--show-suppressed", help="Also list suppressed alerts: a table section, or a suppressed_by field "
                              "(null when kept) in json/jsonl/csv.")]
StateOpt = Annotated[Path | None, typer.Option(
    "--state", envvar="EXHUNT_STATE", show_envvar=False,
    help="Remember this run's alerts in this file (created if missing; default: $EXHUNT_STATE); "
         "see `exhunt alerts`.")]
NewOnlyOpt = Annotated[bool, typer.Option(
    "--new-only", help="With --state: output only alerts no earlier run reported.")]
HtmlOpt = Annotated[Path | None, typer.Option(
    "--html", help="Also write a self-contained HTML report to this file (incidents, evidence, guides, timelines).")]
ContextOpt = Annotated[str, typer.Option(
    "--context", help="With --html: the events this long before and after each alert in its server's timeline.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"exhunt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print exhunt's version and exit.")] = False) -> None:
    pass


def parse_time(text: str) -> datetime:
    """ISO-8601 in, naive UTC out (KQL datetimes are UTC)."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now: {text!r} is not an ISO-8601 date-time (e.g. 2026-11-27T12:00:00Z)") from None
    if t.tzinfo is not None:
        from datetime import UTC

        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """The results' file or stdout; a write error is one line naming it (output.target)."""
    from exhunt.output.target import opened

    with opened(path) as out:
        yield out


def _options(quiet: bool, verbose: bool, strict: bool, **given: Any) -> hunting.HuntOptions:
    """The hunt's options, with the progress bar and the run summary on stderr unless --quiet."""

    @contextmanager
    def reading(total: int) -> Iterator[Any]:
        if not (sys.stderr.isatty() and not quiet and total > 8 << 20):
            yield None
            return
        with Progress(TextColumn("reading"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("read", total=total)
            yield lambda n: bar.advance(task, n)

    def loaded(reports: list[FileReport]) -> None:
        if not quiet:
            summary.render(reports, sys.stderr, verbose)

    return hunting.HuntOptions(strict=strict, reading=reading, loaded=loaded, **given)


def _check_format(fmt: str) -> None:
    """Refuse a bad --format before the inputs are read, not after."""
    if fmt not in FORMAT_CHOICES:
        raise UsageError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, not {fmt!r}")


def _span_option(option: str, text: str) -> timedelta:
    """A positive time span (`30m`, `1h`, `PT1H`) given to `option`, else one UsageError."""
    try:
        span = timespan.parse(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if span <= timedelta(0):
        raise UsageError(f"{option}: {text!r} must be longer than zero")
    return span


def _check_output(path: Path | None) -> None:
    """Refuse an --output that cannot be written before the inputs are read, not after."""
    from exhunt.output.target import check_writable

    check_writable(path)


def _check_html(path: Path | None, context: str) -> timedelta | None:
    """Refuse an unwritable --html or a bad --context before the inputs are read; the
    timeline's window (None without --html)."""
    from exhunt.output.target import check_writable

    check_writable(path, "--html")
    try:
        around = timespan.parse(context)
    except ValueError as exc:
        raise UsageError(f"--context: {exc}") from None
    return around if path is not None else None


def _write(rows: list[dict[str, Any]], fmt: str, path: Path | None, details: list[str] | None = None,
           title: str | None = None, zone: str = "UTC", suppressed: list[tuning.Shown] | None = None,
           incidents: timedelta | None = None) -> None:
    """Rows (alerts, or a query's rows) in `fmt`; alerts grouped into incidents within the
    `incidents` window when one is given. With `suppressed` (--show-suppressed): a second table
    section, or every alert with a `suppressed_by` field (None when kept), the suppressed ones
    after the others (as incidents of their own, marked `suppressed`, when grouping)."""
    if fmt not in FORMAT_CHOICES:
        raise UsageError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, not {fmt!r}")
    with _output(path) as out:
        if incidents is not None:
            tag = suppressed is not None and fmt != "table"
            hidden = [tuning.tagged(s.alert, s.entry) for s in suppressed or []] if tag else None
            output.write_incidents([tuning.tagged(r, None) for r in rows] if tag else rows, fmt, out, details,
                                   incidents, title, zone=zone, suppressed=hidden)
            if suppressed and fmt == "table":
                out.write("\n")
                output.write_table([s.alert for s in suppressed], out, [s.detail for s in suppressed],
                                   f"Suppressed by tuning: {len(suppressed)} alert(s)", zone=zone)
        elif fmt == "table":
            if details is None:
                details = [" | ".join(f"{k}={v}" for k, v in r.items() if v not in (None, "")) for r in rows]
            output.write_table(rows, out, details, title, zone=zone)
            if suppressed:
                out.write("\n")
                output.write_table([s.alert for s in suppressed], out, [s.detail for s in suppressed],
                                   f"Suppressed by tuning: {len(suppressed)} alert(s)", zone=zone)
        else:
            if suppressed is not None:
                rows = [tuning.tagged(r, None) for r in rows] + [tuning.tagged(s.alert, s.entry) for s in suppressed]
            output.FORMATS[fmt](rows, out)


def _guard(fn: Any) -> Any:
    """Turn user errors into one clear line and exit 2, never a traceback; Ctrl-C exits 130
    and SIGTERM/SIGHUP 128+signal, DuckDB interrupted and temporary folders removed."""
    import functools

    from exhunt import lifecycle

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with lifecycle.handling_signals():
                try:
                    return fn(*args, **kwargs)
                except (Exception, KeyboardInterrupt) as exc:
                    if lifecycle.stopping() is None or isinstance(exc, typer.Exit):
                        raise
                    # An error raised by the interruption itself (a query DuckDB stopped).
                    raise KeyboardInterrupt if lifecycle.stopping() == signal.SIGINT \
                        else lifecycle.Terminated(lifecycle.stopping() or signal.SIGTERM) from None
        except ExhuntError as exc:
            err.print(f"[red]error:[/red] {safetext.markup(exc)}", soft_wrap=True)  # one line, even when long
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except lifecycle.Terminated as exc:
            err.print(f"terminated ({exc})")
            raise typer.Exit(128 + exc.signum) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug of ours: say so in one line, traceback on request
            import os

            if os.environ.get("EXHUNT_DEBUG"):
                raise
            err.print(f"[red]internal error:[/red] {escape(type(exc).__name__)}: {safetext.markup(exc)} "
                      "(set EXHUNT_DEBUG=1 for the traceback)")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


@app.command()
@_guard
def detect(
    paths: OptPathsArg = None,
    rules: Annotated[list[str] | None, typer.Option(
        "--rules", "-r", help="Rule file, folder, or shipped rule name/id (repeatable). Default: all shipped.")] = None,
    now: NowOpt = None,
    fmt: FormatOpt = "table",
    output_path: OutputOpt = None,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", help="Exit 1 when an alert is at or above this severity.")] = None,
    input_format: InputFormatOpt = None,
    table: TableOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    jobs: JobsOpt = None,
    mem: MemoryOpt = None,
    min_severity: Annotated[str | None, typer.Option(
        "--min-severity", help="Show only alerts at or above this severity (the summary counts the rest).")] = None,
    time_from: FromOpt = None,
    time_to: ToOpt = None,
    tz: TimezoneOpt = None,
    password: PasswordOpt = None,
    cluster: ClusterOpt = None,
    database: DatabaseOpt = None,
    workspace: WorkspaceOpt = None,
    auth: AuthOpt = "default",
    tuning_files: TuningOpt = None,
    known_vendors: KnownVendorsOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    state_path: StateOpt = None,
    new_only: NewOnlyOpt = False,
    flat: Annotated[bool, typer.Option(
        "--flat", help="One record per alert in time order, not grouped into incidents.")] = False,
    incident_window: Annotated[str, typer.Option(
        "--incident-window", help="Alerts on one server each within this span of the previous one "
                                  "form an incident (5m, 1h, 1d).")] = "1h",
    html: HtmlOpt = None,
    context: ContextOpt = "15m",
    explain: Annotated[str | None, typer.Option(
        "--explain", metavar="ALERT_ID", help="Explain one alert (its alert_id, or a unique start of it): each "
        "condition of its rule, held or not on the alert's rows, with the values it compared.")] = None,
) -> None:
    """Run detection rules over telemetry (files, a Kusto cluster or a workspace) and print alerts,
    grouped into incidents (one per server and stretch of time) unless --flat."""
    if fail_on is not None and fail_on.lower() not in SEVERITIES:
        raise UsageError(f"--fail-on must be one of {', '.join(SEVERITIES)}")
    if min_severity is not None and min_severity.lower() not in SEVERITIES:
        raise UsageError(f"--min-severity must be one of {', '.join(SEVERITIES)}, not {min_severity!r}")
    span = timerange.parse_range(time_from, time_to)
    zone = zones.parse_zone(tz) if tz else zones.UTC_ZONE
    _check_format(fmt)
    _check_output(output_path)
    grouping = _span_option("--incident-window", incident_window) if html is not None or not flat else None
    window = None if flat else grouping
    around = _check_html(html, context)
    pinned = parse_time(now) if now else None
    if new_only and state_path is None:
        raise UsageError("--new-only needs --state FILE (or $EXHUNT_STATE): the alerts of earlier runs")
    tracker = state.Tracker(state_path, new_only) if state_path is not None else None
    chosen = load_rules(rules)
    tuned = tuning.load(tuning_files or [], known_vendors)  # a bad tuning file fails before the inputs are read
    if explain is not None and (cluster or workspace):
        raise UsageError("--explain evaluates the rule on the alert's rows in the local engine: "
                         "it cannot be used with --cluster or --workspace")
    remote = choose.remote(paths, cluster, database, workspace, auth, span)
    options = _options(quiet, verbose, strict, now=pinned, input_format=input_format, table=table, jobs=jobs,
                       memory=mem, span=span, passwords=password, context=around)
    if explain is not None:
        return _explain(paths or [], chosen, options, explain, fmt, output_path)
    try:
        result = hunting.hunt(paths or [], chosen, options, backend=remote)
    finally:
        if remote is not None:
            remote.close()
    found, runs = result.alerts, result.runs
    tuned_out = tuning.apply(found, tuned, result.rules)  # before --min-severity and --fail-on
    floor = severity_rank(min_severity) if min_severity else 0
    keep = [i for i in tuned_out.kept_index if severity_rank(found[i]["severity"]) >= floor]
    below = len(tuned_out.kept_index) - len(keep)
    if tracker is not None:
        keep = tracker.select(found, keep)  # --new-only: only what no earlier run reported
    if fmt in ("table", "csv"):
        found = zones.localize(found, zone, result.time_columns)
    details = [alerting.summary_line(result.rules[i], found[i]) for i in keep]
    hidden = [s for s in tuning.shown(tuned_out, found, result.rules)
              if severity_rank(s.alert["severity"]) >= floor] if show_suppressed else None
    found = [found[i] for i in keep]
    _report_runs(runs, len(found), quiet, below, min_severity)
    _report_tuning(tuned_out, quiet)
    _write(found, fmt, output_path, details, zone=zone.label, suppressed=hidden, incidents=window)
    if html is not None:
        from exhunt.incidents import group
        from exhunt.output import html as report

        shown = [result.alerts[i] for i in keep]  # in UTC, whatever --timezone
        report.write(html, shown, [result.rules[i] for i in keep], result.timeline,
                     group(shown, grouping or timedelta(hours=1)),
                     notes=[f"{run.rule.slug} failed: {run.error}" for run in runs if run.error])
    if tracker is not None:  # recorded once written: a run that dies before forgets, never loses
        seen = tracker.commit()
        if not quiet:
            err.print(f"State {safetext.markup(state_path)}: {seen.line()}.", soft_wrap=True)
    if any(run.error for run in runs):
        raise typer.Exit(EXIT_ERROR)  # a partial run must not look clean
    if fail_on and any(severity_rank(a["severity"]) >= severity_rank(fail_on) for a in found):
        raise typer.Exit(EXIT_ALERTS)


def _report_tuning(outcome: tuning.Outcome, quiet: bool) -> None:
    """What the tuning files did: alerts suppressed per entry, expired and stale entries."""
    if quiet:
        return
    for level, text in tuning.report(outcome):
        prefix = "[yellow]warning:[/yellow] " if level == "warning" else ""
        err.print(prefix + safetext.markup(text), soft_wrap=True)


def _explain(paths: list[Path], rules: list[Rule], options: hunting.HuntOptions, ref: str, fmt: str,
             output_path: Path | None) -> None:
    """--explain: one alert's conditions, held or not on its rows, with the values they read."""
    from exhunt import why
    from exhunt.output.explanation import write_explanation

    doc = why.explain_paths(paths, rules, options, ref)
    with _output(output_path) as out:
        write_explanation(doc, fmt, out)


def _report_runs(runs: list[RuleRun], n_alerts: int, quiet: bool, below: int = 0, floor: str | None = None) -> None:
    """One line per rule; a rule that failed is named with its reason even with --quiet."""
    failed = [run for run in runs if run.error]
    for run in runs:
        if run.error:
            err.print(f"[red]rule {safetext.markup(run.rule.slug)} FAILED:[/red] {safetext.markup(run.error)}")
        elif not quiet:
            line = f"rule {safetext.markup(run.rule.slug)}: {len(run.rows)} alert(s) over {run.runs} run(s)"
            if run.note:
                line += f" [yellow]- {safetext.markup(run.note)}[/yellow]"
            err.print(line)
    hidden = f" {below} alert(s) below --min-severity {floor} not shown." if floor else ""
    if failed:
        names = ", ".join(run.rule.slug for run in failed)
        err.print(f"[red]{len(failed)} of {len(runs)} rule(s) failed[/red] "
                  f"({safetext.markup(names)}): the results are partial; "
                  f"{n_alerts} alert(s) from the other {len(runs) - len(failed)}.{hidden}")
    elif not quiet:
        err.print(f"{n_alerts} alert(s) from {len(runs)} rule(s).{hidden}")


@app.command()
@_guard
def query(
    kql: Annotated[str | None, typer.Argument(
        help="KQL query over the normalized tables (none with --file).", show_default=False)] = None,
    paths: OptPathsArg = None,
    query_file: Annotated[Path | None, typer.Option(
        "--file", metavar="FILE", help="Run the KQL query in this file (instead of the KQL argument).")] = None,
    now: NowOpt = None,
    fmt: FormatOpt = "table",
    output_path: OutputOpt = None,
    input_format: InputFormatOpt = None,
    table: TableOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    jobs: JobsOpt = None,
    mem: MemoryOpt = None,
    time_from: FromOpt = None,
    time_to: ToOpt = None,
    tz: TimezoneOpt = None,
    password: PasswordOpt = None,
    cluster: ClusterOpt = None,
    database: DatabaseOpt = None,
    workspace: WorkspaceOpt = None,
    auth: AuthOpt = "default",
) -> None:
    """Ad-hoc hunting: run one KQL query over the same tables (files, a Kusto cluster or a workspace)."""
    _check_format(fmt)
    _check_output(output_path)
    kql, paths = _query_text(kql, paths, query_file)
    pinned = parse_time(now) if now else None
    span = timerange.parse_range(time_from, time_to)
    zone = zones.parse_zone(tz) if tz else zones.UTC_ZONE
    options = _options(quiet, verbose, strict, input_format=input_format, table=table, jobs=jobs, memory=mem,
                       span=span, passwords=password)
    remote = choose.remote(paths, cluster, database, workspace, auth, span)
    backend = remote if remote is not None else hunting.open_local(paths or [], [kql], options)[0]
    with backend:
        result = backend.query(kql, pinned)
    write_results(result, fmt, output_path, zone, quiet)


def _query_text(kql: str | None, paths: list[Path] | None, query_file: Path | None) -> tuple[str, list[Path] | None]:
    """The query (the argument, or --file's text) and the input paths: with --file every
    positional argument is a path, and the KQL argument is refused."""
    if query_file is None:
        if kql is None:
            raise UsageError("give a KQL query, or --file FILE holding one")
        return kql, paths
    if kql is not None:
        if not Path(kql).exists():
            raise UsageError("--file and a KQL argument are two queries: give one "
                             f"({safetext.shown(kql)[:40]!r} is not an input path)")
        paths = [Path(kql), *(paths or [])]
    try:
        text = query_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--file {query_file}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"--file {query_file}: {exc.strerror or exc}") from None
    if not text.strip():
        raise UsageError(f"--file {query_file}: holds no query")
    return text, paths


def write_results(result: Any, fmt: str, output_path: Path | None, zone: zones.Zone, quiet: bool) -> None:
    """A query's rows (an Arrow table) in `fmt`: a grid of its own columns on a terminal
    (output.grid), else json/jsonl/csv; provenance columns (`_...`) left out."""
    from exhunt.output.grid import write_grid

    columns = [c for c in result.column_names if not c.startswith("_")]
    raw = result.to_pylist()
    rows = [{k: alerting.jsonable(r[k]) for k in columns} for r in raw]
    if not quiet:
        err.print(f"{len(rows)} row(s).")
    if fmt in ("table", "csv"):
        rows = zones.localize(rows, zone, zones.time_columns(raw))
    if fmt == "table":
        with _output(output_path) as out:
            write_grid(rows, columns, out)
        return
    _write(rows, fmt, output_path, zone=zone.label)


@app.command()
@_guard
def ingest(
    paths: PathsArg,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write: one Parquet folder per table.")] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to tables already in --out.")] = False,
    cluster: ClusterOpt = None,
    database: DatabaseOpt = None,
    auth: AuthOpt = "default",
    queued: Annotated[bool, typer.Option(
        "--queued", help="With --out and --cluster: queue the Parquet written to --out for ingestion "
                         "by the cluster (large loads) instead of sending rows in commands.")] = False,
    input_format: InputFormatOpt = None,
    table: TableOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    jobs: JobsOpt = None,
    mem: MemoryOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Parse inputs once into Parquet (OUT/<Table>/part-*.parquet), or onto a Kusto cluster, for repeated hunts."""
    from contextlib import nullcontext

    from exhunt.ingest import Target

    if out is None and cluster is None:
        raise UsageError("ingest needs --out FOLDER, --cluster URL --database DB, or both")
    if (cluster is None) != (database is None):
        raise UsageError("--cluster and --database go together")
    if queued and (out is None or cluster is None):
        raise UsageError("--queued needs --out (the Parquet to queue) and --cluster")
    backend = None
    if cluster is not None and not queued:
        from exhunt.backends.kusto import KustoBackend

        backend = KustoBackend(cluster, str(database), auth)  # checked before anything is read
    written: dict[str, int] = {}
    sent: dict[str, int] = {}
    queued_files: dict[str, int] = {}
    options = _options(quiet, verbose, strict, input_format=input_format, table=table, jobs=jobs, memory=mem,
                       passwords=password)
    with (Target(out, append) if out is not None else nullcontext(None)) as target, \
            hunting.new_session(options) as session:
        # Large CSV parsed by DuckDB and Parquet read in place: the tables are only copied out.
        session.in_place = True
        found = list(sources.walk(paths))
        files = target.split(found) if target is not None else found
        for note in target.notes if target is not None and not quiet else []:
            err.print(f"note: {safetext.markup(note)}")
        if found and not files:
            if not quiet:
                err.print(f"Nothing new: every input is already in {safetext.markup(out)}.")
            return
        hunting.load(session, paths, options, files)
        if target is not None:
            written = target.publish(session, files)
        if backend is not None:
            from exhunt.backends.kusto_ingest import upload
            from exhunt.ingest import cluster_uploads

            sent = upload(backend, cluster_uploads(session)).stored
        elif queued:
            from exhunt.backends.kusto_ingest import queue_parquet
            from exhunt.ingest import cluster_uploads

            kinds = {u.table: u.columns for u in cluster_uploads(session)}
            queued_files = queue_parquet(str(cluster), str(database), out, kinds, auth)  # type: ignore[arg-type]
    if not quiet:
        for name, n in sorted(written.items()):
            err.print(f"{name}: {n} row(s) -> {safetext.markup(out / name)}")  # type: ignore[operator]
        if out is not None:
            err.print(f"{sum(written.values())} row(s) in {len(written)} table(s) written to {safetext.markup(out)}.")
        if backend is not None:
            for name, n in sorted(sent.items()):
                if n:
                    err.print(f"{name}: {n} row(s) -> {safetext.markup(backend.name)}")
            filled = sum(1 for n in sent.values() if n)
            err.print(f"{sum(sent.values())} row(s) in {filled} table(s) stored on {safetext.markup(backend.name)}.")
        elif queued:
            err.print(f"{sum(queued_files.values())} Parquet file(s) of {len(queued_files)} table(s) queued "
                      f"for ingestion into {safetext.markup(database)} on {safetext.markup(cluster)} "
                      "(the cluster loads them in the background; `.show ingestion failures` lists any it refuses).")


@app.command()
def formats() -> None:
    """List the input formats exhunt recognises."""
    readers = sorted(sources.readers().items())
    containers = sources.containers()
    width = max(len(n) for n in [*(n for n, _ in readers), *(c.name for c in containers)])
    for name, reader in readers:
        typer.echo(f"{name:{width}} {reader.description}")
    for c in containers:
        typer.echo(f"{c.name:{width}} archive (read without extracting)")


@rules_app.command("list")
@_guard
def rules_list(
    rules: Annotated[list[str] | None, typer.Argument(help="Rule files/folders (default: shipped).")] = None,
) -> None:
    """One line per rule: name, severity, techniques, tables."""
    from exhunt.explain import listing

    sys.stdout.write(listing(load_rules(rules)))


@rules_app.command("show")
@_guard
def rules_show(rule: Annotated[str, typer.Argument(help="Rule name, id, or file.")]) -> None:
    """Print a rule's metadata, query, and its guide."""
    from exhunt.explain import show

    (found,) = load_rules([rule])[:1]
    show(found, safetext.console(), plain=not sys.stdout.isatty())


@rules_app.command("validate")
@_guard
def rules_validate(
    rules: Annotated[list[str] | None, typer.Argument(help="Rule files/folders (default: shipped).")] = None,
) -> None:
    """Check every rule against the schema, the engine, and the Sentinel/Defender limits; list
    every problem, then a summary (exit 2 if any rule has one)."""
    from exhunt.validate import render, validate_all

    if render(validate_all(rules), err):
        raise typer.Exit(EXIT_ERROR)


@rules_app.command("test")
@_guard
def rules_test(
    rules: Annotated[list[str] | None, typer.Argument(help="Rule files/folders/names (default: shipped).")] = None,
    verbose: VerboseOpt = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Also write the results as JUnit XML to this file (for CI).")] = None,
) -> None:
    """Run the test cases beside each rule (rules/tests/<rule>.yaml); exit 1 on any failure."""
    from exhunt.output.target import check_writable, opened
    from exhunt.ruletest import junit_xml, run_tests

    check_writable(junit, "--junit")
    results = run_tests(load_rules(rules))
    if junit is not None:
        with opened(junit, "--junit") as fh:
            fh.write(junit_xml(results))
    failed = [r for r in results if not r.passed]
    for res in results:
        if res.passed and not verbose:
            continue
        mark = "[green]pass[/green]" if res.passed else "[red]FAIL[/red]"
        err.print(f"{mark} {safetext.markup(res.rule.slug)} :: {safetext.markup(res.name)} ({res.kind})")
        for p in res.problems:
            err.print(f"     {safetext.markup(p)}")
    err.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(EXIT_ALERTS)


@rules_app.command("convert")
@_guard
def rules_convert(
    rule: Annotated[Path, typer.Argument(help="A Sigma rule file.")],
    output_path: OutputOpt = None,
) -> None:
    """Convert a Sigma rule into an exhunt rule file (KQL via pySigma's Kusto backend)."""
    from exhunt.sigmarule import convert_file

    text = convert_file(rule)
    with _output(output_path) as out:
        out.write(text)


@rules_app.command("export")
@_guard
def rules_export(
    rule: Annotated[str, typer.Argument(help="Rule name, id, or file.")],
    to: Annotated[str, typer.Option("--to", help="sentinel | sentinel-arm | defender")],
    output_path: OutputOpt = None,
) -> None:
    """Export a rule: Sentinel analytic-rule YAML, an ARM template, or Defender custom-detection JSON."""
    from exhunt.export import TARGETS, defender_warnings, export

    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}, not {to!r}")
    found = load_rules([rule])
    if len(found) != 1:
        raise UsageError(f"{rule!r} names {len(found)} rules; export takes one")
    text = export(found[0], to)
    with _output(output_path) as out:
        out.write(text)
    if to == "defender":
        for warning in defender_warnings(found[0]):
            err.print(f"[yellow]warning:[/yellow] {safetext.markup(warning)}")


def _add_groups() -> None:
    """Command groups kept in their own modules: each adds itself to `app` when imported."""
    from exhunt import cli_alerts, cli_audit, cli_hunt, cli_simulate  # noqa: F401


_add_groups()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
