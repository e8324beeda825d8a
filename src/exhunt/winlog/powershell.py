"""PowerShell logging -> DeviceEvents ActionType PowerShellCommand, one row per cmdlet.

Sources: script-block logging (Operational 4104, reassembled from its parts by
ScriptBlock Id), module logging (Operational 4103) and Windows PowerShell 800.
Defender writes `{"Command": "<cmdlet>"}` in AdditionalFields; the script text
and where it came from are added beside it so a rule can show the context.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from exhunt.winlog.common import basename, dumps, split_user, text, to_int
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]
Out = list[tuple[str, Row]]

#: PowerShell's approved verbs (Get-Verb): a Verb-Noun token with one of these is a command.
_VERB_LIST = """
Add Clear Close Copy Enter Exit Find Format Get Hide Join Lock Move New Open Optimize Pop Push Redo
Remove Rename Reset Resize Search Select Set Show Skip Split Step Switch Undo Unlock Watch Connect
Disconnect Read Receive Send Write Backup Checkpoint Compare Compress Convert ConvertFrom ConvertTo
Dismount Edit Expand Export Group Import Initialize Limit Merge Mount Out Publish Restore Save Sync
Unpublish Update Debug Measure Ping Repair Resolve Test Trace Approve Assert Build Complete Confirm
Deny Deploy Disable Enable Install Invoke Register Request Restart Resume Start Stop Submit Suspend
Uninstall Unregister Wait Block Grant Protect Revoke Unblock Unprotect Use ForEach Where Sort Tee
"""
VERBS = frozenset(v.lower() for v in _VERB_LIST.split())
_CMDLET = re.compile(r"(?<![\w$.\\/-])([A-Za-z]+)-([A-Za-z][A-Za-z0-9]*)(?![\w-])")
_INVOCATION = re.compile(r"CommandInvocation\(([^)]+)\)")
_CTX_EQ = re.compile(r"^[ \t]*([A-Za-z][\w ]*?)[ \t]*=[ \t]?(.*?)\r?$", re.M)
#: AdditionalFields keeps at most this much script text per row (the Event table has all of it).
MAX_SCRIPT = 32 * 1024


def cmdlets(script: str) -> list[str]:
    """Verb-Noun commands in order of first use, each once (case-insensitive)."""
    seen: dict[str, str] = {}
    for m in _CMDLET.finditer(script):
        if m.group(1).lower() in VERBS:
            seen.setdefault(m.group(0).lower(), m.group(0))
    return list(seen.values())


def _context(*texts: str) -> dict[str, str]:
    """'Host Application = x' (4103) and 'HostApplication=x' (800) lines, keyed without spaces."""
    out: dict[str, str] = {}
    for t in texts:
        for m in _CTX_EQ.finditer(t):
            out.setdefault(m.group(1).replace(" ", ""), m.group(2).strip())
    return out


def _host(row: Row, ctx: dict[str, str]) -> None:
    app = ctx.get("HostApplication", "")
    if app:
        exe = app[1:].split('"', 1)[0] if app.startswith('"') else (
            app[: app.lower().find(".exe") + 4] if ".exe" in app.lower() else app.split(" ", 1)[0])
        row["InitiatingProcessCommandLine"] = app
        row["InitiatingProcessFolderPath"] = exe
        row["InitiatingProcessFileName"] = basename(exe)
    user = ctx.get("User") or ctx.get("UserId") or ""
    if user:
        dom, name = split_user(user)
        row["InitiatingProcessAccountDomain"] = dom
        row["InitiatingProcessAccountName"] = name


def _rows(base: Row, names: list[str], script: str, source: dict[str, Any], ctx: dict[str, str]) -> Out:
    _host(base, ctx)
    return _rows_no_ctx(base, names, script, source)


class PowerShell:
    """Stateful per input file: holds script-block parts until their block is whole.

    Memory is bounded: at most `max_blocks` open blocks and `max_chars` of their
    text; beyond that the oldest block is emitted as it is, marked incomplete.
    """

    def __init__(self, max_blocks: int = 512, max_chars: int = 64 << 20) -> None:
        self.max_blocks = max_blocks
        self.max_chars = max_chars
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._chars = 0

    def map_event(self, ev: WinEvent, base: Row) -> Out:
        eid = ev.event_id
        if eid == 4104:
            return self._script_block(ev, base)
        if eid == 4103:
            return self._module(ev, base)
        if eid == 800:
            return self._pipeline(ev, base)
        return []

    # 4104 -------------------------------------------------------------------

    def _script_block(self, ev: WinEvent, base: Row) -> Out:
        total = to_int(ev.data.get("MessageTotal")) or 1
        number = to_int(ev.data.get("MessageNumber")) or 1
        block_id = ev.get("ScriptBlockId")
        part = ev.get("ScriptBlockText")
        if total <= 1 or not block_id:
            return self._emit_block(ev.channel, base, part, block_id, ev.get("Path"), None)
        entry = self._open.get(block_id)
        if entry is None:
            entry = {"parts": {}, "total": total, "base": base, "path": ev.get("Path"), "channel": ev.channel}
            self._open[block_id] = entry
        if number not in entry["parts"]:
            entry["parts"][number] = part
            self._chars += len(part)
        out: Out = []
        if len(entry["parts"]) >= entry["total"]:
            out += self._close(block_id)
        while self._open and (len(self._open) > self.max_blocks or self._chars > self.max_chars):
            out += self._close(next(iter(self._open)))
        return out

    def _close(self, block_id: str) -> Out:
        entry = self._open.pop(block_id)
        parts: dict[int, str] = entry["parts"]
        self._chars -= sum(len(p) for p in parts.values())
        script = "".join(parts[n] for n in sorted(parts))
        partial = None if len(parts) >= entry["total"] else (len(parts), entry["total"])
        return self._emit_block(entry["channel"], entry["base"], script, block_id, entry["path"], partial)

    def _emit_block(self, channel: str, base: Row, script: str, block_id: str, path: str,
                    partial: tuple[int, int] | None) -> Out:
        source: dict[str, Any] = {"Channel": channel, "EventId": 4104, "ScriptBlockId": block_id, "Path": path}
        if partial:
            source["Incomplete"] = True
            source["PartsSeen"], source["PartsTotal"] = partial
        return _rows_no_ctx(base, cmdlets(script), script, source)

    def finish(self) -> Out:
        """End of input: blocks still missing parts are emitted with what arrived."""
        out: Out = []
        while self._open:
            out += self._close(next(iter(self._open)))
        return out

    # 4103 / 800 -------------------------------------------------------------

    def _module(self, ev: WinEvent, base: Row) -> Out:
        payload = ev.get("Payload") or ev.message
        ctx = _context(ev.get("ContextInfo") or ev.message)
        names = list(dict.fromkeys(n.strip() for n in _INVOCATION.findall(payload)))
        if not names and ctx.get("CommandName"):
            names = [ctx["CommandName"]]
        source = {"Channel": ev.channel, "EventId": 4103, "ScriptBlockId": "", "Path": ctx.get("ScriptName", "")}
        return _rows(base, names, payload, source, ctx)

    def _pipeline(self, ev: WinEvent, base: Row) -> Out:
        if ev.data_list:
            parts = ev.data_list
        elif ev.data:
            parts = [text(v) for v in ev.data.values()]
        else:
            parts = [ev.message]
        whole = "\n".join(text(p) for p in parts)
        ctx = _context(whole)
        script = ctx.get("CommandLine", "") or text(parts[0])
        names = list(dict.fromkeys(n.strip() for n in _INVOCATION.findall(whole)))
        if not names:
            names = cmdlets(script)
        source = {"Channel": ev.channel, "EventId": 800, "ScriptBlockId": "", "Path": ctx.get("ScriptName", "")}
        return _rows(base, names, script, source, ctx)


def _rows_no_ctx(base: Row, names: list[str], script: str, source: dict[str, Any]) -> Out:
    base["ActionType"] = "PowerShellCommand"
    extra: dict[str, Any] = {"ScriptBlockText": script[:MAX_SCRIPT]}
    if len(script) > MAX_SCRIPT:
        extra["ScriptTruncated"] = True
    extra.update(source)
    out: Out = []
    for name in names:
        row = dict(base)
        row["AdditionalFields"] = dumps({"Command": name, **extra})
        out.append(("DeviceEvents", row))
    return out


CHANNELS = ("microsoft-windows-powershell/operational", "powershellcore/operational", "windows powershell")
#: The events `PowerShell.map_event` reads.
EVENT_IDS = frozenset((4104, 4103, 800))
