"""Winlogbeat ECS and OTRF JSON lines mapped in DuckDB (schema/windows/events-ecs.sql, events-otrf.sql).

Each form's odd shapes (Elasticsearch hits, flattened keys, fallbacks between fields, paramN
data out of order, NXLog's EventType, EventData as XML text, keys written twice, values of
every JSON type, records that are no event, bad lines) are loaded twice from the same file:
through DuckDB, and through the Python path the readers used before (forms.from_ecs /
from_otrf, then the Python mapping). Every table's rows and the file's report must be equal,
and only the records that need Python's own rules may reach it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import winlog_gen as g
from exhunt import sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.sources.otrf_json import READER as OTRF
from exhunt.sources.winjson import WinJsonReader
from exhunt.sources.winlogbeat_ecs import READER as ECS
from exhunt.winlog import common
from exhunt.winlog import sql as winsql

NAN = float("nan")


def _line(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _twice(text: str, key: str, first: str) -> str:
    """`text` with `"key": first` written before the key's own entry (JSON with a key twice)."""
    return text.replace(f'"{key}": ', f'"{key}": {json.dumps(first)}, "{key}": ', 1)


def _first(text: str, inner: str, key: str, value: str) -> str:
    """`text` with `"key": value` written first in the object opening with `inner` (so the key is
    written twice, once before its own entry: it keeps that first place and its last value)."""
    return text.replace(inner, f"{inner}{json.dumps(key)}: {json.dumps(value)}, ", 1)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _ecs(e: g.Ev, **winlog: Any) -> dict[str, Any]:
    doc = g.ecs(e)
    doc["winlog"].update(winlog)
    return doc


