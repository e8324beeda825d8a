"""`exhunt audit PATH`: every transport agent an Exchange server (or a collected copy of its files)
registers, judged with its evidence (exhunt.audit), written through `detect`'s outputs.

Findings are alerts of `detect`'s schema, so the formats, incidents (`--flat` to skip them),
tuning files and `--known-vendors`, `--state`, `--html` and the exit codes work the same way.
The command adds itself to exhunt.cli's app (which imports this module).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from exhunt import safetext, state, tuning
from exhunt.cli import (
    EXIT_ALERTS,
    FormatOpt,
    KnownVendorsOpt,
    OutputOpt,
    QuietOpt,
    ShowSuppressedOpt,
    StateOpt,
    TuningOpt,
    _check_format,
    _check_output,
    _guard,
    _report_tuning,
    _write,
    app,
    err,
)
from exhunt.errors import UsageError
from exhunt.rule import SEVERITIES, severity_rank

#: How many skipped files the summary names (all are counted).
SHOWN_SKIPS = 10


def detail_of(finding: dict[str, Any]) -> str:
    """The table's line for a finding: what it is about, its verdict, the first piece of evidence."""
    subject = finding.get("AgentName") or finding.get("FolderPath") or finding.get("source_file") or ""
    service = f" ({finding['TransportService']})" if finding.get("TransportService") else ""
    path = f" -> {finding['AssemblyPath']}" if finding.get("AssemblyPath") else ""
    evidence = finding.get("Evidence") or []
    first = f" | {evidence[0]}" if evidence else ""
    return f"{subject}{service}{path}: {finding.get('Verdict', '')}{first}"


def _order(finding: dict[str, Any]) -> tuple[int, str, int, str]:
    record = str(finding.get("source_record") or "")
    line = int(record[5:]) if record.startswith("line ") and record[5:].isdigit() else 0
    return (-severity_rank(str(finding["severity"])), str(finding.get("source_file") or ""), line,
            str(finding["rule_id"]))


def _summary(result: Any, shown: int, below: int, floor: str | None) -> None:
    """Lists found, agents read, DLLs judged, files skipped and why: the run summary on stderr."""
    from collections import Counter

    m = safetext.markup
    coll = result.collection
    drives = ", ".join(f"{k}:" for k in sorted(coll.drives)) or "none"
    err.print(f"Collection {m(coll.root)} ({coll.layout} layout, drives {drives}); "
              f"server {m(result.device)} ({m(result.device_from)}).", soft_wrap=True)
    for inst in result.installs:
        err.print(f"Exchange install {m(inst.root)} ({m(inst.version or 'version unknown')}"
                  f"{', Edge Transport' if inst.edge else ''}).", soft_wrap=True)
    for alist in result.lists:
        state_text = f"{len(alist.agents)} agent(s)" if alist.problem is None else \
            f"NOT READ: {alist.problem.kind}"
        err.print(f"  {alist.role} list {m(alist.source)} ({m(alist.service or alist.form)}): {state_text}",
                  soft_wrap=True)
        for note in alist.notes:
            err.print(f"    note: {m(note)}", soft_wrap=True)
    counts = Counter(str(f["severity"]) for f in result.findings)
    by_sev = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts.get(s))
    err.print(f"{len(result.lists)} list(s), {result.agents} agent(s) read, {result.judged} DLL(s) judged; "
              f"look-around: {result.around.files} file(s) walked, {result.around.pe} PE, "
              f"{result.around.signatures} signature(s) checked.", soft_wrap=True)
    if coll.skipped:
        err.print(f"{len(coll.skipped)} skipped:", soft_wrap=True)
        for what, why in coll.skipped[:SHOWN_SKIPS]:
            err.print(f"  {m(what)}: {m(why)}", soft_wrap=True)
        if len(coll.skipped) > SHOWN_SKIPS:
            err.print(f"  ... and {len(coll.skipped) - SHOWN_SKIPS} more", soft_wrap=True)
    hidden = f" {below} below --min-severity {floor} not shown." if floor else ""
    err.print(f"{len(result.findings)} finding(s) ({by_sev or 'none'}); {shown} shown; "
              f"{result.seconds:.2f}s.{hidden}", soft_wrap=True)


