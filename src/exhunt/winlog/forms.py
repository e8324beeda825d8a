"""Record forms -> WinEvent: evtx / evtx_dump JSON, Winlogbeat ECS, OTRF (Mordor) flat JSON, Sentinel rows.

Each converter returns None when the record is not a Windows event of its form,
so a reader can count and name what it skipped.
"""

from __future__ import annotations

import re
from typing import Any

from defusedxml import ElementTree

from exhunt.winlog.common import text, to_int
from exhunt.winlog.event import WinEvent


def _attr(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        attrs = node.get("#attributes")
        if isinstance(attrs, dict):
            return attrs.get(name)
    return None


def _scalar(node: Any) -> Any:
    """`{"#attributes": .., "#text": x}` -> x; plain values unchanged."""
    if isinstance(node, dict):
        return node.get("#text")
    return node


def _positional(value: Any) -> list[str]:
    if isinstance(value, list):
        return [text(v) for v in value]
    return [text(value)]


def _event_data(ev: WinEvent, data: Any) -> None:
    """Named <Data Name=..> become `data`; unnamed <Data> become `data_list` in order."""
    if data.__class__ is not dict:
        if isinstance(data, dict):
            data = dict(data)
        else:
            if isinstance(data, str) and data:
                ev.data_list = [data]
            return
    unnamed = data.get("Data")
    if unnamed is not None and (len(data) == 1 or ("Binary" in data and len(data) == 2)):
        ev.data_list = _positional(_scalar(unnamed))
        return
    if "#attributes" in data:
        data = {k: v for k, v in data.items() if k != "#attributes"}
    ev.data = data


def from_evtx_json(doc: Any) -> WinEvent | None:
    """A record as the `evtx` parser (and `evtx_dump -o json/jsonl`) renders it.

    Every EVTX record passes here, so the common shapes (plain ints and strings,
    `#attributes` dicts) are read inline; anything else goes through `_scalar`/`to_int`.
    """
    event = doc.get("Event") if isinstance(doc, dict) else None
    if not isinstance(event, dict):
        return None
    system = event.get("System")
    if not isinstance(system, dict):
        return None
    get = system.get
    ev = WinEvent()
    v = get("Channel")
    ev.channel = v if v.__class__ is str else text(v)
    v = get("Computer")
    ev.computer = v if v.__class__ is str else text(v)
    ev.provider = text(_attr(get("Provider"), "Name"))
    v = get("EventID")
    if v.__class__ is int:
        ev.event_id = v
    else:
        ev.event_id = to_int(_scalar(v))
        ev.qualifiers = to_int(_attr(v, "Qualifiers"))
    v = get("Level")
    ev.level = v if v.__class__ is int else to_int(_scalar(v))
    v = get("Task")
    ev.task = v if v.__class__ is int else to_int(_scalar(v))
    v = get("Opcode")
    ev.opcode = v if v.__class__ is int else to_int(_scalar(v))
    v = get("Version")
    ev.version = v if v.__class__ is int else to_int(_scalar(v))
    v = get("Keywords")
    ev.keywords = v if v.__class__ is str else text(_scalar(v))
    v = get("EventRecordID")
    ev.record_id = v if v.__class__ is int else to_int(_scalar(v))
    ev.time = text(_attr(get("TimeCreated"), "SystemTime"))
    v = get("Security")
    if v is not None:
        ev.user_sid = text(_attr(v, "UserID"))
    data = event.get("EventData")
    if data is None:
        data = event.get("UserData")
        if isinstance(data, dict) and len(data) == 1:
            inner = next(iter(data.values()))
            data = inner if isinstance(inner, dict) else data
    if data is not None:
        _event_data(ev, data)
    rendered = event.get("RenderingInfo")
    if isinstance(rendered, dict):
        ev.message = text(rendered.get("Message"))
    return ev


# -- Winlogbeat / Elastic Agent ----------------------------------------------

_PARAM = re.compile(r"param(\d+)$")


def _undot(doc: dict[str, Any]) -> dict[str, Any]:
    """Exports sometimes flatten `winlog.channel` into one key: nest it again."""
    if not any("." in k for k in doc):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def _field(doc: dict[str, Any], obj: str, name: str) -> Any:
    """doc[obj][name], None when doc[obj] is not an object (a hostile or odd export)."""
    node = doc.get(obj)
    return node.get(name) if isinstance(node, dict) else None


def from_ecs(doc: Any) -> WinEvent | None:
    """A Winlogbeat / Elastic Agent document (`winlog.*`); Elasticsearch hits are unwrapped."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("_source"), dict):
        doc = doc["_source"]
    doc = _undot(doc)
    win = doc.get("winlog")
    if not isinstance(win, dict):
        return None
    ev = WinEvent()
    ev.channel = text(win.get("channel"))
    ev.provider = text(win.get("provider_name"))
    ev.event_id = to_int(win.get("event_id") or _field(doc, "event", "code"))
    ev.record_id = to_int(win.get("record_id"))
    ev.task = to_int(win.get("task")) if str(win.get("task", "")).isdigit() else None
    ev.opcode = None
    ev.version = to_int(win.get("version"))
    ev.keywords = ""
    ev.level = _LEVEL_NAMES.get(text(win.get("level") or _field(doc, "log", "level")).lower())
    host = doc.get("host") if isinstance(doc.get("host"), dict) else {}
    ev.computer = text(win.get("computer_name") or host.get("name"))
    ev.time = text(win.get("time_created") or doc.get("@timestamp"))
    user = win.get("user")
    ev.user_sid = text(user.get("identifier")) if isinstance(user, dict) else ""
    data = win.get("event_data")
    if isinstance(data, dict) and data:
        numbered = [(_PARAM.match(k), v) for k, v in data.items()]
        if all(m for m, _ in numbered):
            ev.data_list = [text(v) for _, v in sorted(numbered, key=lambda mv: int(mv[0].group(1)))]  # type: ignore[union-attr]
        else:
            ev.data = data
    elif isinstance(win.get("user_data"), dict):
        ev.data = win["user_data"]
    ev.message = text(doc.get("message"))
    return ev


_LEVEL_NAMES = {"critical": 1, "error": 2, "warning": 3, "information": 4, "info": 4, "verbose": 5,
                "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "0": 0}


# -- OTRF Security-Datasets (NXLog / Sentinel-exported flat records) -----------

#: Collector and System keys that sit beside the flattened EventData.
OTRF_META = frozenset((
    "@version", "@timestamp", "tags", "host", "port", "Hostname", "SourceName", "ProviderGuid", "Channel",
    "EventID", "Version", "Task", "OpcodeValue", "Opcode", "Level", "Keywords", "EventTime", "EventReceivedTime",
    "RecordNumber", "Severity", "SeverityValue", "ExecutionProcessID", "ThreadID", "Domain", "AccountName",
    "UserID", "AccountType", "Message", "SourceModuleName", "SourceModuleType", "Category", "ActivityID",
    "RelatedActivityID", "TimeCreated", "Provider", "EventRecordID", "Computer", "TimeGenerated",
    "EventSourceName", "EventData", "ERROR_EVT_UNRESOLVED", "Qualifiers",
))
#: NXLog writes its own `EventType` (severity) that collides with Sysmon's registry EventType.
_NXLOG_TYPES = frozenset(("INFO", "AUDIT_SUCCESS", "AUDIT_FAILURE", "WARNING", "ERROR", "CRITICAL", "VERBOSE"))
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_MSG_FIELD = re.compile(r"^(\w+): (.*?)\r?$", re.M)


def from_otrf(doc: Any) -> WinEvent | None:
    """A Mordor record: System fields and EventData fields side by side at top level."""
    if not isinstance(doc, dict) or "Channel" not in doc or "EventID" not in doc:
        return None
    ev = WinEvent()
    ev.channel = text(doc.get("Channel"))
    ev.provider = text(doc.get("SourceName") or doc.get("Provider") or doc.get("EventSourceName"))
    ev.event_id = to_int(doc.get("EventID"))
    ev.level = to_int(doc.get("Level"))
    ev.task = to_int(doc.get("Task"))
    ev.version = to_int(doc.get("Version"))
    ev.keywords = text(doc.get("Keywords"))
    ev.record_id = to_int(doc.get("RecordNumber") or doc.get("EventRecordID"))
    ev.computer = text(doc.get("Hostname") or doc.get("Computer"))
    ev.time = text(doc.get("TimeCreated") or doc.get("@timestamp") or doc.get("EventTime"))
    ev.user_sid = text(doc.get("UserID"))
    ev.message = text(doc.get("Message"))
    data = {k: v for k, v in doc.items() if k not in OTRF_META}
    etype = data.get("EventType")
    if etype in _NXLOG_TYPES:
        del data["EventType"]
        if ev.message and ev.event_id in (12, 13, 14):
            for m in _MSG_FIELD.finditer(ev.message):
                if m.group(1) == "EventType":
                    data["EventType"] = m.group(2)
                    break
    if data:
        ev.data = data
    elif isinstance(doc.get("EventData"), str) and doc["EventData"].lstrip().startswith("<"):
        _from_xml_data(ev, doc["EventData"])
    return ev


def _from_xml_data(ev: WinEvent, xml: str) -> None:
    """`<EventData><Data Name="X">v</Data>..` or `<Param>v</Param>..` text into the event."""
    body = _XML_DECL.sub("", xml)
    try:
        root = ElementTree.fromstring(f"<r>{body}</r>")
    except Exception:  # malformed export text: keep the event, without its data
        return
    named: dict[str, Any] = {}
    unnamed: list[str] = []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("Data", "Param"):
            name = el.get("Name")
            if name:
                named[name] = el.text or ""
            else:
                unnamed.append(el.text or "")
    if named:
        ev.data = named
    elif unnamed:
        ev.data_list = unnamed


# -- Sentinel / Log Analytics exports ------------------------------------------

_SUFFIX = re.compile(r"_(string|dynamic|int|long|real|bool|datetime|s|d|b)$")
SENTINEL_TYPES = ("SecurityEvent", "Event", "WindowsEvent")
_SENTINEL_SYSTEM = frozenset((
    "TenantId", "SourceSystem", "TimeGenerated", "Computer", "EventID", "MG", "ManagementGroupName", "Type",
    "_ResourceId", "EventSourceName", "Channel", "Task", "Level", "Activity", "SourceComputerId", "EventOriginId",
    "TimeCollected", "InstanceId", "EventData", "Source", "EventLog", "EventLevel", "EventLevelName",
    "EventCategory", "UserName", "RenderedDescription", "ParameterXml", "AzureDeploymentID", "Role",
    "Provider", "EventRecordId", "EventRecordID", "Keywords", "Opcode", "Correlation", "SystemProcessId",
    "SystemThreadId", "SystemUserId", "TimeCreated", "Version", "Data", "EventLevelName", "Message",
    "RawEventData",
))


def _sentinel_data(ev: WinEvent, data: Any) -> None:
    """A row's EventData: the agent's XML text (Event, SecurityEvent), or the WindowsEvent table's
    dynamic object, which an export gives as an object or as its JSON text. An object holding only
    `Data` (and `Binary`) is unnamed, positional data; a bare list is too."""
    if isinstance(data, str):
        s = data.strip()
        if s.startswith("<"):
            _from_xml_data(ev, s)
            return
        if not s.startswith(("[", "{")):
            return
        import json

        try:
            data = json.loads(s)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            return
    if isinstance(data, dict):
        _event_data(ev, data)
    elif isinstance(data, list):
        ev.data_list = [text(v) for v in data]


def from_sentinel(doc: Any) -> WinEvent | None:
    """A row of the Log Analytics `SecurityEvent`, `Event` or `WindowsEvent` table."""
    if not isinstance(doc, dict):
        return None
    row = {(_SUFFIX.sub("", k) if _SUFFIX.search(k) and _SUFFIX.sub("", k) not in doc else k): v
           for k, v in doc.items()}
    typ = text(row.get("Type"))
    if typ not in SENTINEL_TYPES and not ("EventID" in row and "TimeGenerated" in row and "Computer" in row):
        return None
    ev = WinEvent()
    ev.extra = row
    ev.computer = text(row.get("Computer"))
    ev.event_id = to_int(row.get("EventID"))
    ev.time = text(row.get("TimeGenerated") or row.get("TimeCreated"))
    if typ == "SecurityEvent" or (not typ and "EventSourceName" in row and row.get("Channel") == "Security"):
        ev.channel = text(row.get("Channel")) or "Security"
        ev.provider = text(row.get("EventSourceName"))
    else:
        ev.channel = text(row.get("Channel") or row.get("EventLog"))
        ev.provider = text(row.get("Provider") or row.get("Source") or row.get("EventSourceName"))
    ev.level = to_int(row.get("EventLevel")) if "EventLevel" in row else None
    ev.task = to_int(row.get("Task") if "Task" in row else row.get("EventCategory"))
    ev.record_id = to_int(row.get("EventRecordId") or row.get("EventRecordID"))
    ev.message = text(row.get("RenderedDescription") or row.get("Message"))
    if typ == "WindowsEvent":
        # the System properties the WindowsEvent table keeps as columns
        ev.user_sid = text(row.get("SystemUserId"))
        ev.version = to_int(row.get("Version"))
        ev.opcode = to_int(row.get("Opcode"))
        ev.keywords = text(row.get("Keywords"))
    data = row.get("EventData")
    if data is None and typ == "WindowsEvent":
        data = row.get("Data")
    _sentinel_data(ev, data)
    if not ev.data and ev.data_list is None:
        # WindowsEvent: EventData is null when the agent could not parse the record; its XML is
        # then in RawEventData. Event: unnamed values are also in ParameterXml.
        for raw in (row.get("RawEventData"), row.get("ParameterXml")):
            if isinstance(raw, str) and raw.lstrip().startswith("<"):
                _from_xml_data(ev, raw)
                if ev.data or ev.data_list is not None:
                    break
    if not ev.data and ev.data_list is None:
        flat = {k: v for k, v in row.items() if k not in _SENTINEL_SYSTEM and not k.startswith("_")}
        if flat:
            ev.data = flat
    return ev
