"""`exhunt detect --tuning / --known-vendors / --show-suppressed` end to end: the demo's vendor
agent silenced by the documented entry, a same-named agent from a foreign path still alerting,
outputs, the run summary, exit codes, and hostile tuning values and file names."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import helpers
from conftest import REPO, run_cli
from exhunt import tuning
from exhunt.backends.duckdb import DuckDBBackend

DEMO = REPO / "demo"
FABRIKAM_TUNING = REPO / "docs" / "examples" / "tuning-fabrikam.yaml"
CMDLET = "exchange-transport-agent-cmdlet"
FAB_DLL = helpers.EXCH + r"\TransportRoles\agents\Fabrikam\Fabrikam.Disclaimer.Agent.dll"
FAB_FACTORY = "Fabrikam.Disclaimer.Agent.DisclaimerAgentFactory"


@pytest.fixture(autouse=True)
def today(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Before the example's expiry (2027-06-30), whatever the machine's clock says."""
    monkeypatch.setattr(tuning, "today_utc", lambda: date(2026, 12, 1))
    yield


def ps(minute: int, text: str) -> dict[str, Any]:
    return {"Timestamp": f"2026-11-20T10:{minute:02d}:00.0000000Z", "DeviceName": helpers.HOST,
            "ActionType": "ProcessCreated", "FileName": "powershell.exe",
            "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe", "ProcessCommandLine": text,
            "ProcessId": 100 + minute, "AccountName": "exadmin", "InitiatingProcessFileName": "explorer.exe",
            "ReportId": 1000 + minute}


def install(path: str, factory: str = FAB_FACTORY, name: str = "Fabrikam Disclaimer Agent") -> str:
    return (f"powershell.exe -c \"Install-TransportAgent -Name '{name}' -TransportAgentFactory {factory} "
            f"-AssemblyPath '{path}'\"")


#: The approved agent installed and enabled, and two LightNeuron-style agents of the same name.
ROWS = [
    ps(0, install(FAB_DLL)),
    ps(1, install(r"C:\Windows\Temp\Fabrikam.Disclaimer.Agent.dll")),
    ps(2, install(FAB_DLL, "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory")),
    ps(3, "powershell.exe -c \"Enable-TransportAgent -Identity 'Fabrikam Disclaimer Agent'\""),
]


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    helpers.write_csv(folder / "DeviceProcessEvents.csv", "DeviceProcessEvents", ROWS)
    return folder


