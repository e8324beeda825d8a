"""`exhunt detect --explain ID`: each condition of the alert's rule, held or not on the alert's
own rows, with the values it compared; correlations' many-row steps shown with the alert's values.

Inputs are written here (tests/helpers.py writers); every expectation is the exact condition
text of the shipped rule and the exact value of the row written.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_cli
from exhunt import why
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.errors import RuleError, UsageError
from exhunt.kql import conditions
from exhunt.rule import load_rules
from helpers import file_rule, write_jsonl

HOST = "exch01.contoso.local"
AGENTS = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents"
SEED = "exchange-transport-agent-seed"
CMDLET = "exchange-transport-agent-cmdlet"
CHAIN = "exchange-transport-agent-chain"


def _alerts(folder: Path, rule: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(["detect", str(folder), "-r", rule, "-f", "json", "--flat", "-q"])
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _explain(folder: Path, rule: str, alert_id: str) -> dict[str, Any]:
    code, out, err = run_cli(["detect", str(folder), "-r", rule, "--explain", alert_id, "-f", "json", "-q"])
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _steps(row: dict[str, Any]) -> list[tuple[str | None, str, bool | None]]:
    return [(s["part"], s["text"], s.get("held")) for s in row["steps"]]


def _atoms(node: dict[str, Any]) -> list[tuple[str, bool | None, dict[str, Any]]]:
    """(text, held, {name: value}) of every atom under `node`, in order."""
    if node.get("logic"):
        return [a for c in node["children"] for a in _atoms(c)]
    reads = {r["name"]: r.get("value", r.get("constant")) for r in node["reads"]}
    return [(node["text"], node["held"], reads)]


# -- the seed rule ---------------------------------------------------------------------------

SEED_FILES = [
    {"Timestamp": "2026-03-01T10:20:00.250000Z", "DeviceName": HOST, "ActionType": "FileCreated",
     "FileName": "evil.dll", "FolderPath": AGENTS + r"\evil.dll", "InitiatingProcessFileName": "powershell.exe",
     "InitiatingProcessAccountName": "svc-x", "InitiatingProcessCommandLine": "powershell.exe -File drop.ps1",
     "ReportId": 11},
    {"Timestamp": "2026-03-01T10:30:00Z", "DeviceName": HOST, "ActionType": "FileCreated",
     "FileName": "readme.txt", "FolderPath": AGENTS + r"\readme.txt", "InitiatingProcessFileName": "notepad.exe",
     "ReportId": 12},
]
SEED_PROCESSES = [
    {"Timestamp": "2026-03-01T11:05:00Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
     "FileName": "pwsh.exe", "ProcessCommandLine": "pwsh.exe -c Install-TransportAgent -Name X",
     "AccountName": "exadmin", "InitiatingProcessFileName": "explorer.exe", "ReportId": 21},
]


@pytest.fixture(scope="module")
def seed_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seed")
    write_jsonl(folder / "DeviceFileEvents.jsonl", "DeviceFileEvents", SEED_FILES)
    write_jsonl(folder / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", SEED_PROCESSES)
    return folder


def test_seed_dll_write_every_condition_with_its_values(seed_data: Path) -> None:
    alerts = _alerts(seed_data, SEED)
    dll = next(a for a in alerts if a["FileName"] == "evil.dll")
    doc = _explain(seed_data, SEED, dll["alert_id"][:8])  # a unique start of the id is enough
    assert doc["alert_id"] == dll["alert_id"] and doc["rule_name"] == dll["rule_name"]
    # The rule is replayed hourly: the run that raised it ended at the next full hour.
    assert doc["evaluated"] == {"now": "2026-03-01T11:00:00.000000Z",
                                "window": ["2026-03-01T10:00:00.000000Z", "2026-03-01T11:00:00.000000Z"]}
    assert len(doc["rows"]) == 1
    row = doc["rows"][0]
    assert (row["table"], row["source_file"], row["source_record"], row["held"]) == (
        "DeviceFileEvents", str(seed_data / "DeviceFileEvents.jsonl"), "line 1", True)
    steps = _steps(row)
    assert [s[0] for s in steps] == ["ExchangeAgentDrop"] * 5
    assert all(s[2] is True for s in steps)
    assert steps[0][1] == "Timestamp > ago(24h)"
    assert steps[1][1] == 'ActionType in ("FileCreated", "FileModified")'
    assert steps[2][1].startswith("FolderPath has_any (\n") and steps[2][1].endswith(")")
    assert steps[3][1] == 'FileName endswith ".dll"'
    assert steps[4][1].startswith('InitiatingProcessFileName !in~ ("exsetup.exe", "updateexchangesetup.exe",')
    atoms = [_atoms(s["condition"])[0] for s in row["steps"]]
    assert atoms[0] == ("Timestamp > ago(24h)", True, {"Timestamp": "2026-03-01T10:20:00.250000Z"})
    assert atoms[1][1:] == (True, {"ActionType": "FileCreated"})
    assert atoms[2][1:] == (True, {"FolderPath": AGENTS + r"\evil.dll"})
    assert atoms[3][1:] == (True, {"FileName": "evil.dll"})
    assert atoms[4][1:] == (True, {"InitiatingProcessFileName": "powershell.exe"})
    assert doc["over_many_rows"] == [] and doc["notes"] == []


def test_seed_union_leg_is_the_one_that_raised_the_alert(seed_data: Path) -> None:
    """The seed's two process parts both read DeviceProcessEvents: the PowerShell install is
    explained by ExchangeAgentPS, and its conditions name the values of that row."""
    alerts = _alerts(seed_data, SEED)
    ps = next(a for a in alerts if a["FileName"] == "pwsh.exe")
    row, = _explain(seed_data, SEED, ps["alert_id"])["rows"]
    assert row["table"] == "DeviceProcessEvents" and row["source_record"] == "line 1"
    assert _steps(row) == [
        ("ExchangeAgentPS", "Timestamp > ago(24h)", True),
        ("ExchangeAgentPS", 'FileName in~ ("powershell.exe", "pwsh.exe")', True),
        ("ExchangeAgentPS", 'ProcessCommandLine has_any ("Install-TransportAgent", "Enable-TransportAgent",\n'
                            '                                    "New-TransportAgentConnector", "Set-TransportAgent")',
         True),
    ]
    assert _atoms(row["steps"][2]["condition"])[0][2] == {
        "ProcessCommandLine": "pwsh.exe -c Install-TransportAgent -Name X"}


# -- the cmdlet rule: and / or / not, held and not held ---------------------------------------

def _ps_event(ts: str, command: str, script: str, event_id: str, path: str, report: int) -> dict[str, Any]:
    return {"Timestamp": ts, "DeviceName": HOST, "ActionType": "PowerShellCommand",
            "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessAccountName": "exadmin",
            "InitiatingProcessCommandLine": "powershell.exe", "ReportId": report,
            "AdditionalFields": {"Command": command, "ScriptBlockText": script, "EventId": event_id, "Path": path}}


def test_cmdlet_rule_or_and_not_with_exact_values(tmp_path: Path) -> None:
    script = r"Install-TransportAgent -Name 'Fab' -TransportAgentFactory Fab.Factory -AssemblyPath C:\x\fab.dll"
    write_jsonl(tmp_path / "DeviceEvents.jsonl", "DeviceEvents", [
        _ps_event("2026-04-02T09:00:01Z", "Install-TransportAgent", script, "4104", r"C:\ops\install.ps1", 31)])
    alert, = _alerts(tmp_path, CMDLET)
    row, = _explain(tmp_path, CMDLET, alert["alert_id"])["rows"]
    assert row["table"] == "DeviceEvents" and row["held"] is True
    steps = row["steps"]
    assert [(s["part"], s["held"]) for s in steps] == [("FromPowerShell", True)] * 3
    assert steps[0]["text"] == 'ActionType == "PowerShellCommand"'
    # Command matches regex AgentCmdlet or (isempty(Command) and Script matches regex AgentCmdlet)
    second = steps[1]["condition"]
    assert (second["logic"], second["held"]) == ("or", True)
    assert [(c.get("logic"), c["held"]) for c in second["children"]] == [(None, True), ("and", False)]
    cmdlets = _let(CMDLET, "AgentCmdlet")
    assert cmdlets == r'@"(?i)\b(install|enable|set|disable|uninstall)-transportagent\b"'
    assert _atoms(second) == [
        ("Command matches regex AgentCmdlet", True, {"Command": "Install-TransportAgent", "AgentCmdlet": cmdlets}),
        ("isempty(Command)", False, {"Command": "Install-TransportAgent"}),
        ("Script matches regex AgentCmdlet", True, {"Script": script, "AgentCmdlet": cmdlets}),
    ]
    # EventId in ("4103", "800") or not(ScriptPath matches regex ProxyModulePath or Script matches regex ...)
    third = steps[2]["condition"]
    assert third["text"].startswith('EventId in ("4103", "800") or not(')
    assert (third["logic"], third["held"]) == ("or", True)
    event_id, negation = third["children"]
    assert (event_id["text"], event_id["held"], event_id["reads"][0]) == (
        'EventId in ("4103", "800")', False, {"name": "EventId", "value": "4104"})
    assert (negation["logic"], negation["held"]) == ("not", True)
    inner, = negation["children"]
    assert (inner["logic"], inner["held"]) == ("or", False)
    assert [(a[0], a[1]) for a in _atoms(inner)] == [
        ("ScriptPath matches regex ProxyModulePath", False), ("Script matches regex ProxyModuleText", False)]
    assert _atoms(inner)[0][2]["ScriptPath"] == r"C:\ops\install.ps1"
    # a column the rule computed shows how: EventId = tostring(AF.EventId) is a plain value, not a condition
    assert "computed" not in event_id["reads"][0]


# -- the chain rule: per-row parts and what is judged over many rows ----------------------------

def test_chain_rule_first_step_row_and_many_row_steps_with_alert_values(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "DeviceFileEvents.jsonl", "DeviceFileEvents", [
        {"Timestamp": "2026-05-04T01:10:00Z", "DeviceName": HOST, "ActionType": "FileCreated",
         "FileName": "agent.dll", "FolderPath": AGENTS + r"\agent.dll",
         "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessFolderPath":
             r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
         "InitiatingProcessAccountName": "mallory", "ReportId": 41}])
    write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", [
        {"Timestamp": "2026-05-04T01:20:00Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
         "FileName": "powershell.exe", "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
         "ProcessCommandLine": r"powershell.exe Install-TransportAgent -Name A -AssemblyPath C:\a\agent.dll",
         "AccountName": "mallory", "InitiatingProcessFileName": "explorer.exe", "ReportId": 42}])
    alert, = _alerts(tmp_path, CHAIN)
    assert (alert["FirstStage"], alert["StageCount"]) == ("agent DLL placed", 2)
    doc = _explain(tmp_path, CHAIN, alert["alert_id"])
    row, = doc["rows"]
    assert (row["table"], row["source_record"], row["held"]) == ("DeviceFileEvents", "line 1", True)
    assert _steps(row) == [
        ("Files", 'ActionType in ("FileCreated", "FileModified", "FileRenamed")', True),
        ("Files", "FolderPath matches regex AgentFolders or FolderPath matches regex ConfigFile\n    "
                  'or (FolderPath matches regex Pickup and InitiatingProcessFileName =~ "EdgeTransport.exe")', True),
        ("Files", "join kind=leftouter UpdaterStarts on DeviceName, UpdaterGuid", None),
        ("Files", "join kind=leftouter UpdaterCerts on UpdaterSHA1", None),
        ("Files", "isnotempty(Stage)", True)]
    stage = row["steps"][4]["condition"]["reads"][0]
    assert (stage["name"], stage["value"]) == ("Stage", "agent DLL placed")
    cases = stage["computed"]["cases"]
    assert [(c["then"], c["when"]["held"], c["chosen"]) for c in cases] == [
        ('"agent DLL placed"', True, True), ('"agent cmdlet or config change"', False, False),
        ('"transport child or Pickup write"', False, False)]
    assert _atoms(cases[0]["when"]) == [
        ("FolderPath matches regex AgentFolders", True,
         {"FolderPath": AGENTS + r"\agent.dll", "AgentFolders": _let(CHAIN, "AgentFolders")}),
        ("FromUpdater", False, {"FromUpdater": False}),
    ]
    # Why the writer is no Exchange update: its place is none of setup's (the computed column's tree).
    updater = cases[0]["when"]["children"][1]["children"][0]["reads"][0]["computed"]["condition"]
    assert (updater["held"], updater["logic"]) == (False, "and")
    place = updater["children"][0]["children"][0]
    assert (place["text"], place["held"]) == ("InitiatingProcessFolderPath matches regex UpdaterPlaces", False)
    assert stage["computed"]["otherwise"] == {"then": '""', "chosen": False}
    many = doc["over_many_rows"]
    assert [m["operator"] for m in many] == ["join", "where", "summarize", "where", "summarize"]
    threshold = many[3]
    assert (threshold["text"], threshold["held"]) == ("StageCount >= 2 and LastStep > ago(RunEvery)", True)
    assert [(c["text"], c["held"], c["reads"]) for c in threshold["condition"]["children"]] == [
        ("StageCount >= 2", None, [{"name": "StageCount", "alert_value": 2, "alert_column": "StageCount"}]),
        ("LastStep > ago(RunEvery)", None, [
            {"name": "LastStep", "alert_value": "2026-05-04T01:20:00.000000Z", "alert_column": "LastStep"},
            {"name": "RunEvery", "constant": "1h"}]),
    ]
    window = many[1]["condition"]["children"][0]["reads"]
    assert window == [{"name": "T2"}, {"name": "T", "alert_value": "2026-05-04T01:10:00.000000Z",
                                        "alert_column": "Timestamp"}]
    assert any("not judged on one row" in n for n in doc["notes"])


def _let(slug: str, name: str) -> str:
    """The text of a rule's `let` value, as the rule file has it."""
    rule, = load_rules([slug])
    line = next(ln for ln in rule.query.splitlines() if ln.startswith(f"let {name} = "))
    return line[len(f"let {name} = "):].rstrip(";")


