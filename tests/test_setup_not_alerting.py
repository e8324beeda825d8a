"""An Exchange update from any of its real locations raises nothing; its twins still alert.

Every shipped rule runs (`exhunt detect`, no rule filter) over the same logical updates written
as a Defender export and as Sysmon/Security events in evtx_dump JSON (tests/update_gen.py):
cumulative updates from media on D:, E: and an ISO mounted as G: (Setup.exe, its staging copy in
C:\\Windows\\Temp\\ExchangeSetup, ExSetup.exe on the media), Windows Installer writing the product
and applying a security update (service and custom-action host), the install's own Bin\\ExSetup.exe,
each followed by a transport restart. The twins use the same names from a download folder, a temp
subfolder, a share, ProgramData, outside the Windows folders, or the right place with a foreign
signature, and must raise exactly the listed alerts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from exhunt.rule import load_rules
from update_gen import Host, relocated, twins, updates, write_defender, write_sysmon

SLUGS = {r.id: r.slug for r in load_rules()}


def _alerts(paths: list[Path]) -> list[dict[str, object]]:
    code, out, err = run_cli(["detect", *map(str, paths), "-f", "jsonl", "--flat"])
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _keys(alerts: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    """(rule, host, file, where it was seen) of each alert, sorted."""
    return sorted((SLUGS[str(a["rule_id"])], str(a["DeviceName"]).lower(), str(a.get("FileName") or ""),
                   str(a.get("Source") or "")) for a in alerts)


def _write(form: str, folder: Path, hosts: list[Host]) -> list[Path]:
    if form == "defender":
        return write_defender(folder, hosts)
    return [write_sysmon(folder / "exch-sysmon.evtx.jsonl", hosts)]


FORMS = ["defender", "sysmon"]


@pytest.mark.parametrize("form", FORMS)
def test_exchange_updates_raise_nothing(tmp_path: Path, form: str) -> None:
    alerts = _alerts(_write(form, tmp_path / form, updates()))
    assert _keys(alerts) == []


def test_the_update_data_reaches_the_rules(tmp_path: Path) -> None:
    """The updates are not silent by accident: the very same writes, made by the same binaries
    (same hashes and Microsoft signatures) moved to a download folder, alert in every rule that
    judges the writer, in both renderings."""
    moved = relocated(updates(), r"C:\Users\x\Downloads")
    for form in FORMS:
        got = {k[0] for k in _keys(_alerts(_write(form, tmp_path / form, moved)))}
        assert got == {"exchange-agent-dll-placement", "exchange-agent-config-tampering",
                       "exchange-transport-agent-chain"}, form


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


@pytest.mark.parametrize("form", FORMS)
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