def detect(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run_cli(["detect", "--flat", *args, "-f", "json"])
    return code, json.loads(out) if out.strip() else [], err


def lines_of(err: str) -> list[str]:
    return [" ".join(line.split()) for line in err.splitlines()]


# -- the "done when" case -------------------------------------------------------------------------


def test_the_documented_entry_silences_the_demo_vendor_agent_and_nothing_else() -> None:
    code, plain, _ = detect(str(DEMO))
    # The demo's two alerts for the approved agent: its Install (with path) and Enable (name only).
    fabrikam = {a["alert_id"]: a["Cmdlet"] for a in plain if a.get("AgentName") == "Fabrikam Disclaimer Agent"}
    assert code == 0 and len(plain) == 38
    assert sorted(fabrikam.values()) == ["Enable-TransportAgent", "Install-TransportAgent"]
    fabrikam_ids = set(fabrikam)
    code, tuned, err = detect(str(DEMO), "--tuning", str(FABRIKAM_TUNING))
    assert code == 0 and len(tuned) == 36
    assert [a["alert_id"] for a in tuned] == [a["alert_id"] for a in plain if a["alert_id"] not in fabrikam_ids]
    assert sum("Cmdlet" in a for a in tuned) == 5 and sum("Cmdlet" in a for a in plain) == 7
    assert not any("Fabrikam" in json.dumps(a) for a in tuned)
    assert "suppressed_by" not in json.dumps(tuned)  # without --show-suppressed the output is unchanged
    text = lines_of(err)
    assert f"tuning: 2 alert(s) suppressed by fabrikam-disclaimer-agent ({FABRIKAM_TUNING}:6): Approved Fabrikam " \
           "disclaimer agent, change CHG-1042 (owner mail-team, until 2027-06-30)" in text
    assert "36 alert(s) from 10 rule(s)." in text
    assert "tuning: 2 alert(s) suppressed by 1 of 1 entry." in text


def test_a_same_named_agent_from_a_foreign_path_or_factory_still_alerts(agents: Path) -> None:
    code, plain, _ = detect(str(agents), "-r", CMDLET)
    assert code == 0 and [a["source_record"] for a in plain] == ["line 2", "line 3", "line 4", "line 5"]
    code, tuned, err = detect(str(agents), "-r", CMDLET, "--tuning", str(FABRIKAM_TUNING))
    assert code == 0
    assert [(a["AssemblyPath"], a["TransportAgentFactory"], a["Escalation"]) for a in tuned] == [
        (r"C:\Windows\Temp\Fabrikam.Disclaimer.Agent.dll", FAB_FACTORY, "critical"),
        (FAB_DLL, "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory", "critical"),
    ]
    # the approved install and the Enable (which names the agent only) are the two suppressed
    assert "tuning: 2 alert(s) suppressed by fabrikam-disclaimer-agent" in " ".join(lines_of(err))


def test_show_suppressed_lists_them_with_the_entry_in_every_format(agents: Path) -> None:
    base = ["detect", "--flat", str(agents), "-r", CMDLET, "--tuning", str(FABRIKAM_TUNING), "--show-suppressed"]
    code, out, _ = run_cli([*base, "-f", "json"])
    rows = json.loads(out)
    assert code == 0 and [r["source_record"] for r in rows] == ["line 3", "line 4", "line 2", "line 5"]
    assert [r["suppressed_by"] for r in rows[:2]] == [None, None]
    tag = {"entry": f"{FABRIKAM_TUNING}:6", "id": "fabrikam-disclaimer-agent", "rule": CMDLET,
           "reason": "Approved Fabrikam disclaimer agent, change CHG-1042", "owner": "mail-team",
           "expires": "2027-06-30"}
    assert rows[2]["suppressed_by"] == tag and rows[3]["suppressed_by"] == tag
    code, out, _ = run_cli([*base, "-f", "jsonl"])
    assert [json.loads(line) for line in out.splitlines()] == rows
    code, out, _ = run_cli([*base, "-f", "csv"])
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["suppressed_by"] for r in table[:2]] == ["", ""]
    assert [json.loads(r["suppressed_by"]) for r in table[2:]] == [tag, tag]
    code, out, _ = run_cli([*base, "-f", "table"])
    flat = " ".join(out.split())
    main, _, section = flat.partition("Suppressed by tuning: 2 alert(s)")
    assert section and main.count("Exchange transport-agent cmdlet") == 2 and "[suppressed" not in main
    assert section.count("[suppressed by fabrikam-disclaimer-agent]") == 2
    assert "Enable-TransportAgent" in section and "Temp" not in section


def test_show_suppressed_follows_min_severity_and_adds_no_empty_section(agents: Path) -> None:
    tuned = ["-r", CMDLET, "--tuning", str(FABRIKAM_TUNING), "--show-suppressed"]
    code, rows, _ = detect(str(agents), *tuned, "--min-severity", "critical")  # the rule's alerts are high
    assert code == 0 and rows == []
    code, rows, _ = detect(str(agents), *tuned, "--min-severity", "high")
    assert [r["suppressed_by"] is None for r in rows] == [True, True, False, False]
    code, out, _ = run_cli(["detect", "--flat", str(agents), "-r", CMDLET, "--show-suppressed"])
    assert code == 0 and "Suppressed by tuning" not in out and out.count("No alerts.") == 0
    code, rows, _ = detect(str(agents), "-r", CMDLET, "--show-suppressed")
    assert len(rows) == 4 and [r["suppressed_by"] for r in rows] == [None] * 4


