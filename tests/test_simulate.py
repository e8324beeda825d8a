"""exhunt simulate: every shipped scenario x every writer -> detect -> exactly its expected alerts;
same seed, same bytes; user scenario files through --check; clear errors at file:line."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt.errors import UsageError
from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import load_rules
from exhunt.simulate.check import check, check_all
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import by_atomic, load_file, parse, shipped

SCENARIOS = {s.id: s for s in shipped()}


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.output = code, out + err


def cli(*args: str) -> Ran:
    return Ran(*run_cli(list(args)))


RULES = load_rules(None)


def test_the_shipped_scenarios_are_there() -> None:
    assert {
        "atomic-t1505-002",
        "lightneuron-emulation",
        "benign-exchange-cu-media",
        "benign-get-transportagent",
        "benign-edge-children",
    } <= set(SCENARIOS)
    assert set(writers()) >= {"mde-csv", "mde-api", "evtx-json"}


@pytest.mark.parametrize("fmt", sorted(writers()))
def test_matrix(fmt: str) -> None:
    """Every shipped scenario on its own host, ONE detect per format: exactly the expected alerts."""
    verdicts = check_all(list(SCENARIOS.values()), fmt, rules=RULES)
    failed = [f"{v.scenario}: {v.text}" for v in verdicts if not v.ok]
    assert not failed, failed
    writer = writers()[fmt]
    for sc in SCENARIOS.values():
        # every expectation gave one verdict (and each one under tuning, and each hunt); a format that
        # holds everything its family collects judges all those meant for its family (the others are n/a)
        mine = [v for v in verdicts if v.scenario == sc.id]
        tuned = [v for v in mine if v.text.startswith("tuned with ")]
        hunted = [v for v in mine if v.text.startswith("hunt ")]
        plain = [v for v in mine if v not in tuned and v not in hunted]
        assert len(plain) == len(sc.expect), sc.id
        if writer.tables is None and writer.kinds is None:
            assert [v.applies for v in plain] == [not e.must or writer.family in e.families for e in sc.expect]
        assert len([v for v in tuned if " alerts on " in v.text]) == len(sc.tuned), sc.id
        assert len(hunted) == len(sc.hunts), sc.id
    assert {v.scenario for v in verdicts} == set(SCENARIOS)


def test_lightneuron_alerts_by_step() -> None:
    verdicts = {v.text for v in check(SCENARIOS["lightneuron-emulation"], "evtx-json", rules=RULES)}
    assert "exchange-transport-process-child alerts on operator-command" in verdicts
    assert "exchange-transport-agent-cmdlet alerts on script-text, install, enable" in verdicts


@pytest.mark.parametrize("fmt", sorted(writers()))
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    sc = [SCENARIOS["lightneuron-emulation"]]
    outs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / name
        out.mkdir()
        writers()[fmt].write(generate(sc, seed=seed, noise=20), out)
        outs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_events_line_up() -> None:
    """Parent chains, ids and times are consistent: a child's parent is the process that started it."""
    sim = generate([SCENARIOS["lightneuron-emulation"]], seed=3)
    procs = [e.proc for e in sim.events if e.kind == "process" and e.proc]
    by_step = {e.step: e.proc for e in sim.events if e.kind == "process"}
    assert by_step["script-start"].parent is by_step["wmi-start"]  # type: ignore[union-attr]
    cmd = by_step["operator-command"]
    assert cmd is not None and cmd.parent is not None and cmd.parent.file_name == "EdgeTransport.exe"
    restarted = [p for p in procs if p.file_name == "EdgeTransport.exe"]
    assert restarted and cmd.parent is restarted[-1]  # the worker started by the restart step
    assert len({p.pid for p in procs}) == len(procs) and all(p.pid % 4 == 0 for p in procs)
    times = [e.time for e in sim.events]
    assert times == sorted(times)


