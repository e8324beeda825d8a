"""`hunts:` in scenarios: every shipped hunt tested on a scenario; the hunts fixed on simulated data."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt import hunts
from exhunt.rule import load_rules
from exhunt.simulate.check import check_all
from exhunt.simulate.scenario import shipped

SCENARIOS = {s.id: s for s in shipped()}
RULES = load_rules(None)


def test_every_shipped_hunt_is_in_a_scenario_s_hunts_block() -> None:
    covered = {e.hunt for sc in SCENARIOS.values() for e in sc.hunts}
    assert covered == set(hunts.shipped())


def test_every_shipped_hunt_passes_on_a_defender_and_a_windows_format() -> None:
    """Each hunt is judged (not n/a) and passes somewhere; nothing fails anywhere."""
    chosen = [sc for sc in SCENARIOS.values() if sc.hunts]
    passed: set[str] = set()
    for fmt in ("mde-csv", "evtx-json"):
        for v in check_all(chosen, fmt, rules=RULES):
            assert v.ok, (v.scenario, v.format, v.text)
            if v.text.startswith("hunt ") and v.applies:
                passed.add(v.text.split()[1])
    assert passed == set(hunts.shipped())


def _simulate(tmp_path: Path, scenario: str, fmt: str) -> Path:
    out = tmp_path / fmt
    code, _, err = run_cli(["simulate", scenario, "--format", fmt, "--out", str(out)])
    assert code == 0, err
    return out


def _hunt(folder: Path, name: str, *params: str) -> list[dict[str, str]]:
    args = ["hunt", name, str(folder), "-q", "-f", "csv"]
    for p in params:
        args += ["--param", p]
    code, out, err = run_cli(args)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


@pytest.mark.parametrize("fmt", ["mde-csv", "evtx-json"])
def test_transport_agent_cmdlets_finds_an_encoded_install(tmp_path: Path, fmt: str) -> None:
    rows = _hunt(_simulate(tmp_path, "attack-encoded-command", fmt), "transport-agent-cmdlets")
    process = [r for r in rows if r["Source"] == "process"]
    assert process, rows  # the command line holds no cmdlet name in clear
    assert all("-EncodedCommand" in r["What"] and "[decoded: " in r["What"] for r in process)
    assert all("Install-TransportAgent -Name \"Mail Archive Agent\"" in r["What"] for r in process)


def test_transport_child_writes_on_sysmon_finds_the_child_through_its_start(tmp_path: Path) -> None:
    """Sysmon 11 has no parent columns: the writer is found among EdgeTransport's children."""
    folder = _simulate(tmp_path, "benign-edge-children", "evtx-json")
    rows = _hunt(folder, "transport-child-writes", "Host=exch01.contoso.local")
    assert [(r["InitiatingProcessFileName"], r["FolderPath"].rsplit("\\", 1)[-1]) for r in rows] == [
        ("WerFault.exe", "Report.wer")]
    assert _hunt(folder, "transport-child-writes", "Host=other.contoso.local") == []


@pytest.mark.parametrize("fmt", ["mde-csv", "evtx-json"])
def test_transport_children_leaves_out_the_worker_s_own_start(tmp_path: Path, fmt: str) -> None:
    rows = _hunt(_simulate(tmp_path, "lightneuron-emulation", fmt), "transport-children")
    assert {(r["InitiatingProcessFileName"], r["FileName"]) for r in rows} == {("EdgeTransport.exe", "cmd.exe")}


def test_cmdlet_log_hunts_match_the_short_server_name_to_an_fqdn(tmp_path: Path) -> None:
    """The admin audit log names the server EXCH01; --param Host=exch01.contoso.local still finds it."""
    folder = _simulate(tmp_path, "attack-encoded-command", "exchange-admin-audit")
    for name, params in (("agent-install-history", ["Agent=Mail Archive Agent"]), ("transport-agent-cmdlets", []),
                         ("lightneuron-activity", []), ("server-timeline", [])):
        rows = _hunt(folder, name, "Host=exch01.contoso.local", *params)
        assert len(rows) == 2, (name, rows)
        assert _hunt(folder, name, "Host=exch02.contoso.local", *params) == []
        assert _hunt(folder, name, "Host=exch01.contoso", *params) == rows


