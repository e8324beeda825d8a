"""CLI conventions: --version, --min-severity, --from/--to, --timezone, `rules list` columns,
`rules show` into a file, and the input table (names whole, `used` > `read` explained)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import helpers
import winlog_gen as wg
from conftest import run_cli
from exhunt import __version__
from exhunt.rule import shipped_dir

SEED = "exchange-transport-agent-seed"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    helpers.FORMATS["portal-csv"][1](folder)
    return folder


def _jsonl(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# -- --version -----------------------------------------------------------------------


def test_version() -> None:
    code, out, _ = run_cli(["--version"])
    assert code == 0
    assert out == f"exhunt {__version__}\n"


# -- --min-severity --------------------------------------------------------------------


def test_min_severity_shows_alerts_at_or_above_and_counts_the_rest(data: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    helpers.seed_rule(rules, "crit")  # the seed rule: critical
    helpers.seed_rule(rules, "med", name="Medium copy", severity="Medium", exhunt__severity="medium")
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat",
                              "--min-severity", "high"])
    assert code == 0, err
    assert [(a["severity"], a["rule_name"]) for a in _jsonl(out)] == [("critical", _seed_name())] * 3
    assert "3 alert(s) from 2 rule(s). 3 alert(s) below --min-severity high not shown." in err
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat",
                              "--min-severity", "MEDIUM"])
    assert len(_jsonl(out)) == 6 and "0 alert(s) below --min-severity MEDIUM" in err


def _seed_name() -> str:
    return str(yaml.safe_load((shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8"))["name"])


# -- --from / --to ---------------------------------------------------------------------

# helpers rows: files at 03-01 10:00:00.123456, 03-01 11:30, 03-02 08:00:00.5; processes at
# 03-01 12:00:00.999999, 03-03 09:15:00.000000(1), 03-03 09:20. Seed alerts: 03-01 10:00,
# 03-01 12:00, 03-03 09:15.


@pytest.mark.parametrize(("start", "end", "times", "outside"), [
    ("2026-03-01T11:00:00Z", "2026-03-02", ["2026-03-01T12:00:00.999999Z"], 3),
    ("2026-03-01T11:00:00Z", "2026-03-03", ["2026-03-01T12:00:00.999999Z", "2026-03-03T09:15:00.000000Z"], 1),
    # Both ends are included, to the microsecond; an offset is converted to UTC.
    ("2026-03-01T13:00:00.999999+01:00", "2026-03-01T12:00:00.999999Z", ["2026-03-01T12:00:00.999999Z"], 5),
    ("2026-03-01", None, [t for t, _, _ in helpers.EXPECTED_DETECTIONS], 0),
    (None, "2026-03-01T10:00:00.123456Z", ["2026-03-01T10:00:00.123456Z"], 5),
])
def test_from_to_hunt_only_that_span_and_count_the_rest(data: Path, start: str | None, end: str | None,
                                                        times: list[str], outside: int) -> None:
    args = ["detect", str(data), "--rules", SEED, "-f", "jsonl", "--flat", "--strict"]
    args += ["--from", start] if start else []
    args += ["--to", end] if end else []
    code, out, err = run_cli(args)
    assert code == 0, err  # rows left out on purpose are not a --strict problem
    assert [a["Timestamp"] for a in _jsonl(out)] == times
    flat = " ".join(err.split())
    assert f"Total: 6 records read, {6 - outside} used, {outside} skipped." in flat
    assert (f"skipped {outside}: outside --from/--to" in flat) == (outside > 0)


def test_from_to_filter_the_data_not_the_alerts(data: Path) -> None:
    """A rule counting rows counts only those in the span (as if the export were cut there)."""
    q = "DeviceProcessEvents | summarize n = count()"
    code, out, err = run_cli(["query", q, str(data), "-f", "jsonl", "--from", "2026-03-03T09:16:00Z"])
    assert code == 0, err
    assert _jsonl(out) == [{"n": 1}]
    code, out, _ = run_cli(["query", q, str(data), "-f", "jsonl", "-q"])
    assert _jsonl(out) == [{"n": 3}]


def test_from_to_with_windowed_replay(data: Path, tmp_path: Path) -> None:
    """A rule replayed window by window (it aggregates) sees only the span's rows too."""
    rule = helpers.seed_rule(tmp_path / "rules", "agg", query="DeviceProcessEvents | summarize n = count(), "
                 "Timestamp = max(Timestamp) by DeviceName | where n >= 2")
    code, out, err = run_cli(["detect", str(data), "--rules", str(rule), "-f", "jsonl", "--flat", "-q"])
    assert code == 0, err
    assert {a["n"] for a in _jsonl(out)} == {2}  # the two 03-03 processes in one 24h window
    code, out, err = run_cli(["detect", str(data), "--rules", str(rule), "-f", "jsonl", "--flat", "-q",
                              "--from", "2026-03-03T09:16:00Z"])
    assert code == 0, err
    assert _jsonl(out) == []


