"""Sysmon (Microsoft-Windows-Sysmon/Operational) -> Defender device tables.

Field correspondences follow the project's mapping reference (pySigma's
microsoft_xdr pipeline and the Sentinel ASIM Sysmon parsers); where Defender has
no column (ProcessGuid, CurrentDirectory, ...) the value goes to AdditionalFields.
"""

from __future__ import annotations

from typing import Any

from exhunt.winlog.common import (
    EMPTY,
    basename,
    bool_text,
    dumps,
    hashes,
    registry_key,
    split_user,
    sysmon_time,
    text,
    to_int,
)
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]
Out = list[tuple[str, Row]]


def _extra(ev: WinEvent, *names: str) -> str:
    """AdditionalFields: the Sysmon fields Defender has no column for (only those present)."""
    found = {n: text(ev.data[n]) for n in names if ev.data.get(n) not in EMPTY}
    return dumps(found) if found else ""


def _actor(ev: WinEvent, row: Row) -> None:
    """The process that acted: Image/ProcessId/User -> InitiatingProcess*."""
    image = ev.get("Image")
    row["InitiatingProcessFolderPath"] = image
    row["InitiatingProcessFileName"] = basename(image)
    row["InitiatingProcessId"] = to_int(ev.data.get("ProcessId"))
    dom, user = split_user(ev.data.get("User"))
    row["InitiatingProcessAccountDomain"] = dom
    row["InitiatingProcessAccountName"] = user


def process_create(ev: WinEvent, row: Row) -> Out:
    """Sysmon 1 -> DeviceProcessEvents ProcessCreated."""
    d = ev.data
    image = ev.get("Image")
    h = hashes(d.get("Hashes"))
    dom, user = split_user(d.get("User"))
    pdom, puser = split_user(d.get("ParentUser"))
    parent = ev.get("ParentImage")
    row.update({
        "ActionType": "ProcessCreated",
        "FileName": basename(image),
        "FolderPath": image,
        "SHA1": h.get("SHA1", ""),
        "SHA256": h.get("SHA256", ""),
        "MD5": h.get("MD5", ""),
        "ProcessVersionInfoCompanyName": ev.get("Company"),
        "ProcessVersionInfoProductName": ev.get("Product"),
        "ProcessVersionInfoProductVersion": ev.get("FileVersion"),
        "ProcessVersionInfoOriginalFileName": ev.get("OriginalFileName"),
        "ProcessVersionInfoFileDescription": ev.get("Description"),
        "ProcessId": to_int(d.get("ProcessId")),
        "ProcessCommandLine": ev.get("CommandLine"),
        "ProcessIntegrityLevel": ev.get("IntegrityLevel"),
        "ProcessCreationTime": sysmon_time(d.get("UtcTime")),
        "AccountDomain": dom,
        "AccountName": user,
        "LogonId": to_int(d.get("LogonId")),
        "InitiatingProcessAccountDomain": pdom,
        "InitiatingProcessAccountName": puser,
        "InitiatingProcessFileName": basename(parent),
        "InitiatingProcessFolderPath": parent,
        "InitiatingProcessId": to_int(d.get("ParentProcessId")),
        "InitiatingProcessCommandLine": ev.get("ParentCommandLine"),
        "AdditionalFields": _extra(ev, "ProcessGuid", "ParentProcessGuid", "LogonGuid", "CurrentDirectory",
                                   "TerminalSessionId", "RuleName"),
    })
    return [("DeviceProcessEvents", row)]


def file_create(ev: WinEvent, row: Row, action: str = "FileCreated") -> Out:
    """Sysmon 11 -> FileCreated; 23/26 -> FileDeleted (DeviceFileEvents)."""
    target = ev.get("TargetFilename")
    h = hashes(ev.data.get("Hashes"))
    row.update({
        "ActionType": action,
        "FileName": basename(target),
        "FolderPath": target,
        "SHA1": h.get("SHA1", ""),
        "SHA256": h.get("SHA256", ""),
        "MD5": h.get("MD5", ""),
        "AdditionalFields": _extra(ev, "CreationUtcTime", "ProcessGuid", "RuleName", "IsExecutable", "Archived"),
    })
    _actor(ev, row)
    return [("DeviceFileEvents", row)]


def file_delete(ev: WinEvent, row: Row) -> Out:
    return file_create(ev, row, "FileDeleted")


