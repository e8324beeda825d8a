"""Windows event logs as `evtx_dump -o jsonl` renders them: one `<host>.evtx.jsonl` file.

A process start is Sysmon 1 and Security 4688 (and, when the step gives its signature, the Sysmon 7
of the process loading its own image: Sysmon records an executable's signer there, not in event 1);
a file write Sysmon 11 (created or modified; over SMB by the System process, pid 4: Sysmon does not
see the remote side), and Security 4663 when the step is `audited` (a SACL on the file); a module
load Sysmon 7 with its signature; script content PowerShell 4104; a cmdlet run through Exchange's
management shell MSExchange Management 1 (or 6 when it failed); service and application events as themselves.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Event, Proc, Simulation, fake_hash
from exhunt.simulate.formats import Writer

SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
SECURITY = ("Security", "Microsoft-Windows-Security-Auditing")
PS_OP = ("Microsoft-Windows-PowerShell/Operational", "Microsoft-Windows-PowerShell")
CMDLET_LOG = ("MSExchange Management", "MSExchange CmdletLogs")
#: What the MSExchange Management record holds after the caller and host process (as make_demo writes it).
_CMDLET_TAIL = [
    "",
    "1",
    "00:00:01.2031250",
    "View Entire Forest: 'False'",
    "",
    "",
    "",
    "",
    "False",
    "",
    "",
    "",
    "",
    "0",
    "ActivityId: 00000000-0000-0000-0000-000000000000",
    "",
    "",
    "en-US",
]


def system_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_time(t: datetime) -> str:
    """Sysmon's UtcTime: milliseconds, a space before the time."""
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class _Log:
    def __init__(self, host: str) -> None:
        self.host = host
        self.records: dict[str, int] = {}
        self.docs: list[dict[str, Any]] = []
        #: each record's rendered message ("" when the step gives none): evtx_dump has no place for
        #: it, the collectors that render messages (Winlogbeat, NXLog) do
        self.messages: list[str] = []

    def add(
        self,
        source: tuple[str, str],
        event_id: int,
        t: datetime,
        data: dict[str, Any] | list[str],
        *,
        level: int = 4,
        task: int = 0,
        sid: str = "S-1-5-18",
        pid: int = 0,
        version: int = 0,
        message: str = "",
    ) -> None:
        record = self.records.get(source[0], 1000 * (1 + len(self.records))) + 1
        self.records[source[0]] = record
        self.messages.append(message)
        self.docs.append(
            document(source, event_id, record, system_time(t), data, self.host, level=level, task=task, sid=sid,
                     version=version, execution=(pid, 4000 + pid % 997))
        )


