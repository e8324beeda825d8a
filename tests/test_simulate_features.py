"""Generator features the issue-13 scenarios need: Exchange's install root (scenario `exchange_root`,
`--exchange-root`), a process's signature (Defender's certificate table, Sysmon 7 of its own image),
a script block's `runs`, and `expect.tuned` (a tuning file and what still alerts under it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import load_rules
from exhunt.simulate.check import check
from exhunt.simulate.events import generate
from exhunt.simulate.formats import writers
from exhunt.simulate.formats.evtx_json import documents
from exhunt.simulate.scenario import KNOWN_VENDORS, parse, shipped

SCENARIOS = {s.id: s for s in shipped()}
RULES = {r.slug: r for r in load_rules(None)}
TRANSPORT = {"MSExchangeTransport.exe", "EdgeTransport.exe", "MSExchangeFrontendTransport.exe"}


def _cli(*args: str) -> tuple[int, str]:
    code, out, err = run_cli(list(args))
    return code, out + err


# -- the install root ---------------------------------------------------------------------------


def test_the_transport_processes_follow_the_scenario_s_root() -> None:
    sim = generate([SCENARIOS["benign-nondefault-root"]])
    images = {e.proc.image for e in sim.events if e.proc is not None and e.proc.file_name in TRANSPORT}
    assert images == {
        r"E:\Exchange\Bin\MSExchangeTransport.exe",
        r"E:\Exchange\Bin\EdgeTransport.exe",
        r"E:\Exchange\Bin\MSExchangeFrontendTransport.exe",
    }
    loads = sorted(e.data["path"] for e in sim.events if e.kind == "image_load")
    assert loads == [
        r"E:\Exchange\Bin\Microsoft.Exchange.Data.Transport.dll",
        r"E:\Exchange\Bin\Microsoft.Exchange.Data.Transport.dll",
        r"E:\Exchange\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
    ]


def test_the_same_loads_from_another_install_than_the_worker_s_alert(tmp_path: Path) -> None:
    """The control for benign-nondefault-root: the same E:\\Exchange paths written out while the transport
    processes stay on the default root are loads from outside the worker's install."""
    text = SCENARIOS["benign-nondefault-root"].path.read_text(encoding="utf-8")
    text = text.replace("exchange_root: 'E:\\Exchange'\n", "").replace("${bin}", r"E:\Exchange\Bin")
    text = text.replace("${agents}", r"E:\Exchange\TransportRoles\agents")
    sc = parse(text, Path("control.yaml"))
    assert sc.exchange_root == ""
    writers()["mde-csv"].write(generate([sc]), tmp_path)
    result = hunt(sorted(tmp_path.iterdir()), [RULES["exchange-transport-foreign-module"]], HuntOptions(jobs=1))
    assert sorted(a["FolderPath"] for a in result.alerts) == [
        r"E:\Exchange\Bin\Microsoft.Exchange.Data.Transport.dll",
        r"E:\Exchange\Bin\Microsoft.Exchange.Data.Transport.dll",
        r"E:\Exchange\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
    ]


def test_exchange_root_option_writes_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "o"
    code, text = _cli("simulate", "benign-edge-children", "-f", "mde-csv", "-o", str(out),
                      "--exchange-root", "D:\\Apps\\Exchange\\")
    assert code == 0, text
    _, *rows = (out / "DeviceProcessEvents.csv").read_text(encoding="utf-8").splitlines()
    assert any(r"D:\Apps\Exchange\Bin\OleConverter.exe" in r for r in rows)
    assert not any("Exchange Server" in r for r in rows)
    code, text = _cli("simulate", "benign-edge-children", "--check", "-f", "evtx-json",
                      "--exchange-root", "D:\\Apps\\Exchange")
    assert code == 0, text
    assert "PASS  benign-edge-children [evtx-json]  exchange-transport-process-child does not alert" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["benign-nondefault-root", "--exchange-root", "D:\\X"],
         r"scenario benign-nondefault-root installs Exchange at E:\\Exchange, but --exchange-root is D:\\X"),
        (["attack-nondefault-root-dll", "benign-nondefault-root"],
         r"installs Exchange at E:\\Exchange, but scenario attack-nondefault-root-dll \(.*\) sets E:\\Exchange\\V15:"
         r" one run is one server"),
        (["benign-edge-children", "--exchange-root", "\\\\fs01\\exchange"],
         r"--exchange-root '.*fs01.*exchange': a local folder"),
        (["benign-edge-children", "--exchange-root", "E:\\"], r"a local folder such as"),
    ],
)
def test_exchange_root_refusals(tmp_path: Path, args: list[str], message: str) -> None:
    code, text = _cli("simulate", *args, "-f", "mde-csv", "-o", str(tmp_path / "o"))
    assert code == 2
    assert re.search(message, " ".join(text.split())), text
    assert not (tmp_path / "o").exists()