# -- --timezone ------------------------------------------------------------------------


def test_timezone_changes_table_and_csv_not_json(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    base = ["detect", str(data), "--rules", SEED, "-q", "--flat"]
    code, out, _ = run_cli([*base, "--timezone", "+02:00"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Time (+02:00)")
    assert lines[1].startswith("2026-03-01 12:00  CRIT")
    code, out, _ = run_cli([*base, "--timezone", "Europe/Berlin", "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["Timestamp"] for r in rows] == ["2026-03-01T11:00:00.123456+01:00", "2026-03-01T13:00:00.999999+01:00",
                                             "2026-03-03T10:15:00.000000+01:00"]
    code, out, _ = run_cli([*base, "--timezone", "Europe/Berlin"])
    assert "times in Europe/Berlin" in out and "2026-03-01 11:00" in out
    code, out, _ = run_cli([*base, "--timezone", "Europe/Berlin", "-f", "jsonl"])
    assert [a["Timestamp"] for a in _jsonl(out)] == [t for t, _, _ in helpers.EXPECTED_DETECTIONS]


def test_timezone_in_query_converts_time_columns_only(data: Path) -> None:
    q = ('DeviceProcessEvents | where ProcessId == 5123 '
         '| project Timestamp, Text = "2026-03-01T12:00:00.000000Z", ProcessId')
    code, out, err = run_cli(["query", q, str(data), "-f", "csv", "-q", "--timezone", "-05:30"])
    assert code == 0, err
    assert list(csv.DictReader(io.StringIO(out))) == [
        {"Timestamp": "2026-03-01T06:30:00.999999-05:30", "Text": "2026-03-01T12:00:00.000000Z", "ProcessId": "5123"}]


@pytest.mark.parametrize(("args", "message"), [
    (["--min-severity", "severe"], "--min-severity must be one of"),
    (["--from", "yesterday"], "--from: 'yesterday' is not an ISO-8601 date"),
    (["--to", "2026-13-01"], "--to: '2026-13-01' is not an ISO-8601 date"),
    (["--from", "2026-03-02", "--to", "2026-03-01T23:00:00Z"], "--from (2026-03-02T00:00:00Z) is after --to"),
    (["--timezone", "Mars/Olympus_Mons"], "--timezone: 'Mars/Olympus_Mons' is not a time zone"),
    (["--timezone", "+25:00"], "--timezone: '+25:00' is not a UTC offset"),
    (["--timezone", "../../etc/passwd"], "is not a time zone"),
])
def test_bad_option_values_are_one_line_usage_errors(data: Path, args: list[str], message: str) -> None:
    code, out, err = run_cli(["detect", str(data), *args])
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err


# -- rules list / rules show ---------------------------------------------------------


def test_rules_list_has_a_header_and_aligned_columns(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    helpers.seed_rule(folder, "a")
    helpers.seed_rule(folder, "a-much-longer-rule-file-name-than-any-shipped-rule-has", relevantTechniques=[
        "T1505.002", "T1059.001", "T1543.003"], severity="Low", exhunt__severity="informational")
    code, out, _ = run_cli(["rules", "list", str(folder)])
    assert code == 0
    lines = out.splitlines()
    assert lines == [
        "RULE                                                    SEVERITY       TECHNIQUES"
        "                     TABLES",
        "a-much-longer-rule-file-name-than-any-shipped-rule-has  informational  T1505.002,T1059.001,T1543.003"
        "  DeviceFileEvents, DeviceProcessEvents",
        "a                                                       critical       T1505.002"
        "                      DeviceFileEvents, DeviceProcessEvents",
    ]


def test_rules_list_of_shipped_rules_is_aligned() -> None:
    code, out, _ = run_cli(["rules", "list"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RULE", "SEVERITY", "TECHNIQUES", "TABLES"]
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    for line in lines[1:]:
        for col in starts[1:]:
            assert line[col - 1] == " " and line[col] != " ", (line, col)


def test_rules_show_into_a_file_keeps_the_query_verbatim(tmp_path: Path) -> None:
    long_line = ('| where InitiatingProcessCommandLine has_any ("Install-TransportAgent", "Enable-TransportAgent", '
                 '"Set-TransportAgent", "New-TransportRule")  // a line far wider than 80 columns')
    query = "DeviceProcessEvents\n" + long_line + "\n| project Timestamp, DeviceName"
    rule = helpers.seed_rule(tmp_path / "rules", "wide", query=query, description="A description" + " word" * 40)
    out_file = tmp_path / "shown.txt"
    code, out, _ = run_cli(["rules", "show", str(rule)])
    assert code == 0
    out_file.write_text(out, encoding="utf-8")
    text = out_file.read_text(encoding="utf-8")
    assert query in text
    assert long_line in text.splitlines()
    assert "A description" + " word" * 40 in text.splitlines()


# -- the input table --------------------------------------------------------------------


def test_input_table_keeps_long_file_names_whole_when_not_a_terminal(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = tmp_path / ("case-2026-0042-exchange-transport-agent-hunt-" * 3) / "host-exch01.contoso.local"
    deep.mkdir(parents=True)
    path = helpers.write_csv(deep / "DeviceFileEvents_exported_from_the_portal.csv", "DeviceFileEvents",
                             helpers.FILE_ROWS)
    code, _, err = run_cli(["detect", str(path), "--rules", SEED])
    assert code == 0
    (line,) = [x for x in err.splitlines() if "DeviceFileEvents_exported" in x]
    assert line.startswith(str(path) + "  mde-csv")


def test_input_table_in_a_terminal_shortens_names_in_the_middle(monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt import summary
    from exhunt.sources.base import FileReport

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "90")
    name = "/cases/" + "x" * 80 + "/DeviceFileEvents_2026.csv"
    report = FileReport(name, "mde-csv", 3)
    report.used["DeviceFileEvents"] = 3
    out = Tty()
    summary.render([report], out)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    (line,) = [x for x in text.splitlines() if "DeviceFileEvents_2026.csv" in x]
    assert line.startswith("/cases/xxxx") and "…" in line
    assert max(len(x) for x in text.splitlines()) <= 90
    assert summary.middle(name, 42) == "/cases/xxxxxx…xx/DeviceFileEvents_2026.csv"
    assert len(summary.middle(name, 42)) == 42


def test_input_table_says_why_used_exceeds_read(tmp_path: Path) -> None:
    """One 4104 script block naming two cmdlets: one record, an Event row and two DeviceEvents rows."""
    ev = wg.Ev(wg.PS_OP, 4104, 7, "2026-03-01T10:00:00.0000000Z", {
        "MessageNumber": 1, "MessageTotal": 1, "ScriptBlockId": "{b1}", "Path": "",
        "ScriptBlockText": "Install-TransportAgent -Name X -AssemblyPath C:\\x.dll; Enable-TransportAgent X"})
    path = wg.write_jsonl(tmp_path / "ps.json", [wg.evtx_json(ev)])
    code, _, err = run_cli(["query", "DeviceEvents | count", str(path), "-f", "jsonl"])
    assert code == 0, err
    (line,) = [x for x in err.splitlines() if x.startswith(str(path))]
    assert line.split()[2:5] == ["1", "3*", "0"]
    assert "DeviceEvents 2; Event 1" in line
    flat = " ".join(err.split())
    assert ("* used counts the table rows made, which can exceed the records read: a Windows event becomes "
            "an Event row and a row of each other table it maps to") in flat
    assert "one DeviceEvents row per command it ran." in flat
