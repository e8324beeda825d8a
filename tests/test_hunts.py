"""Named hunting queries (exhunt.hunts, `exhunt hunt`), `query --file` and the result grid."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import run_cli
from exhunt import hunts
from exhunt.backends import kqltext
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.errors import RuleError, UsageError
from exhunt.kql import tree
from exhunt.output.grid import write_grid

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
RULES = {p.stem for p in (REPO / "src" / "exhunt" / "rules").glob("*.yaml")}
#: A value for each required parameter, so that every hunt can run.
REQUIRED = {"Pid": "6604", "Source": "10.1.2.3", "Dll": "Microsoft.Exchange.Security.Interop.dll",
            "Agent": "Interop"}
HOSTILE = ['x" or true or "', '"; drop table DeviceFileEvents; //', "a\nDeviceFileEvents | take 1",
           "a | where 1 == 1", "back\\slash\\", "tab\tcr\r", "\x1b[31mred"]


def _csv(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


# -- the shipped files -----------------------------------------------------------------------


def test_every_shipped_hunt_parses_and_declares_what_it_reads() -> None:
    shipped = hunts.shipped()
    assert len(shipped) >= 18
    for name, h in shipped.items():
        assert h.title and h.description, name
        assert h.rules and set(h.rules) <= RULES, (name, h.rules)
        bound = hunts.bind(h, {p.name: REQUIRED[p.name] for p in h.params if p.required})
        free = set(tree.tables(bound))
        assert not free & {p.name for p in h.params}, name  # every parameter is bound by its let
        assert {p.name for p in h.params} <= set(tree.tables(h.query)), name  # and read by the query


def test_every_rule_guide_points_at_a_hunt_that_exists() -> None:
    shipped = hunts.shipped()
    named = set()
    for guide in (REPO / "docs" / "rules").glob("*.md"):
        text = guide.read_text(encoding="utf-8")
        for part in text.split("exhunt hunt ")[1:]:
            named.add(part.split()[0].strip("`"))
    named -= {"NAME", "list", "show"}
    assert named and named <= set(shipped), named - set(shipped)
    assert set(shipped) <= named  # every hunt is reachable from a guide


def test_every_shipped_hunt_runs_on_the_demo() -> None:
    for name, h in hunts.shipped().items():
        args = ["hunt", name, str(DEMO), "-q", "-f", "json"]
        for p in h.params:
            if p.required:
                args += ["--param", f"{p.name}={REQUIRED[p.name]}"]
        code, out, err = run_cli(args)
        assert code == 0, (name, err)
        assert isinstance(json.loads(out), list)


# -- exact rows on the demo --------------------------------------------------------------------


def test_transport_errors_on_the_demo() -> None:
    code, out, _ = run_cli(["hunt", "transport-errors", str(DEMO), "-q", "-f", "csv"])
    assert code == 0
    rows = _csv(out)
    assert [(r["TimeGenerated"], r["Source"], r["EventID"]) for r in rows] == [
        ("2026-11-21T02:05:40.000000Z", "MSExchangeTransport", "7001"),
        ("2026-11-22T11:40:12.000000Z", "MSExchange Extensibility", "1050"),
        ("2026-11-22T16:02:30.000000Z", "MSExchange Extensibility", "1050"),
    ]
    assert "Security Interop Agent" in rows[1]["RenderedDescription"]


def test_pickup_writes_on_the_demo_and_the_time_range() -> None:
    code, out, _ = run_cli(["hunt", "pickup-writes", str(DEMO), "-q", "-f", "csv"])
    assert code == 0
    assert [(r["Timestamp"][:19], r["FileName"], r["InitiatingProcessFileName"]) for r in _csv(out)] == [
        ("2026-11-21T09:12:07", "msg25478016", "EdgeTransport.exe"),
        ("2026-11-22T07:30:02", "alert-20261122-0730.eml", "SendAlert.exe"),
        ("2026-11-22T07:30:05", "alert-20261122-0730.bad", "EdgeTransport.exe"),
        ("2026-11-23T14:06:30", "msg130203359", "EdgeTransport.exe"),
    ]
    code, out, _ = run_cli(["hunt", "pickup-writes", str(DEMO), "-q", "-f", "csv",
                            "--from", "2026-11-22", "--to", "2026-11-22"])
    assert code == 0
    assert [r["FileName"] for r in _csv(out)] == ["alert-20261122-0730.eml", "alert-20261122-0730.bad"]


def test_transport_loads_on_the_demo_matches_the_dll_case_insensitively() -> None:
    code, out, _ = run_cli(["hunt", "transport-loads", str(DEMO), "-q", "-f", "csv",
                            "--param", "Dll=microsoft.exchange.security.interop.DLL"])
    assert code == 0
    assert [(r["Timestamp"][:19], r["FolderPath"]) for r in _csv(out)] == [
        ("2026-11-21T02:05:39", r"C:\Windows\Temp\Microsoft.Exchange.Security.Interop.dll"),
        ("2026-11-21T02:17:58", r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents\Hygiene"
                                r"\Microsoft.Exchange.Security.Interop.dll"),
    ]


def test_process_activity_on_the_demo() -> None:
    code, out, _ = run_cli(["hunt", "process-activity", str(DEMO), "-q", "-f", "csv", "-p", "Pid=6604",
                            "-p", "Host=EXCH01.CONTOSO.LOCAL"])
    assert code == 0
    assert [(r["ActionType"], r["FileName"]) for r in _csv(out)] == [
        ("ProcessCreated", "powershell.exe"), ("FileCreated", "Microsoft.Exchange.Security.Interop.dll"),
        # its child, the PowerShell that installs the agent (its parent is pid 6604)
        ("ProcessCreated", "powershell.exe")]
    code, out, _ = run_cli(["hunt", "process-activity", str(DEMO), "-q", "-f", "csv", "-p", "Pid=6604",
                            "-p", "Host=exch02.contoso.local"])
    assert code == 0 and _csv(out) == []


def test_exchange_folder_writes_around_a_moment() -> None:
    code, out, _ = run_cli(["hunt", "exchange-folder-writes", str(DEMO), "-q", "-f", "csv",
                            "-p", "At=2026-11-21T02:17:09Z", "-p", "Around=1m"])
    assert code == 0
    assert [(r["Timestamp"][:19], r["FolderPath"].rsplit("\\", 1)[1]) for r in _csv(out)] == [
        ("2026-11-21T02:16:40", "exdbdata.dll"),
        ("2026-11-21T02:16:41", "winmail.dat"),
        ("2026-11-21T02:17:09", "Microsoft.Exchange.Security.Interop.dll"),
        ("2026-11-21T02:17:31", "agents.config"),
    ]
    code, out, _ = run_cli(["hunt", "exchange-folder-writes", str(DEMO), "-q", "-f", "csv",
                            "-p", "At=2026-11-21T02:17:09Z", "-p", "Around=20s"])
    assert [r["FolderPath"].rsplit("\\", 1)[1] for r in _csv(out)] == ["Microsoft.Exchange.Security.Interop.dll"]


# -- parameters: hostile values stay literals ----------------------------------------------------


@pytest.fixture
def hostile_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rows: list[dict[str, Any]] = []
    for i, host in enumerate(["exch01.contoso.local", *HOSTILE]):
        rows.append({"Timestamp": f"2026-03-04T10:00:0{i}.0000000Z", "DeviceName": host,
                     "ActionType": "FileCreated", "FileName": f"msg{i}",
                     "FolderPath": rf"C:\Exchange\TransportRoles\Pickup\msg{i}",
                     "InitiatingProcessFileName": "EdgeTransport.exe", "InitiatingProcessId": 100 + i})
    helpers.write_jsonl(folder / "DeviceFileEvents.jsonl", "DeviceFileEvents", rows)
    return folder


def test_bind_writes_each_value_as_one_literal_let() -> None:
    h = hunts.get("pickup-writes")
    for value in HOSTILE:
        bound = hunts.bind(h, {"Host": value}, separators=True)
        assert bound == f"let Host = {kqltext.string(value, True)};\n{h.query}"
        assert "\n" not in bound.split(";\n", 1)[0]  # the value cannot break the let's line
        assert set(tree.tables(bound)) & {"Host"} == set()


def test_hostile_values_match_only_themselves(hostile_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    original = DuckDBBackend.query

    def spy(self: DuckDBBackend, kql: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(kql)
        return original(self, kql, *args, **kwargs)

    monkeypatch.setattr(DuckDBBackend, "query", spy)
    for i, value in enumerate(HOSTILE, 1):
        sent.clear()
        code, out, err = run_cli(["hunt", "pickup-writes", str(hostile_data), "-q", "-f", "json",
                                  "--param", f"Host={value}"])
        assert code == 0, err
        rows = json.loads(out)
        assert [(r["DeviceName"], r["FileName"]) for r in rows] == [(value, f"msg{i}")]
        assert sent == [hunts.bind(hunts.get("pickup-writes"), {"Host": value}, separators=True)]
    # a value that would widen the filter if pasted as text matches nothing here
    code, out, _ = run_cli(["hunt", "pickup-writes", str(hostile_data), "-q", "-f", "json",
                            "--param", 'Host=nohost" or DeviceName != "'])
    assert code == 0 and json.loads(out) == []


def test_a_separator_is_refused_for_a_remote_engine_only() -> None:
    h = hunts.get("pickup-writes")
    assert "\u2028" in hunts.bind(h, {"Host": "a\u2028b"}, separators=True)
    with pytest.raises(UsageError, match="separator"):
        hunts.bind(h, {"Host": "a\u2028b"}, separators=False)


def test_typed_parameters_become_typed_literals() -> None:
    h = hunts.get("exchange-folder-writes")
    bound = hunts.bind(h, {"At": "2026-11-21T03:17:09+01:00", "Around": "90m"})
    assert bound.splitlines()[:3] == ['let Host = "";', "let At = datetime(2026-11-21T02:17:09.000000Z);",
                                      "let Around = time(0.01:30:00.000000);"]
    assert hunts.bind(h, {}).splitlines()[1] == "let At = datetime(null);"
    assert hunts.bind(hunts.get("process-activity"), {"Pid": "-42"}).splitlines()[0] == "let Pid = long(-42);"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["hunt", "no-such-hunt", "DEMO"], "no hunt named 'no-such-hunt'"),
    (["hunt", "show", "no-such-hunt"], "no hunt named 'no-such-hunt'"),
    (["hunt", "pickup-writes", "DEMO", "--param", "Nope=1"], "has no parameter 'Nope'"),
    (["hunt", "pickup-writes", "DEMO", "--param", "Host"], "give NAME=VALUE"),
    (["hunt", "pickup-writes", "DEMO", "--param", "Host=a", "--param", "Host=b"], "given twice"),
    (["hunt", "process-activity", "DEMO"], "needs --param Pid"),
    (["hunt", "process-activity", "DEMO", "-p", "Pid=12; drop"], "is not a long"),
    (["hunt", "process-activity", "DEMO", "-p", "Pid=99999999999999999999"], "is not a long"),
    (["hunt", "exchange-folder-writes", "DEMO", "-p", "At=yesterday"], "not an ISO-8601 date-time"),
    (["hunt", "exchange-folder-writes", "DEMO", "-p", "Around=2 hours"], "not a time span"),
    (["hunt", "pickup-writes", "DEMO", "-f", "xml"], "--format must be one of"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, out, err = run_cli([str(DEMO) if a == "DEMO" else a for a in args])
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""


def test_a_bad_header_is_named_with_its_line() -> None:
    with pytest.raises(RuleError, match=r"x\.kql:2: 'int' is no parameter type"):
        hunts.parse("// name: x\n// param A: int\nT | where a == A", "x.kql")
    with pytest.raises(RuleError, match="declared but the query never reads it"):
        hunts.parse("// name: x\n// title: t\n// description: d\n// rules: r\n// param A: long = 1\nT | take 1",
                    "x.kql")
    with pytest.raises(RuleError, match="cannot name a hunt"):
        hunts.parse("// name: list\n// title: t\n// description: d\n// rules: r\nT | take 1", "x.kql")
    with pytest.raises(RuleError, match="default is a JSON string"):
        hunts.parse("// name: x\n// title: t\n// description: d\n// rules: r\n// param A: string = abc\n"
                    "T | where a == A", "x.kql")


def test_list_and_show() -> None:
    code, out, _ = run_cli(["hunt", "list"])
    assert code == 0
    for name in hunts.shipped():
        assert name in out
    code, out, _ = run_cli(["hunt", "show", "exchange-folder-writes"])
    assert code == 0
    assert "At: datetime = null" in out and "Around: timespan = 2h" in out and 'Host: string = ""' in out
    assert hunts.get("exchange-folder-writes").query in out


# -- query --file ----------------------------------------------------------------------------


def test_query_from_a_file(tmp_path: Path) -> None:
    q = tmp_path / "q.kql"
    q.write_text("// comment\nEvent\n| where EventID == 7001\n| project Computer, EventID\n", encoding="utf-8")
    code, out, err = run_cli(["query", "--file", str(q), str(DEMO), "-q", "-f", "csv"])
    assert code == 0, err
    assert _csv(out) == [{"Computer": "exch01.contoso.local", "EventID": "7001"}]
    code, _, err = run_cli(["query", "--file", str(q), "Event | take 1", str(DEMO)])
    assert code == 2 and "two queries" in err
    code, _, err = run_cli(["query", "--file", str(tmp_path / "missing.kql"), str(DEMO)])
    assert code == 2 and "missing.kql" in err
    code, _, err = run_cli(["query"])
    assert code == 2


# -- the grid --------------------------------------------------------------------------------


def test_query_prints_a_grid_of_its_own_columns() -> None:
    code, out, _ = run_cli(["query", "Event | where EventID == 7001 | project Computer, EventID, Source",
                            str(DEMO), "-q"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Computer", "EventID", "Source"]
    assert lines[1].split() == ["exch01.contoso.local", "7001", "MSExchangeTransport"]
    assert "Rule" not in out and "Severity" not in out  # not the alert layout


def test_grid_escapes_control_characters_and_notes_what_it_cuts() -> None:
    buf = io.StringIO()
    rows = [{"a\x1b]0;t\x07": "x\x1b[2Jy\u202e", "long": "z" * 100, "n": None, "d": {"k": [1]}}]
    write_grid(rows, ["a\x1b]0;t\x07", "long", "n", "d"], buf, width=200)
    out = buf.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "a\\x1b]0;t\\x07" in out and "x\\x1b[2Jy\\u202e" in out
    assert '{"k":[1]}' in out
    assert "1 value(s) cut to fit (at most 60 characters)" in out
    narrow = io.StringIO()
    write_grid([{f"column{i}": "v" * 20 for i in range(10)}], [f"column{i}" for i in range(10)], narrow, width=80)
    text = narrow.getvalue()
    header, row = text.splitlines()[:2]
    assert header.split() == ["column0", "column1", "column2", "column3"]  # the fourth narrowed to the room left
    assert row.split()[3] == "v" * 13 + "…"
    assert "6 column(s) not shown for width: column4, column5" in text
    assert "1 value(s) cut to fit" in text
    assert all(len(line) <= 80 for line in text.splitlines()[:2])
