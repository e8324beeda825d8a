"""Windows events mapped in DuckDB (exhunt.winlog.sql and schema/windows/*.sql).

The SQL macros are twins of the Python conversions in exhunt.winlog.common (the Python
mapping still serves the JSON forms), so both are run on the same awkward values. The
mapping files must name real tables and columns; Event and SecurityEvent must be views
that a rule's EventID filter reaches, not copies of every record's texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from exhunt import schema, sources
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.winlog import common
from exhunt.winlog import sql as winsql
from exhunt.winlog.event_table import _esc

VALUES = ["", "-", "0", "42", " 42 ", "0x3e7", "0X3E7", "0xZZ", "1.5", "-7", "1_000", "abc", "true", "FALSE",
          "yes", "no", "1", "C:\\Windows\\System32\\cmd.exe", "C:/x/y.dll", "name", "NT AUTHORITY\\SYSTEM",
          "a\\b\\c", "\\lead", "trail\\", "SHA1=AB12,MD5=CD34,SHA256=EF56,IMPHASH=0A", " sha256 = Ef ,x=1",
          "SHA1=one,SHA1=two", "2022-09-22 16:31:14.259", "2022-09-22T16:31:14Z", "2022-09-22 16:31:14+02:00",
          "HKLM\\SOFTWARE\\x", "HKLM", "HKLMX\\y", "\\REGISTRY\\MACHINE\\SYSTEM", "HKU\\S-1-5", "hkcu\\Env",
          "HKCR\\.exe", 'a&b<c>"d"', "é ü 中"]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(winsql.macros())
    return c


def _sql(con: duckdb.DuckDBPyConnection, expr: str, value: str) -> Any:
    return con.execute(f"SELECT {expr}", [value]).fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("value", VALUES)
def test_sql_macros_agree_with_the_python_conversions(con: duckdb.DuckDBPyConnection, value: str) -> None:
    assert _sql(con, "win_int(?)", value) == common.to_int(value)
    assert _sql(con, "win_basename(?)", value) == common.basename(value)
    assert (_sql(con, "win_domain(?)", value), _sql(con, "win_user(?)", value)) == common.split_user(value)
    for algo in ("SHA1", "MD5", "SHA256"):
        assert _sql(con, f"win_hash(?, '{algo}')", value) == common.hashes(value).get(algo, "")
    assert _sql(con, "win_sysmon_time(?)", value) == common.sysmon_time(value)
    assert _sql(con, "win_bool(?)", value) == common.bool_text(value)
    assert _sql(con, "win_registry_key(?)", value) == common.registry_key(value)
    assert _sql(con, "win_xml(?)", value) == _esc(value)
    assert _sql(con, "win_report_id(['host', lower(?), '7'])", value) == common.report_id("host", value.lower(), 7)


def test_every_mapping_file_names_a_table_and_only_its_columns(con: duckdb.DuckDBPyConnection) -> None:
    found = winsql.mappings()
    assert {m.table for m in found} >= {"Event", "SecurityEvent", "DeviceProcessEvents", "DeviceFileEvents",
                                        "DeviceImageLoadEvents", "DeviceFileCertificateInfo"}
    raw = "SELECT 0 AS _exhunt_part, 0::BIGINT AS _exhunt_seq, '' AS _record, '' AS data, '' AS header_time, " \
          "'' AS fallback_id, '' AS _what WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP VIEW _exhunt_rawbatch AS {raw}")
    events = f"SELECT *, '' AS _source_file, NULL::TIMESTAMP AS _time FROM ({winsql.events_sql()})"
    for m in found:
        table = schema.find_table(m.table)
        assert table is not None, f"{m.name}: unknown table {m.table}"
        cols = [d[0] for d in con.execute(winsql.over(m, events) + " LIMIT 0").description]
        foreign = [c for c in cols if not c.startswith("_") and not table.has(c)]
        assert not foreign, f"{m.name}: not columns of {m.table}: {foreign}"
        assert table.time_column in cols, f"{m.name}: no {table.time_column}"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """The Security sample of the public data, or the tests' own events of several kinds when
    that is absent (either way several event ids, one of them 4688)."""
    import winlog_gen as g

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "evtx" / "samples" / "security.evtx"
    if not path.exists():
        path = g.write_jsonl(tmp_path_factory.mktemp("events") / "events.json",
                             [g.evtx_json(e) for e in (*g.NAMED, g.EX1, g.EX6)])
    session = Session(in_memory=True)
    session.load_files(list(sources.walk([path])), jobs=1)
    return session


def test_event_and_security_event_are_views_not_copies(loaded: Session) -> None:
    for name in ("Event", "SecurityEvent"):
        assert loaded.run(f'SELECT count(*) FROM "_s_{name}"')[0][0] == 0, f"{name} rows were copied"
    events = loaded.run("SELECT count(*) FROM _w_events")[0][0]
    assert events > 0
    assert loaded.run('SELECT count(*) FROM "Event"')[0][0] == events


def test_an_event_id_filter_reaches_the_stored_events(loaded: Session) -> None:
    kql = "Event | where EventID == 4688 | project TimeGenerated, RenderedDescription"
    sql = DuckDBBackend(loaded).translate(kql).sql
    plan = "\n".join(str(row[1]) for row in loaded.con.execute("EXPLAIN " + sql).fetchall())
    box = plan[plan.index("_w_events"):]
    box = box[: box.index("╰")]  # the scan's own box in the plan drawing
    assert "Filters" in box and "EventID" in box, plan


USER_MAPPING = """-- table: DeviceEvents
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId, 'ProcessTerminated' AS ActionType,
       coalesce(M['Image'], '') AS FolderPath, win_basename(M['Image']) AS FileName,
       win_int(M['ProcessId']) AS ProcessId,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID = 5