@app.command("audit")
@_guard
def audit_command(
    path: Annotated[Path, typer.Argument(
        help="A collected or mounted file system (drive folders, KAPE or Velociraptor layout, one drive's root), "
             "a live drive on the server, or one agents.config / saved Get-TransportAgent output.",
        show_default=False)],
    drive: Annotated[list[str] | None, typer.Option(
        "--drive", metavar="LETTER=DIR", help="Read drive LETTER from folder DIR (repeatable), e.g. --drive E=./E.")]
    = None,
    baseline_path: Annotated[Path | None, typer.Option(
        "--baseline", help="Report every agent added, removed, re-pointed, re-ordered, re-enabled or whose DLL "
                           "changed since this baseline (written by --save-baseline).")] = None,
    save_baseline: Annotated[Path | None, typer.Option(
        "--save-baseline", help="Record the agents, their order and DLL hashes in this file (a known-good server).")]
    = None,
    yara: Annotated[list[Path] | None, typer.Option(
        "--yara", metavar="DIR", help="Also run the YARA rules (*.yar, *.yara) in this folder (repeatable).")] = None,
    fmt: FormatOpt = "table",
    output_path: OutputOpt = None,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", help="Exit 1 when a finding is at or above this severity.")] = None,
    min_severity: Annotated[str | None, typer.Option(
        "--min-severity", help="Show only findings at or above this severity (the summary counts the rest).")]
    = None,
    quiet: QuietOpt = False,
    tuning_files: TuningOpt = None,
    known_vendors: KnownVendorsOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    state_path: StateOpt = None,
    new_only: Annotated[bool, typer.Option(
        "--new-only", help="With --state: output only findings no earlier run reported.")] = False,
    flat: Annotated[bool, typer.Option(
        "--flat", help="One record per finding, not grouped into incidents (one per server, evidence per agent).")]
    = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write a self-contained HTML report of the findings to this file.")] = None,
    no_look_around: Annotated[bool, typer.Option(
        "--no-look-around", help="Judge the registered agents only: skip the files around them.")] = False,
) -> None:
    """Audit the transport agents of an Exchange server or a collected copy of its files: each
    registered agent with a verdict and its evidence (DLL, signature, hash, location, factory),
    plus files around them (unlisted PE files, LightNeuron's names, mail left in Pickup)."""
    from exhunt.audit import checks
    from exhunt.audit.collection import parse_drive_options
    from exhunt.audit.run import AuditOptions, audit
    from exhunt.output.target import check_writable

    if fail_on is not None and fail_on.lower() not in SEVERITIES:
        raise UsageError(f"--fail-on must be one of {', '.join(SEVERITIES)}")
    if min_severity is not None and min_severity.lower() not in SEVERITIES:
        raise UsageError(f"--min-severity must be one of {', '.join(SEVERITIES)}, not {min_severity!r}")
    _check_format(fmt)
    _check_output(output_path)
    check_writable(html, "--html")
    check_writable(save_baseline, "--save-baseline")
    for folder in yara or []:
        if not folder.is_dir():
            raise UsageError(f"--yara {folder}: not a folder of YARA rules")
    if baseline_path is not None and not baseline_path.is_file():
        raise UsageError(f"--baseline {baseline_path}: no such file")
    if new_only and state_path is None:
        raise UsageError("--new-only needs --state FILE (or $EXHUNT_STATE): the findings of earlier runs")
    drives = parse_drive_options(drive or [])
    tuned = tuning.load(tuning_files or [], known_vendors)
    tracker = state.Tracker(state_path, new_only) if state_path is not None else None

    result = audit(path, AuditOptions(drives=drives, yara_dirs=list(yara or []), baseline=baseline_path,
                                      save_baseline=save_baseline, look_around=not no_look_around))
    found = sorted(result.findings, key=_order)
    rules = [checks.as_rule(str(f["rule_id"])) for f in found]
    outcome = tuning.apply(found, tuned, rules)
    floor = severity_rank(min_severity) if min_severity else 0
    keep = [i for i in outcome.kept_index if severity_rank(str(found[i]["severity"])) >= floor]
    below = len(outcome.kept_index) - len(keep)
    if tracker is not None:
        keep = tracker.select(found, keep)
    hidden = None
    if show_suppressed:
        hidden = [tuning.Shown(found[s.index], s.entry, f"[suppressed by {s.entry.id or s.entry.where}] "
                                                        f"{detail_of(found[s.index])}")
                  for s in outcome.suppressed if severity_rank(str(found[s.index]["severity"])) >= floor]
    shown = [found[i] for i in keep]
    if not quiet:
        _summary(result, len(shown), below, min_severity)
    _report_tuning(outcome, quiet)
    _write(shown, fmt, output_path, [detail_of(f) for f in shown], suppressed=hidden,
           incidents=None if flat else timedelta(hours=1))
    if html is not None:
        from exhunt.incidents import group
        from exhunt.output import html as report

        report.write(html, shown, [rules[i] for i in keep], None, group(shown, timedelta(hours=1)),
                     title=f"exhunt audit: {result.device}")
    if tracker is not None:
        seen = tracker.commit()
        if not quiet:
            err.print(f"State {safetext.markup(state_path)}: {seen.line()}.", soft_wrap=True)
    if save_baseline is not None and not quiet:
        err.print(f"Baseline of {result.agents} agent(s) written to {safetext.markup(save_baseline)}.",
                  soft_wrap=True)
    if fail_on and any(severity_rank(str(f["severity"])) >= severity_rank(fail_on) for f in shown):
        raise typer.Exit(EXIT_ALERTS)