BASE = ("id: x\ntitle: t\nkind: attack\nsteps:\n  - id: a\n    process: {image: i, command_line: c}\n"
        "hunts:\n")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - {hunt: nope, steps: [a]}\n", r"mine.yaml:8: no hunt named 'nope'"),
        ("  - {hunt: transport-loads, steps: [a]}\n", r"mine.yaml:8: hunt transport-loads needs params Dll"),
        ("  - {hunt: pickup-writes, params: {Dll: x}, steps: [a]}\n",
         r"mine.yaml:8: hunt pickup-writes has no parameter 'Dll'"),
        ("  - {hunt: pickup-writes, steps: [b]}\n", r"mine.yaml:8: hunt pickup-writes: no step with id b"),
        ("  - {hunt: pickup-writes}\n", r"mine.yaml:8: hunt pickup-writes: name the steps"),
        ("  - {hunt: pickup-writes, steps: [a], rows: -1}\n", r"mine.yaml:8: rows: a whole number"),
        ("  - {hunt: pickup-writes, steps: [a], rows: 1, min_rows: 1}\n", r"mine.yaml:8: .*not both"),
        ("  - {hunt: process-activity, params: {Pid: '${pid:zz}'}, steps: [a]}\n",
         r"mine.yaml:8: params Pid: \$\{pid:zz\}"),
        ("  - {hunt: pickup-writes, steps: [a], colour: red}\n", r"mine.yaml:8: a `hunts` entry takes"),
        ("  - {hunt: pickup-writes, steps: [a], on: [mars]}\n", r"mine.yaml:8: `on` takes"),
    ],
)
def test_hunts_block_errors_name_file_and_line(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(BASE + entry)
    code, out, err = run_cli(["simulate", str(path), "--check", "--format", "mde-csv"])
    assert code == 2
    assert re.search(message, " ".join((out + err).split())), out + err


USER = """\
id: my-pickup
title: the worker drops mail in Pickup
kind: attack
steps:
  - id: drop
    file: {action: created, path: '${pickup}\\msg1234.eml', size: 2048}
expect:
  alert:
    - {rule: exchange-pickup-drop-by-transport, steps: [drop]}
hunts:
  - {hunt: pickup-writes, steps: [drop], rows: 1,
     columns: {FileSize: 2048, InitiatingProcessFileName: edgetransport.exe}}
"""


def test_user_hunts_block_pass_and_fail(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER)
    code, out, err = run_cli(["simulate", str(path), "--check", "--format", "mde-csv"])
    assert code == 0, out + err
    assert "PASS  my-pickup [mde-csv]  hunt pickup-writes returns drop (1 row(s))" in out, out + err
    path.write_text(USER.replace("FileSize: 2048", "FileSize: 99"))
    code, out, err = run_cli(["simulate", str(path), "--check", "--format", "mde-csv"])
    assert code == 1
    assert "FAIL  my-pickup [mde-csv]  hunt pickup-writes returns drop (1 row(s)); FileSize is 2048, not 99" in out


def test_several_scenarios_one_detect_each_on_its_host(tmp_path: Path) -> None:
    """Two scenarios in one --check: each judged on its own host, verdicts in order; a failing one exits 1."""
    path = tmp_path / "mine.yaml"
    path.write_text(USER)
    code, out, err = run_cli(["simulate", "benign-edge-children", str(path), "--check", "--format", "mde-csv"])
    assert code == 0, out + err
    ids = [line.split()[1] for line in out.splitlines() if line.startswith(("PASS", "FAIL", "N/A"))]
    assert ids == sorted(ids, key=["benign-edge-children", "my-pickup"].index) and set(ids) == {
        "benign-edge-children", "my-pickup"}
    path.write_text(USER.replace("    - {rule: exchange-pickup-drop-by-transport, steps: [drop]}\n", ""))
    code, out, _ = run_cli(["simulate", "benign-edge-children", str(path), "--check", "--format", "mde-csv"])
    assert code == 1
    assert "FAIL  my-pickup [mde-csv]  exchange-pickup-drop-by-transport: unexpected alert on drop" in out


def test_list_names_each_scenario_s_hunts() -> None:
    code, out, _ = run_cli(["simulate", "--list"])
    assert code == 0
    block = out.split("attack-agent-load-failure (attack)")[1].split("\nattack-")[0]
    assert "    hunts:      agent-install-history, transport-agent-cmdlets, transport-errors, transport-loads" in block
