"""Agent lists read safely: agents.config / fetagents.config, an admin's saved
`Get-TransportAgent | Format-List` or `| ConvertTo-Json` output, and how a copy differs.

An agent list is writable by whoever owns the server, and an intruder edits it directly
(Exchange does not stop it). So a list is read as hostile input:

* never more than `MAX_LIST_BYTES`: a larger file is refused from its size alone, and the
  read itself stops there (a file that grows, a device, a FIFO are refused too);
* XML through defusedxml with DTDs, entities and external references forbidden: an XXE
  attempt or an entity bomb (billion laughs) is refused before anything expands, and the
  refusal is a finding ("hostile XML"), never a hang or a traceback;
* every agent keeps the line it was read at, so a finding points at it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import xml.sax
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.sax

from exhunt.audit import readbound
from exhunt.audit.model import Agent, q

#: The largest agent list read (Exchange's own are a few kilobytes).
MAX_LIST_BYTES = 8 << 20
#: Agents read from one list at most (the rest are reported, not judged).
MAX_AGENTS = 5_000

#: Kinds of list problems, as findings name them.
HOSTILE, MALFORMED, REFUSED, NOT_A_LIST = "hostile", "malformed", "refused", "not-a-list"


@dataclass
class ListProblem:
    """Why a list (or part of it) could not be read."""

    kind: str  # HOSTILE, MALFORMED, REFUSED, NOT_A_LIST
    message: str
    line: int | None = None


@dataclass
class AgentList:
    """One agent list as read: its agents in order, or the problem that stopped the read."""

    source: str  # the file as reports show it (collection-relative)
    windows: str  # its Windows path ("" when unknown)
    role: str  # "live", "template", "old", "backup", "saved" (a Get-TransportAgent output)
    of: str  # the live list it is or copies: "agents.config", "fetagents.config", "" (saved output)
    service: str  # "Hub", "FrontEnd", "Edge", "" unknown
    exchange_root: str
    form: str = "xml"  # "xml", "format-list", "json"
    agents: list[Agent] = field(default_factory=list)
    problem: ListProblem | None = None
    size: int = 0
    modified: str = ""  # the file's last write time (UTC, ISO-8601) as the collection kept it
    notes: list[str] = field(default_factory=list)


# -- reading bytes -----------------------------------------------------------------------------

def read_bounded(path: Path, limit: int = MAX_LIST_BYTES) -> tuple[bytes | None, ListProblem | None, int, str]:
    """(data, problem, size, modified): at most `limit` bytes of a regular file. A larger file
    is refused from its size without being opened; a device, FIFO or folder is refused unread
    (the bounded, non-blocking read itself is `readbound.read_bounded`, as for DLLs)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, ListProblem(REFUSED, f"cannot read: {exc.strerror or exc}"), 0, ""
    modified = datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not stat.S_ISREG(st.st_mode):
        return None, ListProblem(REFUSED, "not a regular file: not read"), 0, modified
    if st.st_size > limit:
        return None, ListProblem(REFUSED, f"{st.st_size} bytes, over the {limit}-byte limit for an agent list: "
                                          "not read (Exchange's own lists are a few kilobytes)"), st.st_size, modified
    got = readbound.read_bounded(path, limit)
    if got.data is None:
        return None, ListProblem(REFUSED, got.error or "cannot read: it is gone"), got.size, modified
    return got.data, None, len(got.data), modified


def decode(data: bytes) -> str:
    """Text of a saved PowerShell output: UTF-16 (Windows PowerShell's `>` writes it), UTF-8 with
    or without BOM, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    head = data[:200]
    if len(head) >= 4 and head.count(b"\x00") >= len(head) // 3:
        codec = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# -- agents.config (XML) -----------------------------------------------------------------------

def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    low = text.strip().lower()
    return True if low == "true" else False if low == "false" else None


class _ListHandler(xml.sax.ContentHandler):
    """Collects <agent> elements of <agentList>, each with its line."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[tuple[int, dict[str, str]]] = []
        self.root = ""
        self.lists = 0
        self.dropped = 0

    def startElement(self, name: str, attrs: Any) -> None:
        if not self.stack:
            self.root = name
        if name.lower() == "agentlist":
            self.lists += 1
        if name.lower() == "agent" and self.stack and self.stack[-1].lower() == "agentlist":
            if len(self.rows) >= MAX_AGENTS:
                self.dropped += 1
            else:
                locator = getattr(self, "_locator", None)
                line = locator.getLineNumber() if locator is not None else 0
                self.rows.append((line, {k.lower(): str(v) for k, v in attrs.items()}))
        self.stack.append(name)

    def endElement(self, name: str) -> None:
        if self.stack:
            self.stack.pop()