"""


def test_a_user_mapping_folder_adds_a_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user guide's example, verbatim: Sysmon 5 into DeviceEvents from $EXHUNT_WINDOWS_MAPPINGS."""
    import winlog_gen as g

    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "sysmon-5-terminated.sql").write_text(USER_MAPPING, encoding="utf-8")
    ev = g.Ev(g.SYSMON, 5, 505, "2026-03-01T11:00:00Z",
              {"UtcTime": "2026-03-01 11:00:00.000", "ProcessId": "0x10", "Image": r"C:\Temp\x.exe"})
    data = g.write_jsonl(tmp_path / "sysmon5.json", [g.evtx_json(ev)])
    monkeypatch.setenv(winsql.MAPPINGS_ENV, str(folder))
    winsql.mappings.cache_clear()
    try:
        with Session(in_memory=True) as session:
            session.load_files([sources.disk_file(data)], jobs=1)
            rows = DuckDBBackend(session).query("DeviceEvents | project ActionType, FileName, FolderPath, ProcessId, "
                                 "DeviceName, _record").to_pylist()
    finally:
        monkeypatch.delenv(winsql.MAPPINGS_ENV)
        winsql.mappings.cache_clear()
    assert rows == [{"ActionType": "ProcessTerminated", "FileName": "x.exe", "FolderPath": r"C:\Temp\x.exe",
                     "ProcessId": 16, "DeviceName": g.HOST, "_record": "line 1"}]


def test_a_mapping_without_a_table_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.errors import UsageError

    (tmp_path / "bad.sql").write_text("SELECT 1 FROM events\n", encoding="utf-8")
    monkeypatch.setenv(winsql.MAPPINGS_ENV, str(tmp_path))
    winsql.mappings.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"bad\.sql.*-- table:"):
            winsql.mappings()
    finally:
        monkeypatch.delenv(winsql.MAPPINGS_ENV)
        winsql.mappings.cache_clear()


def test_records_that_are_not_events_are_counted_with_their_line(tmp_path: Path) -> None:
    import winlog_gen as g

    good = g.write_jsonl(tmp_path / "one.json", [g.evtx_json(g.SYSMON11)]).read_text(encoding="utf-8")
    path = tmp_path / "mixed.json"
    path.write_text(good + '{"Event": {"Data": 1}}\n\n{"Event": {"System": \n' + good, encoding="utf-8")
    with Session(in_memory=True) as session:
        (report,) = session.load_files([sources.disk_file(path)], jobs=1)
        files = DuckDBBackend(session).query("DeviceFileEvents | project _record").to_pylist()
    assert (report.read, report.total_skipped) == (4, 2)
    assert dict(report.skipped) == {"not a EVTX JSON (Event.System) record": 1, "invalid JSON": 1}
    assert any("mixed.json:line 2: skipped: not a EVTX JSON" in m for m in report.messages)
    assert any("mixed.json:line 4: skipped: invalid JSON" in m for m in report.messages)
    assert sorted(r["_record"] for r in files) == ["line 1", "line 5"]


