"""Security log: 4688 -> DeviceProcessEvents, 4624/4625/4648 -> DeviceLogonEvents, and the
SecurityEvent row every Security event gets."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from exhunt.schema import table
from exhunt.winlog.common import EMPTY, basename, text, to_int
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]

_ELEVATION = {"%%1936": "TokenElevationTypeDefault", "%%1937": "TokenElevationTypeFull",
              "%%1938": "TokenElevationTypeLimited"}
_INTEGRITY = {"S-1-16-0": "Untrusted", "S-1-16-4096": "Low", "S-1-16-8192": "Medium", "S-1-16-8448": "MediumPlus",
              "S-1-16-12288": "High", "S-1-16-16384": "System", "S-1-16-20480": "Protected"}
NO_SID = ("S-1-0-0", "", "-")


def process_create(ev: WinEvent, row: Row) -> list[tuple[str, Row]]:
    """4688: the creator (Subject) is the initiating process's account; the new process runs as
    the Target account when the two logons differ, else as the Subject."""
    d = ev.data
    image = ev.get("NewProcessName")
    parent = ev.get("ParentProcessName")
    subject = (ev.get("SubjectDomainName"), ev.get("SubjectUserName"), ev.get("SubjectUserSid"),
               to_int(d.get("SubjectLogonId")))
    target_sid = ev.get("TargetUserSid")
    target = subject if target_sid in NO_SID else (
        ev.get("TargetDomainName"), ev.get("TargetUserName"), target_sid, to_int(d.get("TargetLogonId")))
    row.update({
        "ActionType": "ProcessCreated",
        "FileName": basename(image),
        "FolderPath": image,
        "ProcessId": to_int(d.get("NewProcessId")),
        "ProcessCommandLine": ev.get("CommandLine"),
        "ProcessTokenElevation": _ELEVATION.get(ev.get("TokenElevationType"), ev.get("TokenElevationType")),
        "ProcessIntegrityLevel": _INTEGRITY.get(ev.get("MandatoryLabel").upper(), ev.get("MandatoryLabel")),
        "AccountDomain": target[0] if target[0] not in EMPTY else "",
        "AccountName": target[1] if target[1] not in EMPTY else "",
        "AccountSid": target[2],
        "LogonId": target[3],
        "InitiatingProcessAccountDomain": subject[0] if subject[0] not in EMPTY else "",
        "InitiatingProcessAccountName": subject[1] if subject[1] not in EMPTY else "",
        "InitiatingProcessAccountSid": subject[2],
        "InitiatingProcessLogonId": subject[3],
        "InitiatingProcessId": to_int(d.get("ProcessId")),
        "InitiatingProcessFolderPath": parent,
        "InitiatingProcessFileName": basename(parent),
    })
    return [("DeviceProcessEvents", row)]


#: Titles Log Analytics puts in SecurityEvent.Activity ("4688 - A new process has been created.").
ACTIVITIES = {
    1102: "The audit log was cleared.",
    4624: "An account was successfully logged on.",
    4625: "An account failed to log on.",
    4634: "An account was logged off.",
    4648: "A logon was attempted using explicit credentials.",
    4672: "Special privileges assigned to new logon.",
    4688: "A new process has been created.",
    4689: "A process has exited.",
    4697: "A service was installed in the system.",
    4698: "A scheduled task was created.",
    4720: "A user account was created.",
    4732: "A member was added to a security-enabled local group.",
    4756: "A member was added to a security-enabled universal group.",
    5136: "A directory service object was modified.",
    5140: "A network share object was accessed.",
    5145: "A network share object was checked to see whether client can be granted desired access.",
}
#: SecurityEvent columns that take the EventData value of the same name.
@cache
def _from_data() -> dict[str, bool]:
    """SecurityEvent's columns an EventData field of the same name fills -> whether an integer
    (the twin of `-- fill: EventData` in security-event.sql; the computed ones are set after)."""
    return {c.name: c.kql_type in ("int", "long") for c in table("SecurityEvent").columns}


def _account(domain: str, user: str) -> str:
    if user in EMPTY:
        return ""
    return f"{domain}\\{user}" if domain not in EMPTY else user


def security_event(ev: WinEvent, event_data: str) -> Row:
    """The Log Analytics SecurityEvent shape (Sentinel rules read it)."""
    if ev.extra is not None and text(ev.extra.get("Type")) == "SecurityEvent":
        kept = {k: v for k, v in ev.extra.items() if not k.startswith("_")}
        kept.setdefault("EventData", event_data)
        return kept
    d = ev.data
    columns = _from_data()
    row: Row = {k: (to_int(v) if columns[k] else v if v.__class__ is str else text(v))
                for k, v in d.items() if k in columns}
    get = row.get
    subject = _account(get("SubjectDomainName", ""), get("SubjectUserName", ""))
    target = _account(get("TargetDomainName", ""), get("TargetUserName", ""))
    title = ACTIVITIES.get(ev.event_id or -1)
    row.update({
        "TimeGenerated": ev.time,
        "Computer": ev.computer,
        "EventID": ev.event_id,
        "Activity": f"{ev.event_id} - {title}" if title else text(ev.event_id),
        "Channel": ev.channel,
        "EventSourceName": ev.provider,
        "Level": text(4 if ev.level == 0 else ev.level),
        "Task": ev.task,
        "SubjectAccount": subject,
        "TargetAccount": target,
        "Account": target or subject,
        "AccountType": "Machine" if (target or subject).endswith("$") else ("User" if target or subject else ""),
        "LogonType": to_int(d.get("LogonType")),
        "LogonTypeName": _logon_type_name(to_int(d.get("LogonType"))),
        "Process": basename(d.get("NewProcessName") or d.get("ProcessName")),
        "EventData": event_data,
        "Type": "SecurityEvent",
    })
    return row


#: Security's LogonType number -> the name Defender writes (the twin of win_logon_type in macros.sql).
LOGON_TYPES = {2: "Interactive", 3: "Network", 4: "Batch", 5: "Service", 7: "Unlock", 8: "NetworkCleartext",
               9: "NewCredentials", 10: "RemoteInteractive", 11: "CachedInteractive",
               12: "CachedRemoteInteractive", 13: "CachedUnlock"}
#: 4625's FailureReason message codes in Defender's words (the twin of win_failure_reason).
FAILURE_REASONS = {"%%2304": "LogonError", "%%2305": "AccountExpired", "%%2306": "NetLogonNotActive",
                   "%%2307": "AccountLocked", "%%2308": "LogonTypeNotGranted", "%%2309": "PasswordExpired",
                   "%%2310": "AccountDisabled", "%%2311": "AccountLogonTimeRestriction",
                   "%%2312": "UserNotAllowedOnComputer", "%%2313": "InvalidUserNameOrPassword", "-": ""}
_ACTIONS = {4624: "LogonSuccess", 4625: "LogonFailed", 4648: "LogonAttempted"}
_PRIVATE = re.compile(r"^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|169\.254\.|[fF][cCdD]|[fF][eE]80:)")


def _logon_type_name(kind: int | None) -> str:
    """SecurityEvent's LogonTypeName: '10 - RemoteInteractive'."""
    return "" if kind is None else f"{kind} - {LOGON_TYPES.get(kind, str(kind))}"


