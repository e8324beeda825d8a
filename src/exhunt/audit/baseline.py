"""A known-good server's agents, kept in a file (`--save-baseline`) and compared with a later
audit (`--baseline`): any agent added, removed, re-pointed, re-ordered, re-enabled or whose DLL
changed is a finding.

The file is JSON: per agent list (keyed by its Windows path, so a KAPE and a Velociraptor
collection of the same server compare), its agents in Exchange's order with factory, assembly
path, enabled and the DLL's SHA-256 ("" when the DLL was not in the collection). A baseline
file is read bounded and checked field by field: a damaged one is a clear error, not a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exhunt.audit.agentlists import AgentList
from exhunt.audit.judge import Context, agent_fields, finding, source_of
from exhunt.audit.model import Agent, q
from exhunt.errors import UsageError

FORMAT = "exhunt-audit-baseline"
VERSION = 1
#: The largest baseline file read.
MAX_BASELINE_BYTES = 16 << 20


def list_key(alist: AgentList) -> str:
    """What identifies a list across collections: its Windows path, else its service."""
    return (alist.windows or f"{alist.of or 'saved'}:{alist.service or 'unknown'}").casefold()


def snapshot(lists: list[AgentList], hashes: dict[str, str], device: str) -> dict[str, Any]:
    """The baseline document of the live lists (`hashes`: agent source -> SHA-256)."""
    return {
        "format": FORMAT, "version": VERSION, "device": device,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lists": [{
            "key": list_key(alist), "list": alist.windows or alist.source, "service": alist.service,
            "exchange_root": alist.exchange_root,
            "agents": [{"name": a.name, "factory": a.factory, "assembly_path": a.assembly_path, "enabled": a.enabled,
                        "order": a.order, "sha256": hashes.get(a.source, "")} for a in alist.agents],
        } for alist in lists if alist.problem is None],
    }


def save(path: Path, doc: dict[str, Any]) -> None:
    from exhunt.output.target import opened

    with opened(path, "--save-baseline") as out:
        out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


@dataclass
class BaseAgent:
    name: str
    factory: str
    assembly_path: str
    enabled: bool | None
    order: int
    sha256: str


@dataclass
class BaseList:
    key: str
    shown: str
    service: str
    exchange_root: str
    agents: list[BaseAgent]


def load(path: Path) -> tuple[list[BaseList], dict[str, Any]]:
    """The baseline's lists; any problem is a UsageError naming the file and the entry."""
    name = f"--baseline {path}"
    try:
        size = path.stat().st_size
        if size > MAX_BASELINE_BYTES:
            raise UsageError(f"{name}: {size} bytes, over the {MAX_BASELINE_BYTES}-byte limit for a baseline")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BASELINE_BYTES + 1)
        doc = json.loads(data.decode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{name}: not a baseline (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{name}: not an exhunt audit baseline (written by `exhunt audit --save-baseline`)")
    if doc.get("version") != VERSION:
        raise UsageError(f"{name}: baseline version {doc.get('version')!r}; this exhunt reads version {VERSION}")
    lists = doc.get("lists")
    if not isinstance(lists, list):
        raise UsageError(f"{name}: `lists` must be a list")
    out = []
    for i, entry in enumerate(lists):
        where = f"{name}: lists[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("agents"), list):
            raise UsageError(f"{where}: an object with `agents` is expected")
        agents = []
        for j, a in enumerate(entry["agents"]):
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                raise UsageError(f"{where}.agents[{j}]: an object with a `name` is expected")
            enabled = a.get("enabled")
            order = a.get("order", j)
            if (enabled is not None and not isinstance(enabled, bool)) or not isinstance(order, int):
                raise UsageError(f"{where}.agents[{j}]: `enabled` must be true/false/null and `order` a number")
            agents.append(BaseAgent(a["name"], str(a.get("factory") or ""), str(a.get("assembly_path") or ""),
                                    enabled, order, str(a.get("sha256") or "")))
        out.append(BaseList(str(entry.get("key") or entry.get("list") or "").casefold(), str(entry.get("list") or ""),
                            str(entry.get("service") or ""), str(entry.get("exchange_root") or ""), agents))
    return out, doc


def _fold(text: str) -> str:
    return text.strip().casefold()


def compare(ctx: Context, base: list[BaseList], lists: list[AgentList], hashes: dict[str, str],
            baseline_name: str) -> list[dict[str, Any]]:
    """Findings for every difference between the baseline and the live lists read now."""
    out: list[dict[str, Any]] = []
    now = [alist for alist in lists if alist.problem is None]
    by_key = {b.key: b for b in base}
    pairs: list[tuple[AgentList | None, BaseList | None]] = []
    if len(now) == 1 and len(base) == 1 and list_key(now[0]) not in by_key:
        pairs.append((now[0], base[0]))  # one list each (e.g. a saved Get-TransportAgent output): compare them
    else:
        keys = {list_key(a) for a in now}
        pairs += [(alist, by_key.get(list_key(alist))) for alist in now]
        pairs += [(None, b) for b in base if b.key not in keys]
    for alist, blist in pairs:
        out += _compare_list(ctx, alist, blist, hashes, baseline_name)
    return out


def _base_agent(blist: BaseList, b: BaseAgent) -> Agent:
    return Agent(b.name, b.factory, "", b.assembly_path, b.enabled, b.order, blist.service, "", blist.exchange_root)


def _compare_list(ctx: Context, alist: AgentList | None, blist: BaseList | None, hashes: dict[str, str],
                  baseline_name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    known = f"in the baseline {baseline_name}"
    agents = alist.agents if alist is not None else []
    base_agents = blist.agents if blist is not None else []
    theirs = {_fold(b.name): b for b in base_agents}
    ours = {_fold(a.name): a for a in agents}
    shared_now = [k for k in ours if k in theirs]
    shared_then = sorted((k for k in theirs if k in ours), key=lambda k: theirs[k].order)

    def emit(check_id: str, agent: Agent, why: list[str], source: tuple[str, str]) -> None:
        fields = agent_fields(agent)
        fields["SHA256"] = hashes.get(agent.source, "") if agent.source else ""
        identity = [agent.service, _fold(agent.name), agent.factory, _fold(agent.assembly_path), check_id,
                    "baseline"]
        out.append(finding(ctx, check_id, why, fields, source, identity))

    for key, agent in ours.items():
        where = f"registered at {agent.source}"
        b = theirs.get(key)
        if b is None:
            why = [f"{q(agent.name)} is not {known}" + ("" if blist is not None else
                                                        f" (the baseline has no list {alist.windows or alist.source})"
                                                        if alist is not None else ""), where,
                   f"factory {q(agent.factory)}, assemblyPath {q(agent.assembly_path)}"]
            emit("audit-baseline-added", agent, why, source_of(agent))
            continue
        repointed = _fold(agent.assembly_path) != _fold(b.assembly_path) or agent.factory.strip() != b.factory.strip()
        if repointed:
            why = [f"{q(agent.name)} changed since the baseline", where]
            if _fold(agent.assembly_path) != _fold(b.assembly_path):
                why.append(f"assemblyPath {q(b.assembly_path)} -> {q(agent.assembly_path)}")
            if agent.factory.strip() != b.factory.strip():
                why.append(f"factory {q(b.factory)} -> {q(agent.factory)}")
            emit("audit-baseline-repointed", agent, why, source_of(agent))
        if agent.enabled is True and b.enabled is not True:
            emit("audit-baseline-reenabled", agent, [f"{q(agent.name)} was disabled {known}, enabled now", where],
                 source_of(agent))
        elif agent.enabled is False and b.enabled is True:
            emit("audit-baseline-disabled", agent, [f"{q(agent.name)} was enabled {known}, disabled now", where],
                 source_of(agent))
        if shared_now != shared_then and shared_now.index(key) != shared_then.index(key):
            emit("audit-baseline-reordered", agent,
                 [f"{q(agent.name)} was number {shared_then.index(key) + 1} among the agents both have, "
                  f"now number {shared_now.index(key) + 1}",
                  "baseline order: " + ", ".join(theirs[k].name for k in shared_then),
                  "order now: " + ", ".join(ours[k].name for k in shared_now), where], source_of(agent))
        sha = hashes.get(agent.source, "")
        if sha and b.sha256 and sha.lower() != b.sha256.lower() and not repointed:
            emit("audit-baseline-dll-changed", agent,
                 [f"{q(agent.name)}'s DLL changed: SHA-256 {b.sha256} {known}, {sha} now", where], source_of(agent))
    for key, b in theirs.items():
        if key in ours:
            continue
        gone = _base_agent(blist, b) if blist is not None else None
        if gone is None:
            continue
        shown = alist.source if alist is not None else (blist.shown if blist is not None else "")
        why = [f"{q(b.name)} is {known} but no longer registered"
               + ("" if alist is not None else f" (the list {blist.shown if blist else ''} is gone)"),
               f"factory {q(b.factory)}, assemblyPath {q(b.assembly_path)}"]
        emit("audit-baseline-removed", gone, why, (shown, ""))
    return out