def document(
    source: tuple[str, str],
    event_id: int,
    record: int,
    time: str,
    data: dict[str, Any] | list[str],
    computer: str,
    *,
    level: int = 4,
    task: int = 0,
    sid: str = "S-1-5-18",
    version: int = 0,
    execution: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One record as evtx_dump renders it: `source` is (channel, provider), `time` the SystemTime text,
    `data` named EventData or a list of unnamed values, `execution` (process id, thread id) or None
    for a record without that element."""
    system: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": source[1]}},
        "EventID": event_id,
        "Version": version,
        "Level": level,
        "Task": task,
        "Opcode": 0,
        "Keywords": "0x8000000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": time}},
        "EventRecordID": record,
        "Correlation": None,
    }
    if execution is not None:
        system["Execution"] = {"#attributes": {"ProcessID": execution[0], "ThreadID": execution[1]}}
    system.update({"Channel": source[0], "Computer": computer, "Security": {"#attributes": {"UserID": sid}}})
    # copies: a caller that edits the document must not edit the record it came from
    event_data: Any = {"Data": {"#text": list(data)}} if isinstance(data, list) else dict(data)
    return {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": system,
            "EventData": event_data,
        }
    }


def _hashes(sha1: str) -> str:
    return f"SHA1={sha1.upper()},MD5={fake_hash(sha1, 32).upper()},SHA256={fake_hash(sha1, 64).upper()}"


def _process(log: _Log, ev: Event, p: Proc) -> None:
    parent = p.parent
    log.add(
        SYSMON,
        1,
        ev.time,
        {
            "RuleName": "-",
            "UtcTime": utc_time(ev.time),
            "ProcessGuid": p.guid,
            "ProcessId": p.pid,
            "Image": p.image,
            "FileVersion": "-",
            "Description": "-",
            "Product": "-",
            "Company": "-",
            "OriginalFileName": p.original_file_name or p.file_name,
            "CommandLine": p.command_line,
            "CurrentDirectory": "C:\\Windows\\system32\\",
            "User": p.account.qualified,
            "LogonGuid": "{" + fake_hash(p.account.sid, 8) + "-0000-0000-0000-000000000000}",
            "LogonId": hex(p.account.logon_id),
            "TerminalSessionId": 0,
            "IntegrityLevel": p.integrity,
            "Hashes": _hashes(p.sha1),
            "ParentProcessGuid": parent.guid if parent else "-",
            "ParentProcessId": parent.pid if parent else 0,
            "ParentImage": parent.image if parent else "-",
            "ParentCommandLine": parent.command_line if parent else "-",
            "ParentUser": parent.account.qualified if parent else "-",
        },
        task=1,
        version=5,
    )
    creator = parent.account if parent else p.account
    same = parent is None or parent.account == p.account
    log.add(
        SECURITY,
        4688,
        ev.time,
        {
            "SubjectUserSid": creator.sid,
            "SubjectUserName": creator.name,
            "SubjectDomainName": creator.domain,
            "SubjectLogonId": hex(creator.logon_id),
            "NewProcessId": hex(p.pid),
            "NewProcessName": p.image,
            "TokenElevationType": "%%1937",
            "ProcessId": hex(parent.pid if parent else 0),
            "CommandLine": p.command_line,
            "TargetUserSid": "S-1-0-0" if same else p.account.sid,
            "TargetUserName": "-" if same else p.account.name,
            "TargetDomainName": "-" if same else p.account.domain,
            "TargetLogonId": "0x0" if same else hex(p.account.logon_id),
            "ParentProcessName": parent.image if parent else "",
            "MandatoryLabel": "S-1-16-12288",
        },
        level=0,
        task=13312,
        version=2,
    )


def _image_load(log: _Log, ev: Event, p: Proc, path: str, sha1: str, signed: bool, signer: str) -> None:
    log.add(
        SYSMON,
        7,
        ev.time,
        {
            "RuleName": "-",
            "UtcTime": utc_time(ev.time),
            "ProcessGuid": p.guid,
            "ProcessId": p.pid,
            "Image": p.image,
            "ImageLoaded": path,
            "FileVersion": "-",
            "Description": "-",
            "Product": "-",
            "Company": "-",
            "OriginalFileName": "-",
            "Hashes": _hashes(sha1),
            "Signed": "true" if signed else "false",
            "Signature": signer or "-",
            "SignatureStatus": "Valid" if signed else "Unavailable",
            "User": p.account.qualified,
        },
        task=7,
        version=3,
    )


#: What a write asks for, as 4663 writes it: (AccessList, AccessMask). A rename or delete asks for DELETE
#: on the file it removes (a rename's old name).
_ACCESS = {"created": ("%%4417", 0x2), "modified": ("%%4417", 0x2), "renamed": ("%%1537", 0x10000),
           "deleted": ("%%1537", 0x10000)}


def _object_access(log: _Log, ev: Event, p: Proc) -> None:
    """Security 4663 for a write to a file with an audit SACL (`audited: true`): the account, the
    process (its id in hex, its full path: no signer, no command line) and the access asked for."""
    d = ev.data
    access, mask = _ACCESS[d["action"]]
    log.add(
        SECURITY,
        4663,
        ev.time,
        {
            "SubjectUserSid": p.account.sid,
            "SubjectUserName": p.account.name,
            "SubjectDomainName": p.account.domain,
            "SubjectLogonId": hex(p.account.logon_id),
            "ObjectServer": "Security",
            "ObjectType": "File",
            "ObjectName": d["previous"] if d["action"] == "renamed" and "previous" in d else d["path"],
            "HandleId": hex(d["audit_handle"]),
            "AccessList": access,
            "AccessMask": hex(mask),
            "ProcessId": hex(p.pid),
            "ProcessName": p.image,
            "ResourceAttributes": "S:AI",
        },
        level=0,
        task=12800,
        version=1,
    )


def documents(sim: Simulation) -> list[dict[str, Any]]:
    """The Windows records of the simulation, as the `evtx` parser renders them (the other Windows
    writers render these same records in their own forms)."""
    return [doc for doc, _ in logged(sim)]


def logged(sim: Simulation) -> list[tuple[dict[str, Any], str]]:
    """Each Windows record of the simulation with its rendered message ("" if none), in the
    simulation's selection (records are numbered before it is applied, as in a filtered log)."""
    log = _Log(sim.host)
    for ev in sim.events:
        p, d = ev.proc, ev.data
        if not ev.seen("windows"):
            continue
        if ev.kind == "process" and p is not None:
            _process(log, ev, p)
            if p.signed is not None:
                _image_load(log, ev, p, p.image, p.sha1, p.signed, p.signer)
        elif ev.kind == "file" and p is not None and d["action"] in ("created", "modified"):
            log.add(
                SYSMON,
                11,
                ev.time,
                {
                    "RuleName": "-",
                    "UtcTime": utc_time(ev.time),
                    "ProcessGuid": p.guid,
                    "ProcessId": p.pid,
                    "Image": p.image,
                    "TargetFilename": d["path"],
                    "CreationUtcTime": utc_time(ev.time),
                    "User": p.account.qualified,
                },
                task=11,
                version=2,
            )
        if ev.kind == "file" and p is not None and "audit_handle" in d:
            _object_access(log, ev, p)
        elif ev.kind == "image_load" and p is not None:
            _image_load(log, ev, p, d["path"], d["sha1"], d["signed"], d["signer"])
        elif ev.kind == "script_block" and p is not None:
            parts = d.get("parts") or [d["text"]]
            for number, part in enumerate(parts, 1):
                log.add(
                    PS_OP,
                    4104,
                    ev.time + timedelta(milliseconds=number - 1),
                    {
                        "MessageNumber": number,
                        "MessageTotal": len(parts),
                        "ScriptBlockText": part,
                        "ScriptBlockId": d["block_id"],
                        "Path": d["path"],
                    },
                    level=d.get("level", 5),
                    task=2,
                    sid=p.account.sid,
                    pid=p.pid,
                    version=1,
                )
        elif ev.kind == "cmdlet_log" and p is not None:
            caller = d["caller"]
            who = f"{sim.host.split('.', 1)[-1]}/Users/{caller.name}"
            items = [
                d["cmdlet"],
                d["params"],
                who,
                caller.sid,
                f"{caller.sid}({who})",
                "Remote-ManagementShell-Unknown",
                f"{p.pid} {p.file_name.removesuffix('.exe')}#MSExchangePowerShellAppPool"
                if p.file_name.lower() == "w3wp.exe"
                else f"{p.pid} {p.file_name}",
            ]
            if d["success"]:
                items += _CMDLET_TAIL
            else:
                items += ["", "6", "00:00:00.3125000", "View Entire Forest: 'False'", d["error"] or "Error"]
            log.add(CMDLET_LOG, 1 if d["success"] else 6, ev.time, items, level=4 if d["success"] else 2, pid=p.pid)
        elif ev.kind == "event_log":
            params = d["params"]
            log.add(
                (d["channel"], d["provider"]),
                d["event_id"],
                ev.time,
                params if isinstance(params, list) else dict(params),
                level=d["level"],
                task=d["task"],
                message=d.get("message", ""),
            )
    sel = sim.selection
    return [
        (doc, msg)
        for doc, msg in zip(log.docs, log.messages, strict=True)
        if sel.record(doc["Event"]["System"]["Channel"], doc["Event"]["System"]["EventID"])
    ]


def write(sim: Simulation, out: Path) -> list[Path]:
    path = out / f"{sim.host.split('.', 1)[0]}.evtx.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in documents(sim)), encoding="utf-8", newline="")
    return [path]


WRITER = Writer(
    "evtx-json",
    "windows",
    "Windows event logs as evtx_dump JSON lines (Sysmon 1/7/11, Security 4688/4663, PowerShell 4104,"
    " MSExchange Management, System/Application)",
    write,
)