def test_windows_formats(tmp_path: Path) -> None:
    sim = generate([SCENARIOS["lightneuron-emulation"]], seed=1)
    (path,) = writers()["evtx-json"].write(sim, tmp_path)
    docs = [json.loads(line)["Event"] for line in path.read_text().splitlines()]
    ids = {(d["System"]["Channel"], d["System"]["EventID"]) for d in docs}
    assert {
        ("Microsoft-Windows-Sysmon/Operational", 1),
        ("Security", 4688),
        ("Microsoft-Windows-Sysmon/Operational", 11),
        ("Microsoft-Windows-Sysmon/Operational", 7),
        ("Microsoft-Windows-PowerShell/Operational", 4104),
        ("MSExchange Management", 1),
    } <= ids
    sysmon1 = next(d["EventData"] for d in docs if d["System"]["EventID"] == 1)
    assert len(sysmon1["UtcTime"]) == 23 and sysmon1["LogonId"].startswith("0x") and "\\" in sysmon1["User"]
    sec = next(d["EventData"] for d in docs if d["System"]["EventID"] == 4688)
    assert sec["NewProcessId"].startswith("0x")


def test_defender_times_have_seven_digits(tmp_path: Path) -> None:
    writers()["mde-csv"].write(generate([SCENARIOS["benign-edge-children"]]), tmp_path)
    line = (tmp_path / "DeviceProcessEvents.csv").read_text().splitlines()[1]
    stamp = line.split(",")[0]
    assert len(stamp.split(".")[1]) == 8 and stamp.endswith("Z")


USER = """\
id: my-child
title: cmd from the transport worker
kind: attack
steps:
  - id: child
    process: {image: 'C:\\Windows\\System32\\cmd.exe', command_line: 'cmd /C ipconfig',
              parent: edge, user: NETWORK SERVICE}
expect:
  alert:
    - {rule: exchange-transport-process-child, steps: [child]}
    - {rule: exchange-transport-agent-seed, steps: [child]}
"""


def test_user_scenario_check_passes(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER)
    r = cli("simulate", str(path), "--check", "--format", "mde-csv")
    assert r.exit_code == 0, r.output
    assert "PASS  my-child [mde-csv]  exchange-transport-process-child alerts on child" in r.output