def _ip_type(ip: str) -> str:
    if ip in EMPTY:
        return ""
    if ip.startswith("127.") or ip == "::1":
        return "Loopback"
    return "Private" if _PRIVATE.match(ip) else "Public"


def _clean(v: str, none: tuple[str, ...] = ()) -> str:
    return "" if v in EMPTY or v in none else v


def _positive(v: str) -> int | None:
    n = to_int(v)
    return n if n is not None and n > 0 else None


def logon(ev: WinEvent, row: Row) -> list[tuple[str, Row]]:
    """4624 -> LogonSuccess, 4625 -> LogonFailed, 4648 -> LogonAttempted (the twin of
    schema/windows/security-4624-4625-4648-logon.sql): the Target account logs on (or its
    credentials were given), the Subject is the process that asked."""
    eid = ev.event_id or 0
    kind = to_int(ev.get("LogonType"))
    server = ev.get("TargetServerName")
    process = _clean(ev.get("ProcessName"))
    extra = {n: v for n, v in (("LogonProcessName", ev.get("LogonProcessName").strip()),
                                ("LmPackageName", ev.get("LmPackageName")), ("Status", ev.get("Status")),
                                ("SubStatus", ev.get("SubStatus"))) if v not in EMPTY}
    reason = ev.get("FailureReason").strip()
    row.update({
        "ActionType": _ACTIONS[eid],
        "LogonType": LOGON_TYPES.get(kind, str(kind)) if kind is not None else "",
        "AccountDomain": _clean(ev.get("TargetDomainName")),
        "AccountName": _clean(ev.get("TargetUserName")),
        "AccountSid": _clean(ev.get("TargetUserSid"), ("S-1-0-0",)),
        "Protocol": _clean(ev.get("AuthenticationPackageName")),
        "FailureReason": FAILURE_REASONS.get(reason, reason) if eid == 4625 else "",
        "LogonId": to_int(ev.data.get("TargetLogonId")) if eid == 4624 else None,
        "RemoteDeviceName": (_clean(server) if server.lower() != "localhost" else "") if eid == 4648
        else _clean(ev.get("WorkstationName")),
        "RemoteIP": _clean(ev.get("IpAddress")),
        "RemoteIPType": _ip_type(ev.get("IpAddress")),
        "RemotePort": _positive(ev.get("IpPort")),
        "InitiatingProcessAccountDomain": _clean(ev.get("SubjectDomainName")),
        "InitiatingProcessAccountName": _clean(ev.get("SubjectUserName")),
        "InitiatingProcessAccountSid": _clean(ev.get("SubjectUserSid"), ("S-1-0-0",)),
        "InitiatingProcessId": _positive(ev.get("ProcessId")),
        "InitiatingProcessFolderPath": process,
        "InitiatingProcessFileName": basename(process) if process else "",
        "AdditionalFields": json.dumps(extra, ensure_ascii=False, separators=(",", ":")) if extra else "",
    })
    return [("DeviceLogonEvents", row)]