def _odd_shapes() -> list[dict[str, Any]]:
    """evtx renderings beyond the plain case: forwarded events' object-valued System fields,
    positional data beside <Binary>, #attributes inside EventData, UserData wrapping one
    element, a lone string, null data, no record number, markup and escapes in values."""
    import winlog_gen as g

    docs = [g.evtx_json(e) for e in (*g.NAMED, g.PS800, g.EX1, g.EX6)]
    fwd = g.evtx_json(g.Ev(g.SECURITY, 4688, 9001, "2026-03-02T08:00:00Z", {
        "NewProcessName": r"C:\Windows\System32\cmd.exe", "CommandLine": 'cmd /c "a & b <c>"',
        "SubjectUserName": "svc$", "SubjectDomainName": "CONTOSO", "SubjectLogonId": "0x3e7",
        "TargetUserSid": "S-1-0-0", "NewProcessId": "0x1a4", "ProcessId": "0x10",
        "MandatoryLabel": "s-1-16-12288", "TokenElevationType": "%%1937"}))
    fwd["Event"]["System"]["EventID"] = {"#attributes": {"Qualifiers": ""}, "#text": "4688"}
    fwd["Event"]["System"]["Level"] = "0"
    binary = g.evtx_json(g.Ev(("System", "Service Control Manager"), 7036, 9002, "2026-03-02T08:01:00Z"))
    binary["Event"]["EventData"] = {"Data": ["Microsoft Exchange Transport", "running"], "Binary": "4D0053"}
    attrs = g.evtx_json(g.Ev(g.SYSMON, 11, 9003, "2026-03-02T08:02:00Z", {
        "TargetFilename": r"C:\x\évil.dll", "Image": r"C:\w3wp.exe", "User": "-", "ProcessId": 7}))
    attrs["Event"]["EventData"]["#attributes"] = {"Name": "x"}
    user = g.evtx_json(g.Ev(("Application", "App"), 1000, 9004, "2026-03-02T08:03:00Z"))
    del user["Event"]["EventData"]
    user["Event"]["UserData"] = {"Wrapper": {"Inner": "v1", "Other": 2}}
    lone = g.evtx_json(g.Ev(("Application", "App"), 1001, 9005, "2026-03-02T08:04:00Z"))
    lone["Event"]["EventData"] = "just text"
    null = g.evtx_json(g.Ev(("Application", "App"), 1002, 9006, "2026-03-02T08:05:00Z"))
    null["Event"]["EventData"] = None
    norec = g.evtx_json(g.Ev(g.SYSMON, 3, 9007, "2026-03-02T08:06:00Z", {
        "Initiated": "false", "SourceIp": "10.0.0.5", "SourcePort": "443", "DestinationIp": "10.0.0.9",
        "DestinationPort": "50000", "Protocol": "tcp", "Image": r"C:\p.exe", "SourceHostname": "-"}))
    del norec["Event"]["System"]["EventRecordID"]
    registry = g.evtx_json(g.Ev(g.SYSMON, 13, 9008, "2026-03-02T08:07:00Z", {
        "EventType": "SetValue", "TargetObject": r"HKLM\SOFTWARE\x\Run\v", "Details": "DWORD (0x00000001)"}))
    return [*docs, fwd, binary, attrs, user, lone, null, norec, registry]


def test_the_sql_mapping_gives_the_python_mappings_rows(tmp_path: Path) -> None:
    """The same records as JSON lines (mapped in DuckDB) and as one JSON array (evtx_dump's
    document form, still mapped in Python) give the same rows in every table."""
    import json

    docs = _odd_shapes()
    lines = tmp_path / "lines" / "events.json"
    array = tmp_path / "array" / "events.json"
    for p in (lines, array):
        p.parent.mkdir()
    lines.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    array.write_text(json.dumps(docs, indent=1), encoding="utf-8")

    def tables(path: Path) -> dict[str, list[str]]:
        with Session(in_memory=True) as session:
            (report,) = session.load_files([sources.disk_file(path)], jobs=1)
            assert report.read == len(docs) and report.total_skipped == 0, report.messages
            # The event without a record number is identified by its file and position, which
            # the two forms write differently ("line 13", "record 13").
            ((rid, where),) = session.run('SELECT "ReportId", "_record" FROM "DeviceNetworkEvents"')
            assert rid == common.report_id("events.json", where)
            out = {}
            for name in sorted(session.tables):
                hidden = '"_record", "_source_file"' + (', "ReportId"' if name == "DeviceNetworkEvents" else "")
                rows = session.run(f'SELECT * EXCLUDE ({hidden}) FROM "{name}"')
                out[name] = sorted(repr(r) for r in rows)
            return out

    via_sql, via_python = tables(lines), tables(array)
    assert via_sql == via_python
    assert via_sql["Event"] and via_sql["SecurityEvent"] and via_sql["DeviceProcessEvents"]