def test_a_let_also_read_as_a_lookup_keeps_its_filter(tmp_path: Path) -> None:
    """`X` is followed row by row and also read by a left-outer join's right side: its `where`
    stays in place after its columns (the join must see the rows it saw), and the alert is
    explained through the join."""
    query = ('let X = DeviceFileEvents | where FileName endswith ".dll";\n'
             "X\n| join kind=leftouter (X | summarize Dlls = count() by DeviceName) on DeviceName\n"
             "| where Dlls >= 2 or FileName startswith \"evil\"\n| project Timestamp, DeviceName, FileName, Dlls")
    rule = tmp_path / "rules" / "lookup.yaml"
    rule.parent.mkdir()
    rule.write_text(file_rule("0f2b9a61-7c1e-4d2a-9b3e-5a6c7d8e9f00", "Lookup", "Test.", query), encoding="utf-8")
    plan = conditions.plan(query, {"DeviceFileEvents"}, [])
    assert plan is not None and '_why_r1_0 = FileName | where FileName endswith ".dll";' in plan.outputs[0].query
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "DeviceFileEvents.jsonl", "DeviceFileEvents", SEED_FILES)
    alert, = _alerts(data, str(rule))
    row, = _explain(data, str(rule), alert["alert_id"])["rows"]
    assert [(s["operator"], s["part"], s["text"], s.get("held")) for s in row["steps"]] == [
        ("where", "X", 'FileName endswith ".dll"', True),
        ("join", None, "join kind=leftouter (X | summarize Dlls = count() by DeviceName) on DeviceName", None),
        ("where", None, 'Dlls >= 2 or FileName startswith "evil"', True)]
    assert _atoms(row["steps"][2]["condition"]) == [("Dlls >= 2", False, {"Dlls": 1}),
                                                    ('FileName startswith "evil"', True, {"FileName": "evil.dll"})]


