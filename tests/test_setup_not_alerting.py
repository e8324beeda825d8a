"""An Exchange update from any of its real locations raises nothing; its twins still alert.

Every shipped rule runs (`exhunt detect`, no rule filter) over the same simulated updates written
as a Defender export (mde-csv) and as Sysmon/Security events in evtx_dump JSON (evtx-json), one
server per scenario (tests/fixtures/updates/, placed by simulate.layout): cumulative updates from
media on D:, E: (no signatures recorded) and an ISO mounted as G: (Setup.exe, its staging copy in
C:\\Windows\\Temp\\ExchangeSetup, ExSetup.exe on the media), Windows Installer writing the product
and applying a security update (service and custom-action host), the install's own Bin\\ExSetup.exe,
each followed by a transport restart, the agent lists audited (Security 4663). The twins use the
same names from a download folder, a temp subfolder, a share, ProgramData, outside the Windows
folders, or the right place with a foreign signature, and must raise exactly the listed alerts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt.rule import load_rules
from exhunt.simulate.formats import writers
from exhunt.simulate.layout import lay_out
from exhunt.simulate.scenario import Scenario, load_file, with_vars

SLUGS = {r.id: r.slug for r in load_rules()}
UPDATES = Path(__file__).parent / "fixtures" / "updates"
FORMS = {"defender": "mde-csv", "sysmon": "evtx-json"}
Fleet = list[tuple[str, Scenario]]


def _load(name: str) -> Scenario:
    return load_file(UPDATES / f"{name}.yaml")


def updates() -> Fleet:
    """Five servers updated five real ways."""
    cu = _load("cu-media")
    unsigned = {"media": "E:", "ms": "", "windows": "", "exsetup_sha1": "", "setup_sha1": "", "msiexec_sha1": ""}
    return [
        ("exch01.contoso.local", cu),
        ("exch02.contoso.local", with_vars(cu, unsigned, "cu-media-unsigned")),
        ("exch03.contoso.local", with_vars(cu, {"media": "G:"}, "cu-media-iso")),
        ("exch04.contoso.local", _load("su-msiexec")),
        ("exch05.contoso.local", _load("exsetup-from-bin")),
    ]


def twins() -> Fleet:
    """One twin a server; exch11 also restarts transport (a chain)."""
    twin = _load("twin")
    shapes = [
        ("exch12", r"C:\Windows\Temp\x\ExSetup.exe", "Microsoft Corporation", r"${bin}\Contoso.Bin.dll"),
        ("exch13", r"\\fs01\installs\Exchange2019-CU15\Setup\ServerRoles\Common\ExSetup.exe", "",
         r"${shared}\agents.config"),
        ("exch14", r"C:\ProgramData\ExSetup.exe", "", r"${shared}\fetagents.config"),
        ("exch15", r"C:\Users\Public\msiexec.exe", "", r"${exchange}\FrontEnd\TransportAgent\Contoso.Fet.dll"),
        ("exch16", r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe", "Fabrikam Tools Ltd",
         r"${agents}\Hook\Contoso.Hook.dll"),
    ]
    return [("exch11.contoso.local", _load("twin-chain"))] + [
        (f"{name}.contoso.local",
         with_vars(twin, {"writer": writer, "signer": signer, "target": target}, f"twin-{name}"))
        for name, writer, signer, target in shapes
    ]


def relocated(fleet: Fleet, folder: str) -> Fleet:
    """The same servers with every writer moved into `folder` (same name, hash and signer)."""
    def move(sc: Scenario) -> Scenario:
        steps = [
            replace(s, fields={**s.fields, "image": folder + "\\" + str(s.fields["image"]).rsplit("\\", 1)[-1]})
            if s.kind == "process" else s
            for s in sc.steps
        ]
        return replace(sc, steps=steps)

    return [(host, move(sc)) for host, sc in fleet]


def _write(form: str, folder: Path, fleet: Fleet) -> list[Path]:
    """Each server's files in a folder of its own."""
    layout = lay_out([sc for _, sc in fleet], hosts=[host for host, _ in fleet])
    return layout.write(writers()[FORMS[form]], folder)