def test_user_scenario_check_fails(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    # the seed rule's alert is no longer expected: an unexpected alert, exit 1
    path.write_text(USER.replace("    - {rule: exchange-transport-agent-seed, steps: [child]}\n", ""))
    r = cli("simulate", str(path), "--check", "--format", "evtx-json")
    assert r.exit_code == 1
    assert "FAIL  my-child [evtx-json]  exchange-transport-agent-seed: unexpected alert on child" in r.output


def test_atomic_by_guid_and_technique() -> None:
    assert [s.id for s in by_atomic("43e92449-ff60-46e9-83a3-1a38089df94d")] == ["atomic-t1505-002"]
    assert [s.id for s in by_atomic("t1505.002")] == ["atomic-t1505-002"]
    with pytest.raises(UsageError, match="no scenario replays"):
        by_atomic("T1003")


def test_write_and_list(tmp_path: Path) -> None:
    r = cli(
        "simulate",
        "benign-edge-children",
        "--format",
        "mde-api",
        "--out",
        str(tmp_path / "o"),
        "--host",
        "mx9.fabrikam.test",
        "--start",
        "2027-01-02T03:04:05Z",
        "--noise",
        "5",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "o" / "DeviceProcessEvents-api.json").read_text())
    assert {row["DeviceName"] for row in doc["Results"]} == {"mx9.fabrikam.test"}
    assert min(row["Timestamp"] for row in doc["Results"]) >= "2027-01-02T03:04"
    r = cli("simulate", "--list")
    assert "lightneuron-emulation (attack)" in r.output and "must not:   exchange-transport-process-child" in r.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "id: x\ntitle: t\nkind: attack\nsteps:\n  - process: {image: a}\n",
            r"mine.yaml:5: process needs command_line",
        ),
        ("id: x\ntitle: t\nkind: evil\nsteps: []\n", r"mine.yaml:1: kind must be attack or benign"),
        ("id: x\ntitle: t\nkind: attack\nsteps:\n  - fly: {}\n", r"mine.yaml:5: a step holds exactly one of"),
        (
            "id: x\ntitle: t\nkind: attack\nsteps:\n  - id: a\n    file: {action: created, path: p}\nexpect:\n"
            "  alert:\n    - {rule: r, steps: [b]}\n",
            r"mine.yaml:9: alert r: no step with id b",
        ),
        ("id: x\ntitle: [\n", r"mine.yaml:\d+: not valid YAML"),
        (
            "id: x\ntitle: t\nkind: attack\nsteps:\n  - file: {action: created, path: p, by: nobody}\n",
            r"mine.yaml:5: step step1: no process named 'nobody'",
        ),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    r = cli("simulate", str(path), "--format", "mde-csv", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert re.search(message, " ".join(r.output.split())), r.output


def test_unknown_scenario_and_format() -> None:
    assert "no scenario named 'nope'" in cli("simulate", "nope", "--check").output
    r = cli("simulate", "benign-edge-children", "--check", "--format", "xml")
    assert r.exit_code == 2 and "choose one of" in r.output


def test_parse_keeps_on_key() -> None:
    sc = parse(
        "id: x\ntitle: t\nkind: attack\nsteps:\n  - id: a\n    process: {image: i, command_line: c}\n"
        "expect:\n  alert:\n    - {rule: r, steps: [a], on: [windows]}\n",
        Path("x.yaml"),
    )
    assert sc.expect[0].families == ("windows",)
    assert load_file(SCENARIOS["atomic-t1505-002"].path).atomic == ["43e92449-ff60-46e9-83a3-1a38089df94d"]


#: The reader exhunt picks for each writer's files (detection by content, as for a user's export).
READ_AS = {
    "mde-csv": "mde-csv",
    "mde-api": "mde-json",
    "mde-stream-storage": "mde-jsonl",
    "mde-stream-eventhub": "mde-jsonl",
    "parquet": "parquet",
    "sentinel-export": "mde-jsonl",
    "evtx-json": "evtx-json",
    "winlogbeat-ecs": "winlogbeat-ecs",
    "otrf-json": "otrf-json",
    "sentinel-windows": "sentinel-windows",
    "sentinel-windowsevent": "sentinel-windows",
    "exchange-admin-audit": "exchange-admin-audit",
}


def _tables_read(fmt: str, tmp_path: Path) -> tuple[set[str], Counter[str], int]:
    out = tmp_path / fmt
    out.mkdir()
    writers()[fmt].write(generate([SCENARIOS["lightneuron-emulation"]], seed=5, noise=30), out)
    reports = hunt(sorted(out.iterdir()), [], HuntOptions(jobs=1)).reports
    used: Counter[str] = Counter()
    for r in reports:
        used.update(r.used)
    return {r.format for r in reports}, used, sum(r.total_skipped + sum(r.coerced.values()) for r in reports)


@pytest.mark.parametrize("family", ["defender", "windows"])
def test_a_family_s_formats_give_the_same_rows(tmp_path: Path, family: str) -> None:
    """Every format of a family is read by its own reader into the same tables, row for row."""
    fmts = sorted(f for f, w in writers().items() if w.family == family and f in READ_AS)
    assert len(fmts) >= (5 if family == "defender" else 3)
    seen = {}
    for fmt in fmts:
        formats, used, problems = _tables_read(fmt, tmp_path)
        assert formats == {READ_AS[fmt]}, fmt
        assert problems == 0, fmt
        seen[fmt] = used
    first = seen[fmts[0]]
    assert first["DeviceProcessEvents"] > 10
    assert all(used == first for used in seen.values()), seen