# -- hostile values ----------------------------------------------------------------------------

HOSTILE = ("pwsh.exe -c Install-TransportAgent x'; DROP TABLE \"_t_DeviceProcessEvents\"; -- \" | where 1==1 "
           "| take 0 //\n; SELECT 1; \x1b[2J\x1b]0;owned\x07 \u202eexe.dll")


def test_hostile_value_is_explained_never_executed_nor_printed_raw(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", [
        {"Timestamp": "2026-06-01T08:00:00Z", "DeviceName": HOST, "ActionType": "ProcessCreated",
         "FileName": "pwsh.exe", "ProcessCommandLine": HOSTILE, "AccountName": "x'--",
         "InitiatingProcessFileName": "explorer.exe", "ReportId": 51}])
    alert, = _alerts(tmp_path, SEED)
    assert alert["ProcessCommandLine"] == HOSTILE
    texts: list[str] = []
    translate, execute = DuckDBBackend.translate, DuckDBBackend._execute

    def seen_translate(self: DuckDBBackend, kql: str) -> Any:
        texts.append(kql)
        return translate(self, kql)

    def seen_execute(self: DuckDBBackend, sql: str, params: dict[str, Any]) -> Any:
        texts.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(DuckDBBackend, "translate", seen_translate)
    monkeypatch.setattr(DuckDBBackend, "_execute", seen_execute)
    doc = _explain(tmp_path, SEED, alert["alert_id"])
    assert any("_why_m" in t for t in texts)  # the rewritten query ran
    assert not any("DROP TABLE" in t or "owned" in t or "x'--" in t for t in texts)
    row, = doc["rows"]
    assert row["held"] is True
    last = row["steps"][-1]["condition"]
    assert _atoms(last)[0][2] == {"ProcessCommandLine": HOSTILE}
    code, out, err = run_cli(["detect", str(tmp_path), "-r", SEED, "--explain", alert["alert_id"], "-q"])
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    # shown as a JSON literal: quotes and controls escaped, the bidi override too
    literal = json.dumps(HOSTILE, ensure_ascii=False).replace("\u202e", "\\u202e")
    assert f"      ProcessCommandLine = {literal}" in out.splitlines()