def ecs_lines() -> dict[str, str]:
    """ECS records by name, each a shape the SQL must read as forms.from_ecs does."""
    plain = {f"plain {i}": _line(g.ecs(e)) for i, e in enumerate((*g.NAMED, g.PS800, g.EX1, g.EX6))}
    s11 = g.Ev(g.SYSMON, 11, 9011, "2026-03-02T08:00:00Z", {
        "TargetFilename": r"C:\x\évil.dll", "Image": r"C:\w3wp.exe", "User": "-", "ProcessId": 7})
    hit = {"_index": "winlogbeat-8", "_id": "a1", "_score": 1, "_source": g.ecs(s11)}
    flat = _flatten(g.ecs(g.Ev(g.SECURITY, 4688, 9012, "2026-03-02T08:01:00Z", dict(g.SEC4688.data))))
    partial = g.ecs(g.Ev(g.SYSMON, 1, 9013, "2026-03-02T08:02:00Z", dict(g.SYSMON1.data)))
    del partial["winlog"]["event_id"], partial["event"]
    partial["event.code"] = "1"
    zero_id = _ecs(g.Ev(g.SYSMON, 11, 9014, "2026-03-02T08:03:00Z", dict(s11.data)), event_id=0)
    no_id = _ecs(g.Ev(("Application", "App"), 1000, 9015, "2026-03-02T08:04:00Z", {"A": "1"}), event_id="")
    del no_id["event"]
    levels = [
        _ecs(g.Ev(("Application", "App"), 1001, 9016, "2026-03-02T08:05:00Z", {"A": "2"}), level="Warning"),
        {**g.ecs(g.Ev(("Application", "App"), 1002, 9017, "2026-03-02T08:06:00Z", {"A": "3"})), "log": {"level": "2"}},
        {**_ecs(g.Ev(("Application", "App"), 1003, 9018, "2026-03-02T08:07:00Z", {"A": "4"}), level=0),
         "log": {"level": "error"}},
        {**g.ecs(g.Ev(("Application", "App"), 1004, 9019, "2026-03-02T08:08:00Z", {"A": "5"})), "log": "flat"},
    ]
    hosts = _ecs(g.Ev(("Application", "App"), 1005, 9020, "2026-03-02T08:09:00Z", {"A": "6"}), computer_name="")
    bad_host = {**_ecs(g.Ev(("Application", "App"), 1006, 9021, "2026-03-02T08:10:00Z", {"A": "7"}),
                       computer_name=None), "host": "h"}
    created = _ecs(g.Ev(g.SYSMON, 13, 9022, "2026-03-02T08:11:00Z", dict(g.SYSMON13.data)),
                   time_created="2026-03-02T08:11:00.5Z", user="S-1-5-18")
    user_data = _ecs(g.Ev(("Application", "App"), 1007, 9023, "2026-03-02T08:12:00Z"),
                     event_data={}, user_data={"Inner": "v1", "Other": 2, "Nested": {"x": "y"}})
    typed = g.ecs(g.Ev(g.SYSMON, 7, 9024, "2026-03-02T08:13:00Z", {
        **g.SYSMON7.data, "ProcessId": 5000, "Signed": True, "SignatureStatus": None}))
    typed["winlog"]["event_data"] = {**g.SYSMON7.data, "ProcessId": 5000, "Signed": True, "SignatureStatus": None,
                                     "Signature": "Microsoft Windows", "Hashes": "SHA1=ABCD"}
    params = _ecs(g.Ev(g.EXCHANGE, 1, 9025, "2026-03-02T08:14:00Z"), event_data={
        "param10": "ten", "param2": "two", "param1": "Install-TransportAgent", "param02": "two again",
        "param3": 3, "param4": None, "param5": True, "param11": 'a&b<c>"d"'})
    mixed = _ecs(g.Ev(("Application", "App"), 1008, 9026, "2026-03-02T08:15:00Z"),
                 event_data={"param1": "a", "Name": "b"})
    odd_param = _ecs(g.Ev(("Application", "App"), 1009, 9027, "2026-03-02T08:16:00Z"),
                     event_data={"param1": "a", "paramX": "b"})
    object_channel = _ecs(g.Ev(("Application", "App"), 1010, 9028, "2026-03-02T08:17:00Z", {"A": "8"}),
                          channel={"name": "Application"})
    nan_channel = _ecs(g.Ev(("Application", "App"), 1011, 9029, "2026-03-02T08:18:00Z", {"A": "9"}), channel=NAN)
    tasks = [_ecs(g.Ev(("Application", "App"), 1012 + i, 9030 + i, "2026-03-02T08:19:00Z", {"A": "t"}), task=t,
                  version=v) for i, (t, v) in enumerate((("abc", "0x10"), (-5, 2), (7, "7"), ("0x10", True)))]
    message = {**g.ecs(g.Ev(g.SECURITY, 4624, 9040, "2026-03-02T08:20:00Z", {
        "TargetUserName": "alice", "TargetDomainName": "CONTOSO", "LogonType": "3"})),
        "message": "An account was successfully logged on.\n\nLogon Type: 3"}
    no_record = g.ecs(g.Ev(g.SYSMON, 3, 0, "2026-03-02T08:21:00Z", {
        "Initiated": "false", "SourceIp": "10.0.0.5", "SourcePort": "443", "DestinationIp": "10.0.0.9",
        "DestinationPort": "50000", "Protocol": "tcp", "Image": r"C:\p.exe", "SourceHostname": "-"}))
    del no_record["winlog"]["record_id"]
    unnamed = _ecs(g.Ev(("Application", "App"), 1020, 9041, "2026-03-02T08:22:00Z"),
                   event_data={"": "bare value", "Name": "v"})
    twice = _twice(_line(g.ecs(s11)), "TargetFilename", r"C:\benign.txt")
    twice_param = _twice(_line(_ecs(g.Ev(g.EXCHANGE, 6, 9042, "2026-03-02T08:23:00Z"),
                                    event_data={"param1": "Set-TransportAgent", "param2": "-Identity X"})),
                         "param1", "Get-Date")
    docs = {"hit": hit, "flat": flat, "partial": partial, "zero_id": zero_id, "no_id": no_id,
            **{f"level {i}": d for i, d in enumerate(levels)}, "hosts": hosts, "bad_host": bad_host,
            "created": created, "user_data": user_data, "typed": typed, "params": params, "mixed": mixed,
            "odd_param": odd_param, "object_channel": object_channel, "nan_channel": nan_channel,
            **{f"task {i}": d for i, d in enumerate(tasks)}, "message": message, "no_record": no_record,
            "unnamed": unnamed}
    not_events = {"winlog text": _line({"winlog": "x", "event": {"code": "1"}}), "no winlog": _line({"message": "x"}),
                  "array": "[1, 2]", "number": "7", "dotted": _line({"agent.name": "x", "event.code": "1"})}
    moved = _first(_line(g.ecs(g.SYSMON1)), '"event_data": {', "CommandLine", "cmd /c benign")
    return {**plain, **{k: _line(v) for k, v in docs.items()}, "twice": twice, "twice_param": twice_param,
            "moved": moved, **not_events}