def test_a_suppressed_alert_does_not_fail_the_run(agents: Path, tmp_path: Path) -> None:
    code, _, _ = detect(str(agents), "-r", CMDLET, "--fail-on", "high")
    assert code == 1
    everything = tmp_path / "all.yaml"
    everything.write_text(f"- rule: {CMDLET}\n  match: {{AgentName: {{has: fabrikam}}}}\n  reason: test\n"
                          "  owner: me\n  expires: 2027-01-01\n")
    code, rows, _ = detect(str(agents), "-r", CMDLET, "--fail-on", "high", "--tuning", str(everything))
    assert code == 0 and rows == []
    code, rows, _ = detect(str(agents), "-r", CMDLET, "--fail-on", "high", "--tuning", str(everything),
                           "--show-suppressed")
    assert code == 0 and len(rows) == 4 and all(r["suppressed_by"] for r in rows)
    code, rows, _ = detect(str(agents), "-r", CMDLET, "--fail-on", "high", "--tuning", str(FABRIKAM_TUNING))
    assert code == 1 and len(rows) == 2


def test_expired_and_stale_entries_are_reported_and_expired_ones_not_applied(
        agents: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("- rule: '*'\n  match: {AgentName: {equals: Nobody}}\n  reason: old change\n  owner: ops\n")
    monkeypatch.setattr(tuning, "today_utc", lambda: date(2027, 7, 1))
    code, rows, err = detect(str(agents), "-r", CMDLET, "--tuning", str(FABRIKAM_TUNING), "--tuning", str(extra))
    assert code == 0 and len(rows) == 4
    text = lines_of(err)
    assert f"warning: tuning entry fabrikam-disclaimer-agent ({FABRIKAM_TUNING}:6) expired on 2027-06-30 and is " \
           "not applied; 2 alert(s) it matches are shown: Approved Fabrikam disclaimer agent, change CHG-1042 " \
           "(owner mail-team)" in text
    assert f"tuning entry {extra}:1 matched no alert (stale?): old change (owner ops)" in text
    assert f"warning: {extra}:1: the entry has no expires date; it suppresses until someone removes it" in text
    assert "tuning: 0 alert(s) suppressed by 0 of 2 entries (1 expired)." in text
    code, _, err = run_cli(["detect", "--flat", str(agents), "-r", CMDLET, "--tuning", str(extra), "--quiet"])
    assert code == 0 and err == ""


def test_known_vendors_flag_suppresses_a_vendor_install(tmp_path: Path) -> None:
    dll = r"E:\Program Files (x86)\Symantec\SMSMSE\8.0\Server\Symantec.MailSecurity.Server.TransportAgent.dll"
    factory = "Symantec.MailSecurity.Server.TransportAgent.SMSMSERoutingAgentFactory"
    rows = [ps(0, install(dll, factory, "SMSMSERoutingAgent")),
            ps(1, install(r"C:\Windows\Temp\Symantec.MailSecurity.Server.TransportAgent.dll", factory,
                          "SMSMSERoutingAgent"))]
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", rows)
    code, plain, _ = detect(str(tmp_path), "-r", CMDLET)
    assert code == 0 and len(plain) == 2
    code, tuned, err = detect(str(tmp_path), "-r", CMDLET, "--known-vendors")
    assert code == 0 and [a["source_record"] for a in tuned] == ["line 3"]
    assert "tuning: 1 alert(s) suppressed by symantec-smsmse-routing-agent (exhunt:known-vendors.yaml:" in err
    assert "stale" not in err


def test_a_malformed_tuning_file_fails_before_any_input_is_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: '*'\n  match: {AgentName: {equal: x}}\n  reason: r\n  owner: o\n  expires: soon\n")
    code, out, err = run_cli(["detect", "--flat", str(tmp_path / "no-such-input"), "--tuning", str(bad)])
    assert code == 2 and out == ""
    assert " ".join(err.split()) == (f"error: tuning file {bad}: 2 problems: {bad}:2: unknown operator 'equal' on "
                                     "AgentName (use one of equals, in, startswith, endswith, contains, has, regex, "
                                     f"empty, not); {bad}:5: expires must be a date (YYYY-MM-DD), not the value "
                                     "'soon'")
    code, _, err = run_cli(["detect", "--flat", str(tmp_path), "--tuning", str(tmp_path / "missing.yaml")])
    assert code == 2 and f"--tuning: cannot read {tmp_path / 'missing.yaml'}" in err and "Traceback" not in err


# -- hostile values and file names ----------------------------------------------------------------------


INJECTIONS = ["' or 1=1 --", '"; DROP TABLE x; --', "| where true", "DeviceProcessEvents | take 1",
              "'); SELECT 1; --", "x\" or \"1\"==\"1", "${jndi:ldap://x}", "*/ union * /*"]


def hostile_tuning(path: Path) -> Path:
    """Entries whose every value is query text; the last also has terminal escapes in its reason."""
    out = []
    for i, text in enumerate(INJECTIONS):
        quoted = json.dumps(text)  # a YAML double-quoted scalar
        field = json.dumps(text.replace("|", "/"))  # '|' separates alternative field names
        literal = json.dumps(f"\\Q{text}\\E")  # RE2's quoted literal
        out.append(f"- id: h{i}\n  rule: {quoted}\n  match:\n    {field}: {{equals: {quoted}}}\n"
                   f"    AgentName: {{in: [{quoted}], not: {{regex: {literal}}}}}\n"
                   f"  reason: {quoted}\n  owner: {quoted}\n  expires: 2027-01-01\n")
    out.append('- id: ansi\n  rule: "*"\n  match: {AgentName: {equals: "\\e]0;pwned\\a"}}\n'
               '  reason: "\\e[2J\\e[31mred \\u202e reversed"\n  owner: "o\\r\\nFAKE: line"\n  expires: 2027-01-01\n')
    path.write_text("".join(out), encoding="utf-8")
    return path


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every KQL and SQL text the DuckDB backend is given during the test."""
    seen: list[str] = []
    translate, execute, run = DuckDBBackend.translate, DuckDBBackend._execute, DuckDBBackend._run

    def record_translate(self: DuckDBBackend, kql: str) -> Any:
        seen.append(kql)
        return translate(self, kql)

    def record_execute(self: DuckDBBackend, sql: str, params: dict[str, Any]) -> Any:
        seen.append(sql + repr(params))
        return execute(self, sql, params)

    def record_run(self: DuckDBBackend, sql: str, params: list[Any] | None = None) -> Any:
        seen.append(sql + repr(params))
        return run(self, sql, params)

    monkeypatch.setattr(DuckDBBackend, "translate", record_translate)
    monkeypatch.setattr(DuckDBBackend, "_execute", record_execute)
    monkeypatch.setattr(DuckDBBackend, "_run", record_run)
    return seen


def test_tuning_values_never_reach_a_query_or_the_terminal_raw(agents: Path, tmp_path: Path,
                                                                queries: list[str]) -> None:
    code, plain, _ = detect(str(agents), "-r", CMDLET)
    before = len(queries)
    assert before > 0
    hostile = hostile_tuning(tmp_path / "hostile.yaml")
    code, tuned, err = detect(str(agents), "-r", CMDLET, "--tuning", str(hostile))
    assert code == 0 and tuned == plain  # nothing matched, nothing changed
    assert len(queries) > before
    for text in queries:
        for value in INJECTIONS:
            assert value not in text
        assert "pwned" not in text and "FAKE" not in text
    # the summary shows each entry's text as inert characters
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err and "\r" not in err
    assert "matched no alert (stale?): \\x1b[2J\\x1b[31mred \\u202e reversed (owner o\\r\\nFAKE: line)" in \
        " ".join(err.split())
    for i, value in enumerate(INJECTIONS):
        assert f"tuning entry h{i} ({hostile}:" in err and value in " ".join(err.split())


def test_a_hostile_literal_suppresses_exactly_the_alert_that_carries_it(tmp_path: Path) -> None:
    rows = [ps(0, "powershell.exe -c Install-TransportAgent -Name \"a' or 1=1 --\" -TransportAgentFactory X.Y "
                  "-AssemblyPath C:\\x.dll"),
            ps(1, "powershell.exe -c Install-TransportAgent -Name other -TransportAgentFactory X.Y "
                  "-AssemblyPath C:\\x.dll")]
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", rows)
    entry = tmp_path / "t.yaml"
    entry.write_text("- rule: '*'\n  match: {AgentName: {equals: \"A' OR 1=1 --\"}}\n  reason: r\n  owner: o\n"
                     "  expires: 2027-01-01\n")
    code, tuned, _ = detect(str(tmp_path), "-r", CMDLET, "--tuning", str(entry))
    assert code == 0 and [a["AgentName"] for a in tuned] == ["other"]


NAMES = ["x'; DROP TABLE t; --", 'q" | where true | project "', "DeviceProcessEvents | take 0 ;", "a`$(id)`b"]


@pytest.mark.parametrize("name", NAMES)
def test_file_names_are_data_not_query_text(tmp_path: Path, name: str, queries: list[str]) -> None:
    plain_dir, odd_dir = tmp_path / "plain", tmp_path / name
    plain_dir.mkdir()
    odd_dir.mkdir()
    helpers.write_csv(plain_dir / "DeviceProcessEvents.csv", "DeviceProcessEvents", ROWS)
    helpers.write_csv(odd_dir / f"{name}.csv", "DeviceProcessEvents", ROWS)
    plain_tuning = tmp_path / "plain.yaml"
    plain_tuning.write_text(FABRIKAM_TUNING.read_text())
    odd_tuning = tmp_path / f"{name}.yaml"
    odd_tuning.write_text(FABRIKAM_TUNING.read_text())
    _, plain, _ = detect(str(plain_dir), "-r", CMDLET, "--tuning", str(plain_tuning))
    code, odd, err = detect(str(odd_dir), "-r", CMDLET, "--tuning", str(odd_tuning))
    assert code == 0 and len(odd) == 2
    assert [{k: v for k, v in a.items() if k != "source_file"} for a in odd] == \
        [{k: v for k, v in a.items() if k != "source_file"} for a in plain]
    assert {a["source_file"] for a in odd} == {str(odd_dir / f"{name}.csv")}
    assert f"suppressed by fabrikam-disclaimer-agent ({odd_tuning}:6)" in " ".join(err.split())
    assert not any(f"{name}.yaml" in q for q in queries)


def test_show_suppressed_with_incidents_keeps_them_apart() -> None:
    """Grouped output: the kept alerts' incidents first (alerts tagged suppressed_by null), then
    the suppressed alerts in incidents of their own marked `suppressed`."""
    code, out, _ = run_cli(["detect", str(DEMO), "-q", "-f", "json", "--tuning", str(FABRIKAM_TUNING),
                            "--show-suppressed"])
    assert code == 0
    records = json.loads(out)
    kept = [r for r in records if not r.get("suppressed")]
    hidden = [r for r in records if r.get("suppressed")]
    assert records == kept + hidden and len(hidden) == 1
    assert sum(r["alert_count"] for r in kept) == 36
    assert all(a["suppressed_by"] is None for r in kept for a in r["alerts"])
    assert [(a["AgentName"], a["Cmdlet"]) for a in hidden[0]["alerts"]] == [
        ("Fabrikam Disclaimer Agent", "Install-TransportAgent"), ("Fabrikam Disclaimer Agent", "Enable-TransportAgent")]
    assert all(a["suppressed_by"]["reason"] for a in hidden[0]["alerts"])
