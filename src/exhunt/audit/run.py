"""`exhunt audit PATH` as a library call: collection -> installs -> lists -> agents -> findings.

`audit(path, options)` returns the findings (alert dicts) and what the run summary reports:
lists found, agents read, DLLs judged, files skipped and why. No output is written here.
"""

from __future__ import annotations

import ntpath
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt import tuning
from exhunt.audit import agentlists, around, baseline
from exhunt.audit.agentlists import AgentList
from exhunt.audit.collection import Collection, Install, find_installs, fold, open_collection
from exhunt.audit.judge import Context, FactsOf, SignatureOf, finding, judge_agent, settle_verdicts, source_of
from exhunt.audit.model import q
from exhunt.audit.server import server_name
from exhunt.errors import UsageError

#: Built-in agents only an Edge Transport server registers (a Mailbox server's list has none).
EDGE_ONLY = frozenset({"connection filtering agent", "address rewriting inbound agent", "edge rule agent",
                       "address rewriting outbound agent", "attachment filtering agent"})


@dataclass
class AuditOptions:
    drives: dict[str, Path] = field(default_factory=dict)
    yara_dirs: list[Path] = field(default_factory=list)
    baseline: Path | None = None
    save_baseline: Path | None = None
    #: Whether PATH is this computer's own drives (None: guess, only ever on Windows).
    live: bool | None = None
    look_around: bool = True
    #: Fact readers (default: exhunt.audit.assembly); tests hand in their own.
    facts_of: FactsOf | None = None
    signature_of: SignatureOf | None = None


@dataclass
class AuditResult:
    findings: list[dict[str, Any]]
    device: str
    device_from: str
    collection: Collection
    installs: list[Install]
    lists: list[AgentList]
    agents: int = 0
    judged: int = 0
    around: around.AroundCounts = field(default_factory=around.AroundCounts)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _readers(options: AuditOptions) -> tuple[FactsOf, SignatureOf]:
    """The fact readers: exhunt.audit.assembly, each file's signature and hashes read once
    (six built-in agents share the Hygiene DLL; only their factories differ)."""
    if options.facts_of is not None and options.signature_of is not None:
        return options.facts_of, options.signature_of
    import copy

    from exhunt.audit import assembly
    from exhunt.audit.clrmeta import read_clr
    from exhunt.audit.readbound import read_bounded

    rules = assembly.compile_yara(options.yara_dirs)
    seen: dict[str, Any] = {}

    def facts_of(path: Path, factory: str | None) -> Any:
        first = seen.get(str(path))
        if first is None:
            first = seen[str(path)] = assembly.assembly_facts(path, factory, rules)
            return first
        facts = copy.copy(first)  # the same bytes: only the factory's facts differ
        read = read_bounded(path)
        if read.data is None or not facts.is_dotnet:
            return facts
        clr = read_clr(read.data, factory)
        facts.factory_found, facts.factory_bases = clr.factory_found, clr.factory_bases
        facts.derives_from_agent_factory = clr.derives_from_agent_factory
        return facts

    return options.facts_of or facts_of, options.signature_of or assembly.pe_signature


def _root_of_list(windows: str) -> str:
    """The install a list belongs to from its own path (`<root>\\TransportRoles\\Shared\\agents.config`)."""
    parts = windows.split("\\")
    if len(parts) >= 4 and fold(parts[-3]) == "transportroles" and fold(parts[-2]) in ("shared", "agents"):
        return "\\".join(parts[:-3])
    return ""


def _root_from_agents(alist: AgentList) -> str:
    """The install root most of a saved output's agents load from (`...\\TransportRoles\\agents\\...`)."""
    roots: Counter[str] = Counter()
    for agent in alist.agents:
        path = agent.assembly_path.replace("/", "\\")
        at = fold(path).find("\\transportroles\\agents\\")
        if at > 0 and ntpath.isabs(path):
            roots[path[:at]] += 1
    return roots.most_common(1)[0][0] if roots else ""