def _otrf(e: g.Ev, **top: Any) -> dict[str, Any]:
    doc = g.otrf(e)
    for key, value in top.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


REGISTRY_MESSAGE = ("Registry value set:\r\nRuleName: -\r\nEventType: SetValue\r\nUtcTime: 2026-03-01 10:02:00.000\r\n"
                    "TargetObject: HKLM\\System\\x\r\nDetails: DWORD (0x00000002)")


def otrf_lines() -> dict[str, str]:
    """OTRF / NXLog records by name, each a shape the SQL must read as forms.from_otrf does."""
    plain = {f"plain {i}": _line(g.otrf(e)) for i, e in enumerate(g.NAMED)}
    reg = dict(g.SYSMON13.data)
    del reg["EventType"]
    nx13 = _otrf(g.Ev(g.SYSMON, 13, 9101, "2026-03-02T09:00:00Z", reg), EventType="INFO", Message=REGISTRY_MESSAGE)
    nx12 = _otrf(g.Ev(g.SYSMON, 12, 9102, "2026-03-02T09:01:00Z", reg), EventType="INFO", Message="no type here")
    nx4688 = _otrf(g.Ev(g.SECURITY, 4688, 9103, "2026-03-02T09:02:00Z", dict(g.SEC4688.data)),
                   EventType="AUDIT_SUCCESS", Message="A new process has been created.")
    providers = [
        _otrf(g.Ev(("Application", "App"), 1, 9104, "2026-03-02T09:03:00Z", {"A": "1"}), SourceName="", Provider="P"),
        _otrf(g.Ev(("Application", "App"), 2, 9105, "2026-03-02T09:04:00Z", {"A": "2"}), SourceName=...,
              EventSourceName="ESN"),
    ]
    record = _otrf(g.Ev(("Application", "App"), 3, 0, "2026-03-02T09:05:00Z", {"A": "3"}), EventRecordID=77)
    host = _otrf(g.Ev(("Application", "App"), 4, 9106, "2026-03-02T09:06:00Z", {"A": "4"}), Hostname=...,
                 Computer="OTHER.contoso.local")
    times = _otrf(g.Ev(("Application", "App"), 5, 9107, "2026-03-02T09:07:00Z", {"A": "5"}), TimeCreated=...,
                  **{"@timestamp": ""}, EventTime="2026-03-02 09:07:30")
    xml_named = _otrf(g.Ev(g.SECURITY, 4624, 9108, "2026-03-02T09:08:00Z", {}), EventType=...,
                      EventData='<?xml version="1.0"?><EventData><Data Name="TargetUserName">bob</Data>'
                                '<Data Name="TargetDomainName">a &amp; b</Data></EventData>')
    xml_params = _otrf(g.Ev(("Application", "App"), 6, 9109, "2026-03-02T09:09:00Z", {}), EventType=...,
                       EventData="  <Param>one</Param><Param>two</Param>")
    text_data = _otrf(g.Ev(("Application", "App"), 7, 9110, "2026-03-02T09:10:00Z", {}), EventType=...,
                      EventData="plain text")
    nulls = _otrf(g.Ev(g.SECURITY, 4688, 9111, "2026-03-02T09:11:00Z", dict(g.SEC4688.data)),
                  TargetDomainName=None, TargetLogonId=0, ElevatedToken=True)  # values of every JSON type
    null_channel = _otrf(g.Ev(("Application", "App"), 8, 9112, "2026-03-02T09:12:00Z", {"A": "8"}), Channel=None)
    object_message = _otrf(g.Ev(("Application", "App"), 9, 9113, "2026-03-02T09:13:00Z", {"A": "9"}),
                           Message={"text": "m"})
    typed = _otrf(g.Ev(("Application", "App"), 10, 9114, "2026-03-02T09:14:00Z", {"A": "10"}), Level="2",
                  Task="12", Keywords=36028797018963968, UserID=..., Version="0x2")
    unnamed = _otrf(g.Ev(("Application", "App"), 11, 9115, "2026-03-02T09:15:00Z", {"": "bare", "B": "x"}))
    twice = _twice(_line(g.otrf(g.SYSMON11)), "TargetFilename", r"C:\benign.txt")
    docs = {"nx13": nx13, "nx12": nx12, "nx4688": nx4688, "provider": providers[0], "event_source": providers[1],
            "record": record, "host": host, "times": times, "xml_named": xml_named, "xml_params": xml_params,
            "text_data": text_data, "nulls": nulls, "null_channel": null_channel, "object_message": object_message,
            "typed": typed, "unnamed": unnamed}
    not_events = {"no id": _line({"Channel": "Security", "Hostname": "h"}),
                  "no channel": _line({"EventID": 1, "Hostname": "h"}), "array": "[]"}
    moved = _first(_line(g.otrf(g.SYSMON1)), "{", "CommandLine", "cmd /c benign")
    return {**plain, **{k: _line(v) for k, v in docs.items()}, "twice": twice, "moved": moved, **not_events}