def _alerts(paths: list[Path]) -> list[dict[str, object]]:
    code, out, err = run_cli(["detect", *map(str, paths), "-f", "jsonl", "--flat"])
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _keys(alerts: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    """(rule, host, file, where it was seen) of each alert, sorted."""
    return sorted((SLUGS[str(a["rule_id"])], str(a["DeviceName"]).lower(), str(a.get("FileName") or ""),
                   str(a.get("Source") or "")) for a in alerts)


@pytest.mark.parametrize("form", list(FORMS))
def test_exchange_updates_raise_nothing(tmp_path: Path, form: str) -> None:
    alerts = _alerts(_write(form, tmp_path / form, updates()))
    assert _keys(alerts) == []


def test_the_update_data_reaches_the_rules(tmp_path: Path) -> None:
    """The updates are not silent by accident: the very same writes, made by the same binaries
    (same hashes and Microsoft signatures) moved to a download folder, alert in every rule that
    judges the writer, in both renderings."""
    moved = relocated(updates(), r"C:\Users\x\Downloads")
    audited = sum(1 for _, sc in moved for s in sc.steps if s.kind == "file" and s.fields.get("audited"))
    for form in FORMS:
        keys = _keys(_alerts(_write(form, tmp_path / form, moved)))
        assert {k[0] for k in keys} == {"exchange-agent-dll-placement", "exchange-agent-config-tampering",
                                        "exchange-transport-agent-chain"}, form
        # each audited agent-list write reaches the rule through its 4663 too (Windows form only)
        assert sum(k[3] == "SecurityEvent 4663" for k in keys) == (audited if form == "sysmon" else 0), form
    assert audited == 8


TWIN_ALERTS = [
    ("exchange-agent-config-tampering", "exch13.contoso.local", "agents.config", "DeviceFileEvents"),
    ("exchange-agent-config-tampering", "exch14.contoso.local", "fetagents.config", "DeviceFileEvents"),
    ("exchange-agent-dll-placement", "exch11.contoso.local", "Contoso.Relay.dll", ""),
    ("exchange-agent-dll-placement", "exch12.contoso.local", "Contoso.Bin.dll", ""),
    ("exchange-agent-dll-placement", "exch15.contoso.local", "Contoso.Fet.dll", ""),
    ("exchange-agent-dll-placement", "exch16.contoso.local", "Contoso.Hook.dll", ""),
    ("exchange-transport-agent-chain", "exch11.contoso.local", "", ""),
]

#: Windows auditing (4663 on the agent lists) is only in the Sysmon/Security rendering.
AUDIT_ALERTS = [
    ("exchange-agent-config-tampering", "exch13.contoso.local", "agents.config", "SecurityEvent 4663"),
    ("exchange-agent-config-tampering", "exch14.contoso.local", "fetagents.config", "SecurityEvent 4663"),
]


@pytest.mark.parametrize("form", list(FORMS))
def test_twins_still_alert_exactly(tmp_path: Path, form: str) -> None:
    alerts = _alerts(_write(form, tmp_path / form, twins()))
    expected = sorted(TWIN_ALERTS + (AUDIT_ALERTS if form == "sysmon" else []))
    assert _keys(alerts) == expected
    signers = {str(a["FileName"]): a.get("WriterSigner") for a in alerts if a.get("FileName") == "Contoso.Hook.dll"}
    assert signers == {"Contoso.Hook.dll": "not Microsoft (Fabrikam Tools Ltd)"}
BLOCK = ("// ---- Exchange update writers: the same block", "// ---- end of the Exchange update writers block ----")
TAIL = ("// ---- Exchange update writers: FromUpdater for each file event", "// ---- end ----")


def _between(text: str, marks: tuple[str, str]) -> str:
    start = text.index(marks[0])
    return text[start:text.index(marks[1], start)]


def test_every_rule_judges_updates_with_the_one_shared_block() -> None:
    """Rules are exported to Sentinel as they are, so they cannot share a function: the update
    writers block is repeated, and must stay identical wherever a rule judges a setup or
    Windows Installer writer (the seed is the published text, kept as it is)."""
    judging = [r for r in load_rules() if r.slug != "exchange-transport-agent-seed"
               and any(n in r.query.lower() for n in ("exsetup", "msiexec"))]
    assert sorted(r.slug for r in judging) == ["exchange-agent-config-tampering", "exchange-agent-dll-placement",
                                               "exchange-transport-agent-chain"]
    assert len({_between(r.query, BLOCK) for r in judging}) == 1
    assert len({_between(r.query, TAIL) for r in judging}) == 1