# -- errors and formats --------------------------------------------------------------------------

def test_unknown_id_exits_2_with_a_clear_message(seed_data: Path) -> None:
    code, out, err = run_cli(["detect", str(seed_data), "-r", SEED, "--explain", "ffffffffffff0000"])
    assert code == 2 and out == ""
    assert "--explain: no alert has the id 'ffffffffffff0000' (2 alert(s) in this run" in " ".join(err.split())


def test_find_by_unique_prefix_and_ambiguous_prefix() -> None:
    alerts = [{"alert_id": "ab12000000000000"}, {"alert_id": "ab34000000000000"}, {"alert_id": "cd00000000000000"}]
    assert why.find(alerts, "AB3") == 1 and why.find(alerts, "cd00000000000000") == 2
    message = "'ab' starts 2 alert ids (ab12000000000000, ab34000000000000); give more"
    with pytest.raises(UsageError, match=re.escape(message)):
        why.find(alerts, "ab")
    with pytest.raises(UsageError, match="needs an alert id"):
        why.find(alerts, " ")


def test_table_and_csv_output(seed_data: Path) -> None:
    dll = next(a for a in _alerts(seed_data, SEED) if a["FileName"] == "evil.dll")
    code, out, err = run_cli(["detect", str(seed_data), "-r", SEED, "--explain", dll["alert_id"], "-q"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Alert {dll['alert_id']}: {dll['rule_name']} ({dll['severity']})"
    assert f"Row of DeviceFileEvents, {seed_data / 'DeviceFileEvents.jsonl'} line 1: every condition held" in lines
    at = lines.index('  + [ExchangeAgentDrop] where FileName endswith ".dll"')
    assert lines[at + 1] == '      FileName = "evil.dll"'
    code, out, err = run_cli(["detect", str(seed_data), "-r", SEED, "--explain", dll["alert_id"], "-f", "csv", "-q"])
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["section"], r["table"], r["part"], r["operator"], r["depth"], r["held"]) for r in rows] == [
        ("row", "DeviceFileEvents", "ExchangeAgentDrop", "where", "0", "true")] * 5
    assert (rows[3]["condition"], json.loads(rows[3]["reads"]), rows[3]["source_record"]) == (
        'FileName endswith ".dll"', [{"name": "FileName", "value": "evil.dll"}], "line 1")