#: The records of each form the SQL hands to Python: the shapes only Python's rules read right
#: (and the two bad lines every file ends with), no others.
TO_PYTHON = {
    "ecs": ["flat", "partial", "odd_param", "object_channel", "nan_channel", "twice_param", "dotted",
            "unfinished", "trailing comma"],
    "otrf": ["xml_named", "xml_params", "text_data", "object_message", "unfinished", "trailing comma"],
}
FORMS: dict[str, tuple[WinJsonReader, Any]] = {"ecs": (ECS, ecs_lines), "otrf": (OTRF, otrf_lines)}
#: Lines every file ends with: JSON no reader takes (the second DuckDB reads, Python's json does not).
BAD_LINES = {"unfinished": '{"winlog": {"channel": ', "trailing comma": '{"a": 1,}'}


def _write(path: Path, lines: dict[str, str]) -> dict[str, str]:
    """The records after a BOM, a blank and a white line after the third (ended by \\n and a lone
    \\r), the first lines ended by \\r\\n, bytes that are not UTF-8 in one, the bad lines last;
    returns each record's place ("line N") by name."""
    names = [*lines, *BAD_LINES]
    texts = [*lines.values(), *BAD_LINES.values()]
    text = "\ufeff" + "\r\n".join(texts[:3]) + "\r\n\n \u3000\x1c\r" + "\n".join(texts[3:]) + "\n"
    path.write_bytes(text.encode("utf-8").replace(b"Application", b"Appl\xffication", 1))
    return {name: f"line {i + 1 + 2 * (i >= 3)}" for i, name in enumerate(names)}