def _service(of: str, inst: Install | None, alist: AgentList) -> str:
    if of == "fetagents.config":
        return "FrontEnd"
    if inst is not None and inst.edge:
        return "Edge"
    if any(fold(a.name) in EDGE_ONLY for a in alist.agents) and not any(
            fold(a.name) == "transport rule agent" for a in alist.agents):
        return "Edge"
    return "Hub"


def _read(coll: Collection, path: Path, role: str, of: str, root: str, inst: Install | None) -> AgentList:
    alist = AgentList(coll.shown(path), coll.windows_of(path), role, of, "", root)
    why = coll.regular_file(path) if coll.layout != "file" else ""
    if why:
        alist.problem = agentlists.ListProblem(agentlists.REFUSED, why)
        coll.skip(alist.source, why)
        return alist
    agentlists.read_list(path, alist)
    if alist.form != "xml" and not alist.exchange_root:
        alist.exchange_root = _root_from_agents(alist)
    service = _service(of, inst, alist) if alist.form == "xml" else ""
    alist.service = service
    for agent in alist.agents:
        agent.exchange_root = alist.exchange_root
        if service:
            agent.service = service
    return alist


def list_findings(ctx: Context, alist: AgentList) -> list[dict[str, Any]]:
    """Findings about a list itself: refused, hostile, malformed, duplicate names."""
    out = []
    fields = {"AgentName": "", "TransportService": alist.service, "AssemblyPath": "", "FactoryType": "",
              "ListRole": alist.role, "ExchangeRoot": alist.exchange_root}
    where = f"{alist.source} ({alist.role} list{', ' + alist.windows if alist.windows else ''}, {alist.size} bytes)"
    if alist.problem is not None:
        check_id = {agentlists.HOSTILE: "audit-list-hostile", agentlists.REFUSED: "audit-list-refused"}.get(
            alist.problem.kind, "audit-list-malformed")
        record = f"line {alist.problem.line}" if alist.problem.line else ""
        out.append(finding(ctx, check_id, [alist.problem.message, where], dict(fields), (alist.source, record),
                           [fold(alist.windows or alist.source), alist.problem.kind]))
    seen: dict[str, str] = {}
    for agent in alist.agents:
        key = fold(agent.name)
        if key in seen:
            f = dict(fields, AgentName=agent.name, AssemblyPath=agent.assembly_path, FactoryType=agent.factory)
            out.append(finding(ctx, "audit-duplicate-agent",
                               [f"{q(agent.name)} at {agent.source} is also registered at {seen[key]}", where],
                               f, source_of(agent), [fold(alist.windows or alist.source), key]))
        else:
            seen[key] = agent.source
    return out


def diff_findings(ctx: Context, live: AgentList, copy: AgentList) -> list[dict[str, Any]]:
    out = []
    for d in agentlists.diff(live, copy):
        agent = d.live or d.copy
        assert agent is not None
        if d.kind == "added":
            why = f"{q(d.name)} is in the live list but not in {copy.role} copy {copy.source}"
        elif d.kind == "removed":
            why = f"{q(d.name)} is in {copy.role} copy {d.copy.source if d.copy else copy.source} " \
                  "but not in the live list"
        else:
            why = f"{q(d.name)} differs from {copy.role} copy {copy.source}: " + "; ".join(d.changes)
        fields = {"AgentName": agent.name, "TransportService": live.service, "AssemblyPath": agent.assembly_path,
                  "FactoryType": agent.factory, "ListRole": copy.role, "ExchangeRoot": live.exchange_root,
                  "Difference": d.kind}
        source = source_of(d.live) if d.live is not None else (live.source, "")
        evidence = [why, f"live list {live.source}" + (f", modified {live.modified}" if live.modified else ""),
                    f"{copy.role} copy {copy.source}" + (f", modified {copy.modified}" if copy.modified else "")]
        out.append(finding(ctx, "audit-list-differs", evidence, fields, source,
                           [fold(live.windows or live.source), fold(copy.windows or copy.source), fold(d.name),
                            d.kind, d.changes]))
    return out