def test_conditions_are_listed_when_the_engine_cannot_evaluate_them(seed_data: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dll = next(a for a in _alerts(seed_data, SEED) if a["FileName"] == "evil.dll")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuleError("the query uses KQL the engine cannot run: (test)")

    monkeypatch.setattr(DuckDBBackend, "query_matching", refuse)
    doc = _explain(seed_data, SEED, dll["alert_id"])
    assert doc["rows"] == [] and doc["evaluated"] is None
    assert doc["notes"] == ["its conditions were not evaluated (the query evaluating them failed: the query uses "
                            "KQL the engine cannot run: (test)); they are listed under conditions"]
    listed = [(c["part"], c["text"], c["held"]) for c in doc["conditions"]]
    assert listed[3] == ("ExchangeAgentDrop", 'FileName endswith ".dll"', None)
    assert listed[-1] == ("ExchangeAgentPS", 'ProcessCommandLine has_any ("Install-TransportAgent", '
                          '"Enable-TransportAgent",\n                                    '
                          '"New-TransportAgentConnector", "Set-TransportAgent")', None)
    assert doc["conditions"][3]["condition"] == {"text": 'FileName endswith ".dll"', "held": None,
                                                 "reads": [{"name": "FileName"}]}
    code, out, _ = run_cli(["detect", str(seed_data), "-r", SEED, "--explain", dll["alert_id"], "-q"])
    assert code == 0 and "Conditions of the rule (not evaluated on the alert's rows):" in out
    assert '  ? [ExchangeAgentDrop] where FileName endswith ".dll"' in out.splitlines()


def test_explain_refuses_a_remote_engine() -> None:
    code, _, err = run_cli(["detect", "--cluster", "http://127.0.0.1:9/", "--database", "db", "--explain", "ab"])
    assert code == 2 and "--explain evaluates the rule on the alert's rows in the local engine" in err


# -- every shipped rule ------------------------------------------------------------------------

def test_every_shipped_rule_is_explained_on_the_demo() -> None:
    """One alert of each shipped rule in demo/: its rows are found again and passed every
    condition of the rule's per-row part."""
    from exhunt import hunt

    rules = load_rules(None)
    options = hunt.HuntOptions(jobs=1)
    backend, _ = hunt.open_local([REPO / "demo"], [r.query for r in rules], options)
    with backend:
        result = hunt.hunt([REPO / "demo"], rules, options, backend=backend)
        explained = set()
        for alert, rule in zip(result.alerts, result.rules, strict=True):
            if rule.slug in explained:
                continue
            explained.add(rule.slug)
            rows = next(run.rows for run in result.runs if run.rule is rule)
            doc = why.explain(backend, rule, alert, rows)
            assert doc["rows"] and doc["rows"][0]["held"], (rule.slug, doc["notes"])
            assert all(s.get("held", True) for s in doc["rows"][0]["steps"])
            assert isinstance(datetime.fromisoformat(doc["evaluated"]["now"].replace("Z", "+00:00")), datetime)
    assert explained == {r.slug for r in rules}


def test_rewrite_adds_no_literal_but_table_names() -> None:
    """The rewritten queries hold the rule's own literals and the names of the tables it reads,
    nothing else: no value reaches a query through them."""
    from exhunt import schema
    from exhunt.kql import tree

    tables = set(schema.tables())
    for rule in load_rules(None):
        plan = conditions.plan(rule.query, tables, [])
        assert plan is not None and plan.outputs, rule.slug
        own = {t.text for t in tree.tokens(rule.query) if t.kind == "STRINGLITERAL"}
        for output in plan.outputs:
            added = {t.text for t in tree.tokens(output.query) if t.kind == "STRINGLITERAL"} - own
            assert added and {a.strip('"') for a in added} <= tables, (rule.slug, added - tables)