def test_the_same_root_twice_is_one_server() -> None:
    sc = SCENARIOS["benign-nondefault-root"]
    same = parse(sc.path.read_text(encoding="utf-8").replace("id: benign-nondefault-root", "id: again")
                 .replace("'E:\\Exchange'", "'e:\\exchange\\'"), sc.path)
    sim = generate([sc, same], exchange_root="E:\\EXCHANGE")
    assert {e.proc.image for e in sim.events if e.proc is not None and e.proc.file_name == "EdgeTransport.exe"} == {
        r"E:\EXCHANGE\Bin\EdgeTransport.exe"
    }


# -- a process's signature --------------------------------------------------------------------


def test_a_signed_process_loads_its_own_signed_image_in_sysmon() -> None:
    docs = [d["Event"] for d in documents(generate([SCENARIOS["attack-fake-exsetup"]]))]
    starts = {d["EventData"]["Image"]: d["EventData"] for d in docs if d["System"]["EventID"] == 1}
    loads = {d["EventData"]["ImageLoaded"]: d["EventData"] for d in docs if d["System"]["EventID"] == 7}
    assert set(loads) == set(starts) == {r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe", r"C:\Setup.exe"}
    for image, load in loads.items():
        assert load["Image"] == image and load["ProcessGuid"] == starts[image]["ProcessGuid"]
        assert load["Hashes"] == starts[image]["Hashes"]
    fake, foreign = loads[r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe"], loads[r"C:\Setup.exe"]
    assert (fake["Signed"], fake["Signature"], fake["SignatureStatus"]) == ("false", "-", "Unavailable")
    assert (foreign["Signed"], foreign["Signature"], foreign["SignatureStatus"]) == (
        "true", "Tailspin Toys Ltd", "Valid"
    )


def test_a_process_without_signature_facts_has_no_image_load() -> None:
    docs = documents(generate([SCENARIOS["benign-edge-children"]]))
    assert not [d for d in docs if d["Event"]["System"]["EventID"] == 7]


def test_defender_keeps_a_process_s_signature_by_its_hash(tmp_path: Path) -> None:
    writers()["mde-api"].write(generate([SCENARIOS["benign-exchange-cu-tempcopy"]]), tmp_path)
    procs = json.loads((tmp_path / "DeviceProcessEvents-api.json").read_text())["Results"]
    certs = json.loads((tmp_path / "DeviceFileCertificateInfo-api.json").read_text())["Results"]
    sha1 = {p["FileName"]: p["SHA1"] for p in procs}
    assert sorted((c["SHA1"], c["Signer"], c["IsSigned"], c["IsTrusted"]) for c in certs) == sorted(
        [(sha1["Setup.exe"], "Microsoft Corporation", True, True),
         (sha1["ExSetup.exe"], "Microsoft Corporation", True, True)]
    )


def test_a_differently_signed_copy_is_another_file() -> None:
    """Same path, other signature, other hash: a certificate table cannot mix the fake and the real one."""
    fake = generate([SCENARIOS["attack-fake-exsetup"]]).events
    real = generate([SCENARIOS["benign-exchange-cu-tempcopy"]]).events
    path = r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe"
    (a,) = {e.proc.sha1 for e in fake if e.kind == "process" and e.proc and e.proc.image == path}
    (b,) = {e.proc.sha1 for e in real if e.kind == "process" and e.proc and e.proc.image == path}
    assert a != b


# -- parsing errors -----------------------------------------------------------------------------

HEAD = "id: x\ntitle: t\nkind: benign\n"
STEP = "steps:\n  - id: a\n    cmdlet_log: {cmdlet: Install-TransportAgent}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD + "exchange_root: Exchange\n" + STEP, r"x.yaml:1: exchange_root 'Exchange': a local folder"),
        (HEAD + "steps:\n  - process: {image: a, command_line: b, signed: maybe}\n",
         r"x.yaml:5: signed: true or false, not 'maybe'"),
        (HEAD + "steps:\n  - process: {image: a, command_line: b, signed: false, signer: Contoso}\n",
         r"x.yaml:5: signed: false with a signer \('Contoso'\)"),
        (HEAD + "steps:\n  - process: {name: p, image: a, command_line: b}\n"
         "  - script_block: {by: p, text: t, runs: Get-Item}\n", r"x.yaml:6: script_block runs: a list"),
        (HEAD + STEP + "expect:\n  tuned: {tuning: nowhere.yaml}\n", r"x.yaml:8: expect.tuned.tuning: no such file"),
        (HEAD + STEP + "expect:\n  tuned: {tuning: known-vendors, skip: 1}\n",
         r"x.yaml:8: expect.tuned takes tuning \(a tuning file\) and alert"),
        (HEAD + STEP + "expect:\n  tuned:\n    tuning: known-vendors\n    alert:\n      - {rule: r, steps: [b]}\n",
         r"x.yaml:11: alert r: no step with id b"),
        (HEAD + STEP + "expect:\n  untuned: []\n", r"x.yaml:8: expect takes alert, no_alert and tuned"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, out = _cli("simulate", str(path), "-f", "evtx-json", "-o", str(tmp_path / "o"))
    assert code == 2
    assert re.search(message, " ".join(out.split())), out


# -- expect.tuned -------------------------------------------------------------------------------

DKIM = HEAD.replace("benign", "benign") + """\
steps:
  - id: install
    cmdlet_log:
      cmdlet: Install-TransportAgent
      params: >-
        -Name "Exchange DkimSigner" -TransportAgentFactory "Exchange.DkimSigner.DkimSigningRoutingAgentFactory"
        -AssemblyPath "C:\\Program Files\\Exchange DkimSigner\\ExchangeDkimSigner.dll"
  - id: enable
    cmdlet_log: {cmdlet: Enable-TransportAgent, params: '-Identity "Exchange DkimSigner"'}
expect:
  alert:
    - {rule: exchange-transport-agent-cmdlet, steps: [install, enable], on: [windows]}
  tuned:
    tuning: known-vendors
    alert:
      - {rule: exchange-transport-agent-cmdlet, steps: [enable], on: [windows], note: the name alone is never enough}
"""


def test_tuned_with_the_shipped_known_vendors(tmp_path: Path) -> None:
    sc = parse(DKIM, tmp_path / "dkim.yaml")
    assert sc.tuning == KNOWN_VENDORS
    verdicts = [(v.ok, v.text) for v in check(sc, "evtx-json", rules=list(RULES.values()))]
    assert verdicts == [
        (True, "exchange-transport-agent-cmdlet alerts on install, enable"),
        (True, "tuned with known-vendors: exchange-transport-agent-cmdlet alerts on enable"),
    ]
    # a wrong claim about the tuned run fails: the install is suppressed, so "still alerts on install" is a miss
    wrong = parse(DKIM.replace("steps: [enable], on: [windows], note", "steps: [install, enable], on: [windows], note"),
                  tmp_path / "dkim.yaml")
    verdicts = [(v.ok, v.text) for v in check(wrong, "evtx-json", rules=list(RULES.values()))]
    assert verdicts[-1] == (
        False, "tuned with known-vendors: exchange-transport-agent-cmdlet alerts on install, enable; missed install"
    )


def test_a_rule_the_tuning_leaves_alerting_fails(tmp_path: Path) -> None:
    """Every raw alert not listed under tuned must be suppressed: an empty tuning file suppresses nothing."""
    (tmp_path / "empty.yaml").write_text("[]\n")
    text = DKIM.split("  tuned:")[0] + "  tuned:\n    tuning: empty.yaml\n"
    sc = parse(text, tmp_path / "dkim.yaml")
    verdicts = [(v.ok, v.text) for v in check(sc, "evtx-json", rules=list(RULES.values()))]
    assert verdicts[-1] == (
        False,
        "tuned with empty.yaml: exchange-transport-agent-cmdlet suppressed (0 alert(s));"
        " still alerts on enable, install",
    )


def test_list_shows_root_and_tuning() -> None:
    code, text = _cli("simulate", "--list")
    assert code == 0
    assert "benign-vendor-agent-msi (benign)" in text
    assert ("    tuned with northwind-signatures.yaml, still alerts: exchange-agent-config-tampering,"
            " exchange-transport-agent-chain") in text
    assert "    Exchange at: E:\\Exchange\n" in text


def test_runs_is_what_defender_records(tmp_path: Path) -> None:
    text = HEAD + """\
steps:
  - {id: shell, process: {name: shell, image: '${ps}', command_line: powershell.exe}}
  - {id: block, script_block: {by: shell, text: 'function Install-TransportAgent {}; Get-Date', runs: [Get-Date]}}
"""
    writers()["mde-csv"].write(generate([parse(text, tmp_path / "x.yaml")]), tmp_path)
    rows = (tmp_path / "DeviceEvents.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == 1 and "Get-Date" in rows[0]