def _snapshot(path: Path, reader: WinJsonReader, monkeypatch: pytest.MonkeyPatch, sql: bool) -> dict[str, Any]:
    """Every table's rows (all columns) and the file's report, through DuckDB (`sql`) or through
    the Python path; `to_python`: the records DuckDB handed to Python."""
    sent: list[str] = []
    real = winsql.python_events

    def spy(form: str, rows: list[tuple[Any, ...]]) -> Any:
        sent.extend(r[2] for r in rows)
        return real(form, rows)

    with monkeypatch.context() as m:
        m.setattr(winsql, "python_events", spy)
        if not sql:
            m.setattr(reader, "form", None)
        with Session(in_memory=True) as session:
            (report,) = session.load_files([sources.disk_file(path)], input_format=reader.name, jobs=1)
            tables = {}
            for name in sorted(session.tables):
                rows = session.run(f'SELECT * FROM "{name}"')
                if rows:
                    tables[name] = sorted(map(repr, rows))
    return {"tables": tables, "read": report.read, "used": dict(report.used), "skipped": dict(report.skipped),
            "coerced": dict(report.coerced), "messages": report.messages, "error": report.error,
            "to_python": sent}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_odd_records_give_the_python_paths_rows(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader, lines = FORMS[form]
    path = tmp_path / f"{form}.json"
    where = _write(path, lines())
    via_sql = _snapshot(path, reader, monkeypatch, sql=True)
    via_python = _snapshot(path, reader, monkeypatch, sql=False)
    assert via_python.pop("to_python") == []
    assert via_sql.pop("to_python") == [where[name] for name in TO_PYTHON[form]]
    for name in sorted(set(via_sql["tables"]) | set(via_python["tables"])):
        assert via_sql["tables"].get(name) == via_python["tables"].get(name), name
    assert via_sql == via_python
    assert via_sql["skipped"]["invalid JSON"] == 2
    assert via_sql["tables"]["Event"] and via_sql["tables"]["SecurityEvent"]


def _events(tmp_path: Path, form: str) -> tuple[Session, dict[str, str]]:
    path = tmp_path / f"{form}.json"
    where = _write(path, FORMS[form][1]())
    session = Session(in_memory=True)
    session.load_files([sources.disk_file(path)], jobs=1)
    return session, where


def _one(session: Session, sql: str, where: str) -> Any:
    rows = session.run(sql, [where])
    assert len(rows) == 1, (sql, where, rows)
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def test_a_key_written_twice_in_evtx_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evtx form's data too keeps a repeated key's first place and last value, as Python
    reads it (a MAP cannot hold it twice; the record's data was lost to every mapping)."""
    from exhunt.sources.evtx_json import READER as EVTX_JSON

    path = tmp_path / "evtx.json"
    lines = {"moved": _first(_line(g.evtx_json(g.SYSMON1)), '"EventData": {', "CommandLine", "cmd /c benign"),
             "twice": _twice(_line(g.evtx_json(g.SYSMON11)), "TargetFilename", r"C:\benign.txt")}
    _write(path, lines)
    via_sql = _snapshot(path, EVTX_JSON, monkeypatch, sql=True)
    via_python = _snapshot(path, EVTX_JSON, monkeypatch, sql=False)
    assert via_sql["tables"] == via_python["tables"]  # (the evtx SQL reads a trailing comma: not checked here)
    assert any(g.SYSMON1.data["CommandLine"] in row for row in via_sql["tables"]["DeviceProcessEvents"])


def test_ecs_readings(tmp_path: Path) -> None:
    """A few readings spelled out: a hit, flattened keys, the event.code fallback (also for an
    event_id of 0), level names, host.name, paramN order and values, user data, a key written
    twice (its last value, the rest of the data kept), a value named '', what Python writes its way."""
    session, where = _events(tmp_path, "ecs")
    with session:
        def event(name: str, cols: str) -> Any:
            return _one(session, f'SELECT {cols} FROM "Event" WHERE _record = ?', where[name])

        assert event("hit", "EventID, EventLevel, EventLevelName, Computer") == (11, 4, "Information", g.HOST)
        assert event("flat", "EventLog, EventID, Computer") == ("Security", 4688, g.HOST)
        assert [event(n, "EventID") for n in ("partial", "zero_id", "no_id")] == [1, 11, None]
        assert [event(f"level {i}", "EventLevel") for i in range(4)] == [3, 2, 2, None]
        assert [event(n, "Computer") for n in ("hosts", "bad_host")] == [g.HOST.lower(), ""]
        assert event("created", "TimeGenerated, UserName") == (datetime(2026, 3, 2, 8, 11, 0, 500000), "")
        assert event("user_data", "RenderedDescription") == 'Inner: v1\nOther: 2\nNested: {"x":"y"}'
        assert event("params", "ParameterXml") == (
            "<Param>Install-TransportAgent</Param><Param>two</Param><Param>two again</Param><Param>3</Param>"
            "<Param></Param><Param>true</Param><Param>ten</Param><Param>a&amp;b&lt;c&gt;&quot;d&quot;</Param>")
        assert [event(n, "RenderedDescription") for n in ("mixed", "odd_param", "twice_param")] == [
            "param1: a\nName: b", "param1: a\nparamX: b", "Set-TransportAgent\n-Identity X"]
        assert [event(n, "EventLog") for n in ("object_channel", "nan_channel")] == ["{'name': 'Application'}", "nan"]
        assert [event(f"task {i}", "EventCategory") for i in range(4)] == [None, None, 7, None]
        assert event("message", "RenderedDescription").startswith("An account was successfully logged on.")
        assert event("unnamed", "EventData") == ('<EventData xmlns="http://schemas.microsoft.com/win/2004/08/events/'
                                                 'event"><Data>bare value</Data><Data Name="Name">v</Data></EventData>')
        assert _one(session, 'SELECT FolderPath FROM "DeviceFileEvents" WHERE _record = ?', where["twice"]) == \
            "C:\\x\\évil.dll"
        assert _one(session, 'SELECT ReportId FROM "DeviceNetworkEvents" WHERE _record = ?', where["no_record"]) == \
            common.report_id("ecs.json", where["no_record"])
        process = 'SELECT ProcessCommandLine, AdditionalFields FROM "DeviceProcessEvents" WHERE _record = ?'
        command, extra = _one(session, process, where["moved"])
        assert command == g.SYSMON1.data["CommandLine"] and "benign" not in extra
        assert event("moved", "RenderedDescription").startswith(f"CommandLine: {command}\nRuleName: -\n")
        signed = 'SELECT SHA1, IsSigned, Signer, IsTrusted FROM "DeviceFileCertificateInfo" WHERE _record = ?'
        assert _one(session, signed, where["typed"]) == ("abcd", True, "Microsoft Windows", None)


def test_otrf_readings(tmp_path: Path) -> None:
    """NXLog's own EventType is dropped and Sysmon 13's read back from the message (last, as
    Python adds it again); the fallbacks between fields; EventData XML gives named or positional data."""
    session, where = _events(tmp_path, "otrf")
    with session:
        def event(name: str, cols: str) -> Any:
            return _one(session, f'SELECT {cols} FROM "Event" WHERE _record = ?', where[name])

        data = event("nx13", "EventData")
        assert data.endswith('<Data Name="User">NT AUTHORITY\\SYSTEM</Data><Data Name="EventType">SetValue</Data>'
                             "</EventData>") and "INFO" not in data
        assert "EventType" not in event("nx12", "EventData")
        assert "AUDIT_SUCCESS" not in event("nx4688", "EventData")
        registry = 'SELECT ActionType FROM "DeviceRegistryEvents" WHERE _record = ?'
        assert _one(session, registry, where["nx13"]) == "RegistryValueSet"
        assert [event(n, "Source") for n in ("provider", "event_source")] == ["P", "ESN"]
        assert _one(session, 'SELECT ReportId FROM "_w_events" WHERE _record = ?', where["record"]) == \
            common.report_id(g.HOST.lower(), "application", 77)
        assert event("host", "Computer") == "OTHER.contoso.local"
        assert event("times", "TimeGenerated") == datetime(2026, 3, 2, 9, 7, 30)
        assert event("xml_named", "RenderedDescription") == "TargetUserName: bob\nTargetDomainName: a & b"
        assert event("xml_params", "ParameterXml") == "<Param>one</Param><Param>two</Param>"
        assert event("text_data", "RenderedDescription") == ""
        assert event("null_channel", "EventLog") == ""
        assert event("object_message", "RenderedDescription") == "{'text': 'm'}"
        assert event("typed", "EventLevel, EventCategory") == (2, 12)
        security = 'SELECT TargetDomainName, TargetLogonId FROM "SecurityEvent" WHERE _record = ?'
        assert _one(session, security, where["nulls"]) == ("", "0")
        assert _one(session, 'SELECT FolderPath FROM "DeviceFileEvents" WHERE _record = ?', where["twice"]) == \
            g.SYSMON11.data["TargetFilename"]


def test_blank_lines_are_those_python_strips() -> None:
    """The RAW readers drop a line of nothing but what str.strip() removes, as the Python path did."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    blank = pc.match_substring_regex(pa.array(chars), winsql.BLANK_LINE).to_pylist()
    assert [c for c, b in zip(chars, blank, strict=True) if b] == [c for c in chars if c.isspace()]
    assert pc.match_substring_regex(pa.array(["", " \t\r\n", "\u3000", " x "]), winsql.BLANK_LINE).to_pylist() == \
        [True, True, True, False]


def test_forms_produce_the_columns_of_the_evtx_form() -> None:
    """Names and types, also of the rows the Python path makes: the first batch of a run
    creates `_w_events`, whatever its form, and every later one is inserted into it."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.execute(winsql.macros())
    con.execute("CREATE TEMP TABLE _exhunt_rawbatch (_exhunt_part INTEGER, _exhunt_seq BIGINT, _record VARCHAR, "
                "data VARCHAR, header_time VARCHAR, fallback_id VARCHAR, _what VARCHAR, _form VARCHAR)")
    con.register("_exhunt_pyrows", pa.table({n: pa.array([], t) for n, t in winsql.PY_COLUMNS.items()}))

    def columns(sql: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall() if r[0] != "_source_file"]

    evtx = columns(winsql.events_sql("evtx"))
    assert ("EventID", "INTEGER") in evtx and ("Level", "BIGINT") in evtx and ("Channel", "VARCHAR") in evtx
    for form in winsql.FORMS:
        assert columns(winsql.events_sql(form)) == evtx, form
    assert columns(winsql.events_over("SELECT * FROM _exhunt_pyrows")) == evtx


def test_the_otrf_sql_leaves_out_exactly_the_collector_keys() -> None:
    """events-otrf.sql's patch and forms.OTRF_META name the same keys."""
    from exhunt.winlog.forms import OTRF_META

    body = winsql.events_sql("otrf")
    patch = re.search(r"json_merge_patch\(data, '(\{.*?\})'\)", body, re.S)
    assert patch is not None
    assert set(json.loads(patch.group(1))) == set(OTRF_META)


def _mixed(folder: Path) -> Iterator[Path]:
    events = [*g.NAMED, g.PS800, g.EX1, g.EX6]
    yield g.write_jsonl(folder / "a-evtx.json", [g.evtx_json(e) for e in events])
    yield g.write_jsonl(folder / "b-ecs.ndjson", [g.ecs(e) for e in events])
    yield g.write_jsonl(folder / "c-otrf.json", [g.otrf(e) for e in g.NAMED])


def test_files_of_several_forms_in_one_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their records share RAW batches; each goes through its own form's SQL, and every file's
    rows and counts are those of the Python path."""
    paths = list(_mixed(tmp_path))

    def load(sql: bool) -> tuple[dict[str, list[str]], list[tuple[Any, ...]]]:
        with monkeypatch.context() as m:
            if not sql:
                m.setattr(ECS, "form", None)
                m.setattr(OTRF, "form", None)
            with Session(in_memory=True) as session:
                reports = session.load_files([sources.disk_file(p) for p in paths], jobs=1)
                tables = {n: sorted(map(repr, session.run(f'SELECT * FROM "{n}"'))) for n in sorted(session.tables)}
        return tables, [(r.path, r.format, r.read, dict(r.used), dict(r.skipped)) for r in reports]

    via_sql, via_python = load(True), load(False)
    assert via_sql == via_python
    assert [r[1:3] for r in via_sql[1]] == [("evtx-json", 12), ("winlogbeat-ecs", 12), ("otrf-json", 9)]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_an_event_id_filter_reaches_the_stored_events(form: str, tmp_path: Path) -> None:
    session, _ = _events(tmp_path, form)
    with session:
        kql = "Event | where EventID == 4688 | project TimeGenerated, RenderedDescription"
        sql = DuckDBBackend(session).translate(kql).sql
        plan = "\n".join(str(row[1]) for row in session.con.execute("EXPLAIN " + sql).fetchall())
    box = plan[plan.index("_w_events"):]
    box = box[: box.index("╰")]  # the scan's own box in the plan drawing
    assert "Filters" in box and "EventID" in box, plan


def test_ecs_accounting(tmp_path: Path) -> None:
    """Read, used and skipped for a small file, counted by hand: three events through DuckDB,
    one (flattened keys) through Python, a blank line (not counted), a bad line, a non-event."""
    flat = _flatten(g.ecs(g.SYSMON11))
    lines = [_line(g.ecs(g.SYSMON1)), _line(g.ecs(g.SEC4688)), "", _line(flat), "{not json",
             _line(g.ecs(g.Ev(("Application", "App"), 1000, 5, "2026-03-01T10:00:00Z", {"A": "1"}))),
             _line({"message": "no winlog"})]
    path = tmp_path / "few.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
        files = session.run('SELECT FolderPath, _record FROM "DeviceFileEvents"')
    assert (report.format, report.read, report.error) == ("winlogbeat-ecs", 6, None)
    assert dict(report.used) == {"Event": 4, "SecurityEvent": 1, "DeviceProcessEvents": 2, "DeviceFileEvents": 1}
    assert dict(report.skipped) == {"invalid JSON": 1, "not a Winlogbeat (winlog.*) record": 1}
    assert [m.split(":", 1)[1] for m in report.messages] == [
        "line 5: skipped: invalid JSON: Expecting property name enclosed in double quotes",
        "line 7: skipped: not a Winlogbeat (winlog.*) record"]
    assert files == [(g.SYSMON11.data["TargetFilename"], "line 4")]


def test_json_nested_deeper_than_python_follows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line nested thousands deep is counted and named, never a traceback: DuckDB reads a valid
    one (Python cannot: its PowerShell rows are left out, with a message), a broken one is invalid
    JSON on every path, a JSON array holding one too."""
    deep = "[" * 5000 + "]" * 5000
    valid = _line(g.ecs(g.PS4104_PARTS[0])).replace('"MessageNumber": "1"', f'"MessageNumber": {deep}')
    broken = '{"winlog": ' + "[" * 5000
    path = tmp_path / "deep.ndjson"
    path.write_text("\n".join([_line(g.ecs(g.SYSMON1)), valid, broken]) + "\n", encoding="utf-8")
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
    assert (report.read, dict(report.used), dict(report.skipped)) == (
        3, {"Event": 2, "DeviceProcessEvents": 1}, {"invalid JSON": 1})
    assert report.messages[0].endswith("line 3: skipped: invalid JSON: nested too deep")
    assert report.messages[1].endswith("line 2: event data not readable here (nested too deep): "
                                       "left out of its PowerShell / cmdlet-log rows")
    monkeypatch.setattr(ECS, "form", None)
    array = tmp_path / "deep-array.json"
    array.write_text(f"[{_line(g.ecs(g.SYSMON1))},\n{broken}\n]", encoding="utf-8")
    # The Python path names depth before validity (sources.base.NESTED_TOO_DEEP), for both lines.
    for file, skipped in ((path, {"nested too deep": 2}), (array, {"nested too deep": 1})):
        with Session(in_memory=True) as session:
            (report,) = session.load_files([sources.disk_file(file)], input_format=ECS.name, jobs=1)
        assert (dict(report.skipped), report.error) == (skipped, None)
        assert report.used["DeviceProcessEvents"] == 1