def image_load(ev: WinEvent, row: Row) -> Out:
    """Sysmon 7 -> DeviceImageLoadEvents ImageLoaded, and its signature -> DeviceFileCertificateInfo.

    Defender keeps signing facts apart, keyed by SHA1, so a rule joins the two
    tables on SHA1 the same way over Defender data and over Sysmon.
    """
    loaded = ev.get("ImageLoaded")
    h = hashes(ev.data.get("Hashes"))
    row.update({
        "ActionType": "ImageLoaded",
        "FileName": basename(loaded),
        "FolderPath": loaded,
        "SHA1": h.get("SHA1", ""),
        "SHA256": h.get("SHA256", ""),
        "MD5": h.get("MD5", ""),
    })
    _actor(ev, row)
    out: Out = [("DeviceImageLoadEvents", row)]
    sha1 = h.get("SHA1")
    signed = bool_text(ev.data.get("Signed"))
    if sha1 and signed is not None:
        status = ev.get("SignatureStatus")
        out.append(("DeviceFileCertificateInfo", {
            "Timestamp": row["Timestamp"],
            "DeviceName": row["DeviceName"],
            "ReportId": row["ReportId"],
            "SHA1": sha1,
            "IsSigned": signed,
            "Signer": ev.get("Signature") if ev.get("Signature") not in EMPTY else "",
            "IsTrusted": status.lower() == "valid" if status else None,
        }))
    return out


_REG_ACTIONS = {
    "CreateKey": "RegistryKeyCreated",
    "DeleteKey": "RegistryKeyDeleted",
    "DeleteValue": "RegistryValueDeleted",
    "SetValue": "RegistryValueSet",
    "RenameKey": "RegistryKeyRenamed",
}
_REG_TYPES = (("DWORD", "Dword"), ("QWORD", "Qword"), ("Binary Data", "Binary"))


def registry(ev: WinEvent, row: Row) -> Out:
    """Sysmon 12/13/14 -> DeviceRegistryEvents; value events split key and value name."""
    etype = ev.get("EventType")
    action = _REG_ACTIONS.get(etype, "")
    if not action:
        action = {13: "RegistryValueSet", 14: "RegistryKeyRenamed"}.get(ev.event_id or 0, "RegistryKeyCreated")
    target = registry_key(ev.data.get("TargetObject"))
    key, value_name = target, ""
    if action in ("RegistryValueSet", "RegistryValueDeleted"):
        key, _, value_name = target.rpartition("\\")
    row.update({"ActionType": action, "RegistryKey": key, "RegistryValueName": value_name})
    if action == "RegistryValueSet":
        details = ev.get("Details")
        row["RegistryValueData"] = details
        row["RegistryValueType"] = next((t for p, t in _REG_TYPES if details.startswith(p)), "")
    elif action == "RegistryKeyRenamed":
        row["PreviousRegistryKey"] = target
        row["RegistryKey"] = registry_key(ev.data.get("NewName"))
    _actor(ev, row)
    return [("DeviceRegistryEvents", row)]


def network(ev: WinEvent, row: Row) -> Out:
    """Sysmon 3 -> DeviceNetworkEvents; for inbound connections the local side is the destination."""
    d = ev.data
    initiated = bool_text(d.get("Initiated"))
    src = (ev.get("SourceIp"), to_int(d.get("SourcePort")), ev.get("SourceHostname"))
    dst = (ev.get("DestinationIp"), to_int(d.get("DestinationPort")), ev.get("DestinationHostname"))
    local, remote = (src, dst) if initiated is not False else (dst, src)
    proto = ev.get("Protocol")
    row.update({
        "ActionType": "ConnectionSuccess" if initiated is not False else "InboundConnectionAccepted",
        "LocalIP": local[0],
        "LocalPort": local[1],
        "RemoteIP": remote[0],
        "RemotePort": remote[1],
        "RemoteUrl": remote[2] if remote[2] not in EMPTY else "",
        "Protocol": proto[:1].upper() + proto[1:].lower() if proto else "",
        "AdditionalFields": _extra(ev, "ProcessGuid", "RuleName", "SourcePortName", "DestinationPortName"),
    })
    _actor(ev, row)
    return [("DeviceNetworkEvents", row)]


MAPPERS = {
    1: process_create,
    3: network,
    7: image_load,
    11: file_create,
    12: registry,
    13: registry,
    14: registry,
    23: file_delete,
    26: file_delete,
}


def map_event(ev: WinEvent, base: Row) -> Out:
    fn = MAPPERS.get(ev.event_id or -1)
    return fn(ev, base) if fn else []


__all__ = ["map_event", "text"]