def parse_config(data: bytes, alist: AgentList) -> None:
    """Fill `alist` from agents.config bytes: its agents, or the problem (hostile, malformed)."""
    handler = _ListHandler()
    try:
        defusedxml.sax.parseString(data, handler, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        alist.problem = ListProblem(HOSTILE, "the list declares a DTD (document type): refused unread. Exchange "
                                             "never writes one; it is how XXE and entity-expansion attacks start")
        return
    except defusedxml.EntitiesForbidden:
        alist.problem = ListProblem(HOSTILE, "the list declares entities: refused unexpanded (an entity bomb "
                                             "or XXE attempt; Exchange never writes one)")
        return
    except defusedxml.ExternalReferenceForbidden:
        alist.problem = ListProblem(HOSTILE, "the list refers to an external resource: refused unfetched (XXE)")
        return
    except defusedxml.DefusedXmlException as exc:
        alist.problem = ListProblem(HOSTILE, f"refused: {type(exc).__name__}")
        return
    except xml.sax.SAXParseException as exc:
        alist.problem = ListProblem(MALFORMED, f"not well-formed XML: {exc.getMessage()} "
                                               f"(line {exc.getLineNumber()}, column {exc.getColumnNumber()})",
                                    exc.getLineNumber())
        return
    except (xml.sax.SAXException, ValueError) as exc:
        alist.problem = ListProblem(MALFORMED, f"not readable as XML: {exc}")
        return
    if handler.root.lower() != "configuration":
        alist.problem = ListProblem(NOT_A_LIST, f"the root element is <{handler.root}>, not <configuration>: "
                                                "not an agent list")
        return
    if not handler.lists:
        alist.notes.append("no <agentList> element: no agents registered")
    if handler.dropped:
        alist.notes.append(f"{handler.dropped} agent(s) past the first {MAX_AGENTS} not read")
    for order, (line, attrs) in enumerate(handler.rows):
        alist.agents.append(Agent(
            name=attrs.get("name", ""), factory=attrs.get("classfactory", ""), base_type=attrs.get("basetype", ""),
            assembly_path=attrs.get("assemblypath", ""), enabled=_bool(attrs.get("enabled")), order=order,
            service=alist.service, source=f"{alist.source}:{line}", exchange_root=alist.exchange_root))


# -- saved Get-TransportAgent output ----------------------------------------------------------

_KEY_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(\s*): ?(.*)$")
_TABLE_HEAD = re.compile(r"^\s*Identity\s+Enabled\s+Priority\s*$", re.IGNORECASE)
#: Property names of Get-TransportAgent's objects, as Format-List and ConvertTo-Json write them.
_FIELDS = {"identity": "name", "name": "name", "enabled": "enabled", "priority": "priority",
           "transportagentfactory": "factory", "assemblypath": "path", "transportservice": "service",
           "basetype": "base"}


def parse_format_list(text: str, alist: AgentList) -> None:
    """`Get-TransportAgent | Format-List` as saved: `Key : value` records separated by blank
    lines; a value PowerShell wrapped at the console's width continues, indented to the value
    column, on the next lines (joined back without a space, as it was cut)."""
    records: list[tuple[int, dict[str, str]]] = []
    current: dict[str, str] = {}
    start = 0
    last_key = ""
    column = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if _TABLE_HEAD.match(line):
            alist.problem = ListProblem(NOT_A_LIST, "this is Get-TransportAgent's table view, which has no "
                                                    "AssemblyPath or factory: save `Get-TransportAgent | "
                                                    "Format-List` or `| ConvertTo-Json` instead", number)
            return
        if not line.strip():
            if current:
                records.append((start, current))
            current, last_key = {}, ""
            continue
        m = _KEY_LINE.match(line)
        if m and not line[:1].isspace():
            key = m.group(1).lower()
            if not current:
                start = number
            current[key] = m.group(3).strip()
            last_key, column = key, len(m.group(1)) + len(m.group(2)) + 2
            continue
        if last_key and line[:1].isspace():
            piece = line[column:] if len(line) > column and not line[:column].strip() else line.strip()
            current[last_key] += piece.rstrip()
    if current:
        records.append((start, current))
    rows = [(line, {_FIELDS[k]: v for k, v in rec.items() if k in _FIELDS}) for line, rec in records]
    _saved_agents(alist, [(line, row) for line, row in rows if row.get("name") and
                          (row.get("path") or row.get("factory"))])
    if not alist.agents and alist.problem is None:
        alist.problem = ListProblem(NOT_A_LIST, "no `Identity : ...` records with an AssemblyPath or "
                                                "TransportAgentFactory: not a Get-TransportAgent | Format-List output")


def _json_text(value: Any) -> str:
    if isinstance(value, dict):  # an identity object serialised whole
        for key in ("Name", "name", "Identity", "DisplayName"):
            if isinstance(value.get(key), str):
                return str(value[key])
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


def parse_json(text: str, alist: AgentList) -> None:
    """`Get-TransportAgent | ConvertTo-Json` as saved: an array of objects (or one object when
    there was one agent); each object's line is where it starts."""
    body = text.lstrip("\ufeff")
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    try:
        start = len(body) - len(body.lstrip())
        if body[start:start + 1] == "[":
            at = start + 1
            while True:
                while at < len(body) and body[at] in " \t\r\n,":
                    at += 1
                if at >= len(body):
                    raise ValueError("the array is not closed")
                if body[at] == "]":
                    break
                value, end = decoder.raw_decode(body, at)
                items.append((body.count("\n", 0, at) + 1, value))
                at = end
                if len(items) > MAX_AGENTS:
                    break
        else:
            value, _ = decoder.raw_decode(body, start)
            items.append((body.count("\n", 0, start) + 1, value))
    except (ValueError, RecursionError) as exc:
        alist.problem = ListProblem(MALFORMED, f"not valid JSON: {exc}")
        return
    rows = []
    for line, item in items[:MAX_AGENTS]:
        if not isinstance(item, dict):
            continue
        row = {_FIELDS[k.lower()]: _json_text(v) for k, v in item.items() if k.lower() in _FIELDS}
        if row.get("name") and (row.get("path") or row.get("factory")):
            rows.append((line, row))
    _saved_agents(alist, rows)
    if not alist.agents:
        alist.problem = ListProblem(NOT_A_LIST, "no objects with Identity and AssemblyPath or TransportAgentFactory: "
                                                "not a Get-TransportAgent | ConvertTo-Json output")


_SERVICES = {"hub": "Hub", "frontend": "FrontEnd", "edge": "Edge", "mailboxsubmission": "MailboxSubmission",
             "mailboxdelivery": "MailboxDelivery"}


def _saved_agents(alist: AgentList, rows: list[tuple[int, dict[str, str]]]) -> None:
    """Agents of a saved output in Exchange's order: by Priority (1 first), else as listed."""

    def priority(item: tuple[int, tuple[int, dict[str, str]]]) -> tuple[int, int]:
        text = item[1][1].get("priority", "")
        return (int(text) if text.strip().lstrip("-").isdigit() else 1 << 30, item[0])

    ordered = [row for _, row in sorted(enumerate(rows), key=priority)]
    for order, (line, row) in enumerate(ordered):
        service = _SERVICES.get(row.get("service", "").strip().lower(), alist.service)
        alist.agents.append(Agent(
            name=row.get("name", ""), factory=row.get("factory", ""), base_type=row.get("base", ""),
            assembly_path=row.get("path", ""), enabled=_bool(row.get("enabled")), order=order, service=service,
            source=f"{alist.source}:{line}", exchange_root=alist.exchange_root))


# -- any list ---------------------------------------------------------------------------------

def sniff(data: bytes) -> str:
    """"xml", "json" or "format-list" from the first characters."""
    head = decode(data[:4096]).lstrip("\ufeff \t\r\n")
    if head.startswith("<"):
        return "xml"
    if head.startswith(("[", "{")):
        return "json"
    return "format-list"


def read_list(path: Path, alist: AgentList, limit: int = MAX_LIST_BYTES) -> AgentList:
    """Read the file at `path` into `alist` (whose names and role the caller set)."""
    data, problem, alist.size, alist.modified = read_bounded(path, limit)
    if problem is not None or data is None:
        alist.problem = problem
        return alist
    alist.form = sniff(data)
    if alist.form == "xml":
        parse_config(data, alist)
    elif alist.form == "json":
        parse_json(decode(data), alist)
    else:
        parse_format_list(decode(data), alist)
    return alist


# -- copies against the live list ----------------------------------------------------------------

@dataclass
class Difference:
    """One agent that a copy (template, .old, backup) and the live list disagree on."""

    kind: str  # "added" (live only), "removed" (copy only), "changed"
    name: str
    live: Agent | None
    copy: Agent | None
    changes: list[str] = field(default_factory=list)


def _key(agent: Agent) -> str:
    return agent.name.strip().casefold()


def diff(live: AgentList, copy: AgentList) -> list[Difference]:
    """How `live` differs from `copy`, agent by agent (matched by name, case-insensitively)."""
    theirs = {_key(a): a for a in copy.agents}
    ours = {_key(a): a for a in live.agents}
    out: list[Difference] = []
    common_live = [k for k in ours if k in theirs]
    common_copy = [k for k in theirs if k in ours]
    for key, agent in ours.items():
        other = theirs.get(key)
        if other is None:
            out.append(Difference("added", agent.name, agent, None))
            continue
        changes = []
        if agent.assembly_path.strip().casefold() != other.assembly_path.strip().casefold():
            changes.append(f"assemblyPath {q(other.assembly_path)} -> {q(agent.assembly_path)}")
        if agent.factory.strip() != other.factory.strip():
            changes.append(f"classFactory {q(other.factory)} -> {q(agent.factory)}")
        if agent.base_type.strip() != other.base_type.strip() and agent.base_type and other.base_type:
            changes.append(f"baseType {q(other.base_type)} -> {q(agent.base_type)}")
        if agent.enabled != other.enabled:
            changes.append(f"enabled {_shown_bool(other.enabled)} -> {_shown_bool(agent.enabled)}")
        if common_live != common_copy and common_live.index(key) != common_copy.index(key):
            changes.append(f"position among shared agents {common_copy.index(key) + 1} -> {common_live.index(key) + 1}")
        if changes:
            out.append(Difference("changed", agent.name, agent, other, changes))
    for key, agent in theirs.items():
        if key not in ours:
            out.append(Difference("removed", agent.name, None, agent))
    return out


def _shown_bool(value: bool | None) -> str:
    return "unset" if value is None else "true" if value else "false"