def audit(path: Path, options: AuditOptions | None = None) -> AuditResult:
    """Audit every agent list under `path` (or the one list `path` is)."""
    options = options or AuditOptions()
    started = time.perf_counter()
    coll = open_collection(path, options.drives, options.live)
    base = baseline.load(options.baseline) if options.baseline is not None else None
    facts_of, signature_of = _readers(options)
    installs: list[Install] = []
    pairs: list[tuple[AgentList, Install | None]] = []
    inst: Install | None
    if coll.layout == "file":
        role, of = _role_of(path.name)
        windows = coll.windows_of(Path(path).absolute()) if coll.drives else ""
        root = _root_of_list(windows) if windows else ""
        _refuse_non_list(path)
        alist = _read(coll, Path(path), "live", of, root, None)
        if alist.problem is not None and alist.problem.kind == agentlists.NOT_A_LIST:
            raise UsageError(f"{path}: {alist.problem.message}")
        alist.notes += [f"given as a {role} copy; judged as the list"] if role not in ("live", "saved") else []
        pairs.append((alist, None))
    else:
        installs = find_installs(coll)
        if not installs:
            drives = ", ".join(f"{k}:" for k in sorted(coll.drives)) or "none"
            raise UsageError(f"{path}: no Exchange install found (drives in the collection: {drives}; looked for "
                             "TransportRoles and Bin\\ExSetup.exe under the default roots and up to "
                             f"{5} folders deep). Give the folder holding the drive folders, or map them with --drive")
        for inst in installs:
            for lf in inst.lists:
                pairs.append((_read(coll, lf.local, lf.role, lf.of, inst.root, inst), inst))
        if not any(alist.role == "live" for alist, _ in pairs):
            roots = "; ".join(i.root for i in installs)
            raise UsageError(f"{path}: Exchange install(s) found ({roots}) but no agents.config or fetagents.config "
                             "in TransportRoles\\Shared: the collection did not copy them")
    device, device_from = server_name(coll, installs)
    ctx = Context(coll, facts_of, signature_of, device, _vendors())
    result = AuditResult([], device, device_from, coll, installs, [alist for alist, _ in pairs])
    live = [alist for alist, _ in pairs if alist.role == "live"]
    for alist in live:
        result.findings += list_findings(ctx, alist)
        for agent in alist.agents:
            result.agents += 1
            result.findings += judge_agent(ctx, agent)
    for alist, inst in pairs:
        if alist.role == "live":
            continue
        result.findings += list_findings(ctx, alist)
        owner = next((x for x, i in pairs if x.role == "live" and i is inst and x.of == alist.of), None)
        if owner is not None and owner.problem is None and alist.problem is None:
            result.findings += diff_findings(ctx, owner, alist)
    if options.look_around and installs:
        found, result.around = around.look_around(ctx, installs)
        result.findings += found
    if base is not None and options.baseline is not None:
        result.findings += baseline.compare(ctx, base[0], live, ctx.hashes, str(options.baseline))
    _settle(result.findings)
    if options.save_baseline is not None:
        baseline.save(options.save_baseline, baseline.snapshot(live, ctx.hashes, device))
    result.judged = ctx.judged
    result.seconds = time.perf_counter() - started
    return result


def _settle(findings: list[dict[str, Any]]) -> None:
    """One verdict per agent across every finding about it (list diffs and baseline included)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in findings:
        if f.get("AgentName") and f.get("source_record"):
            groups.setdefault((str(f["source_file"]), str(f["source_record"])), []).append(f)
    for members in groups.values():
        settle_verdicts(members)


def _refuse_non_list(path: Path) -> None:
    """An archive given as PATH: say what to do instead of reading it as a list."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head.startswith((b"PK\x03\x04", b"7z\xbc\xaf", b"\x1f\x8b")):
        raise UsageError(f"{path}: an archive; extract the collection and give its folder "
                         "(exhunt audit reads folders, a drive, or one agent list)")


def _role_of(name: str) -> tuple[str, str]:
    from exhunt.audit.collection import _copy_role

    role = _copy_role(name)
    return role if role is not None else ("saved", "")


def _vendors() -> tuning.Tuning:
    return tuning.known_vendors()
