"""Several scenarios in one detect (simulate.layout): own hosts, alerts attributed, nothing leaks."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import load_rules
from exhunt.simulate.check import by_host, by_step, check_all
from exhunt.simulate.formats import writers
from exhunt.simulate.layout import Layout, host_names, lay_out
from exhunt.simulate.scenario import parse, shipped

SCENARIOS = {s.id: s for s in shipped()}
RULES = load_rules(None)


def test_host_names() -> None:
    assert host_names(1, "mx.fabrikam.test") == ["mx.fabrikam.test"]
    assert host_names(3, "exch01.contoso.local") == [
        "exch01-01.contoso.local", "exch01-02.contoso.local", "exch01-03.contoso.local"]
    assert host_names(2, "exch01") == ["exch01-01", "exch01-02"]


def test_owner_by_fqdn_or_short_name_any_case() -> None:
    layout = lay_out([SCENARIOS["benign-edge-children"], SCENARIOS["benign-get-transportagent"]])
    first, second = layout.placed
    assert first.host == "exch01-01.contoso.local" and second.host == "exch01-02.contoso.local"
    assert layout.owner("EXCH01-02") is second
    assert layout.owner("exch01-01.CONTOSO.local") is first
    assert layout.owner("exch01") is None and layout.owner("") is None and layout.owner(None) is None
    # distinct servers: distinct device ids
    assert first.sim.device_id != second.sim.device_id


def test_an_alert_on_no_scenario_s_host_fails() -> None:
    layout = lay_out([SCENARIOS["benign-edge-children"], SCENARIOS["benign-get-transportagent"]])
    rule = RULES[0]
    mine, stray = by_host(layout, [({"DeviceName": "EXCH01-01"}, rule), ({"DeviceName": "exch99"}, rule),
                                   ({}, rule)], "mde-csv")
    assert [len(v) for v in mine.values()] == [1]
    assert [(v.ok, v.scenario) for v in stray] == [(False, "(no scenario)")] * 2
    assert "'exch99', a host no scenario ran on" in stray[0].text


def _found(layout: Layout, fmt: str) -> dict[str, dict[str, dict[str, int]]]:
    writer = writers()[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        paths = layout.write(writer, Path(tmp))
        result = hunt(paths, RULES, HuntOptions(jobs=1))
    mine, stray = by_host(layout, list(zip(result.alerts, result.rules, strict=True)), fmt)
    assert not stray
    return {p.scenario.id: {r: {st: n for (_, st), n in s.items()} for r, s in
                            by_step(p.sim, mine[p.host], writer.resolution).items()} for p in layout.placed}


@pytest.mark.parametrize("fmt", ["mde-csv", "evtx-json"])
def test_together_equals_apart(fmt: str) -> None:
    """The scenarios whose rules join across servers (certificates by SHA1) or correlate per server
    (the chain) give, together, exactly the alerts each gives alone on the same host."""
    ids = ["lightneuron-emulation", "benign-vendor-agent-msi", "benign-exchange-cu-media", "benign-nondefault-root",
           "attack-frontend-agent"]
    together = lay_out([SCENARIOS[i] for i in ids])
    apart: dict[str, dict[str, dict[str, int]]] = {}
    for p in together.placed:
        apart |= _found(Layout([p]), fmt)
    assert _found(together, fmt) == apart


SIGNED = """\
id: signed-load
title: the worker loads Microsoft's own agent DLL
kind: benign
steps:
  - id: load
    image_load: {path: '${agents}\\Hygiene\\Microsoft.Exchange.Transport.Agent.Hygiene.dll',
                 signer: Microsoft Corporation}
expect:
  no_alert: [exchange-transport-foreign-module]
"""
UNSIGNED = """\
id: unsigned-load
title: the worker loads an unsigned DLL at the same path
kind: attack
steps:
  - id: load
    image_load: {path: '${agents}\\Hygiene\\Microsoft.Exchange.Transport.Agent.Hygiene.dll', signed: false}
expect:
  alert:
    - {rule: exchange-transport-foreign-module, steps: [load]}
    - {rule: lightneuron-indicators, steps: [load]}
"""


@pytest.mark.parametrize("fmt", ["mde-csv", "evtx-json"])
def test_a_signed_and_an_unsigned_module_at_one_path_do_not_share_a_signature(fmt: str) -> None:
    """The certificate tables are joined by SHA1 across servers: two different files at one path
    must not share a hash, or one server's unsigned copy would give the other's a signature."""
    signed, unsigned = parse(SIGNED, Path("signed.yaml")), parse(UNSIGNED, Path("unsigned.yaml"))
    layout = lay_out([signed, unsigned])
    loads = {p.scenario.id: next(e for e in p.sim.events if e.kind == "image_load") for p in layout.placed}
    assert loads["signed-load"].data["path"] == loads["unsigned-load"].data["path"]
    assert loads["signed-load"].data["path"].endswith(r"\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll")
    assert loads["signed-load"].data["sha1"] != loads["unsigned-load"].data["sha1"]
    verdicts = check_all([signed, unsigned], fmt, rules=RULES, hunts=False)
    assert [v.text for v in verdicts if not v.ok] == []
    assert [v.scenario for v in verdicts if v.applies] == ["signed-load", "unsigned-load", "unsigned-load"]


def test_hosts_names_each_server() -> None:
    """A fleet whose names a test refers to: `hosts` one by one, each in its own folder when written."""
    picked = [SCENARIOS["benign-edge-children"], SCENARIOS["benign-get-transportagent"]]
    layout = lay_out(picked, hosts=["mx1.fabrikam.test", "exch07.contoso.local"])
    assert [p.host for p in layout.placed] == ["mx1.fabrikam.test", "exch07.contoso.local"]
    assert {e.host for e in layout.placed[1].sim.events} == {"exch07.contoso.local"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = layout.write(writers()["evtx-json"], Path(tmp))
        assert [p.relative_to(tmp).as_posix() for p in paths] == [
            "01-benign-edge-children/mx1.evtx.jsonl", "02-benign-get-transportagent/exch07.evtx.jsonl"]
    with pytest.raises(ValueError, match="1 host names for 2 scenarios"):
        lay_out(picked, hosts=["mx1.fabrikam.test"])
