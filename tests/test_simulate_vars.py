"""Scenario `vars:`: names a step's text uses as ${name}, with defaults a caller overrides
(`with_vars`): one scenario file, several servers that differ in a drive letter, a folder or a signer."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.errors import UsageError
from exhunt.simulate.events import generate
from exhunt.simulate.formats import _defender
from exhunt.simulate.formats.evtx_json import documents
from exhunt.simulate.scenario import parse, with_vars

TEXT = """\
id: vars-demo
title: t
kind: benign
vars:
  media: 'D:'
  signer: Microsoft Corporation
  target: '${agents}\\Hygiene\\x.dll'
steps:
  - id: setup
    process: {name: setup, image: '${media}\\Setup.exe', command_line: '${media}\\Setup.exe /Mode:Upgrade',
              signer: '${signer}', sha1: '${sha1_of_setup}'}
  - id: write
    file: {action: created, by: setup, path: '${target}'}
"""
AGENTS = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents"


def _parse(text: str = TEXT):  # type: ignore[no-untyped-def]
    return parse(text, Path("vars.yaml"))


def _written(sc) -> tuple[str, str, str, str]:  # type: ignore[no-untyped-def]
    sim = generate([sc])
    proc = next(e.proc for e in sim.events if e.kind == "process" and e.step == "setup")
    path = next(e.data["path"] for e in sim.events if e.kind == "file")
    assert proc is not None
    return proc.image, proc.command_line, proc.signer, path


def test_defaults_fill_the_steps_and_a_var_may_name_a_place() -> None:
    sc = _parse()
    assert sc.vars == {"media": "D:", "signer": "Microsoft Corporation", "target": r"${agents}\Hygiene\x.dll"}
    assert _written(sc) == (r"D:\Setup.exe", r"D:\Setup.exe /Mode:Upgrade", "Microsoft Corporation",
                            AGENTS + r"\Hygiene\x.dll")


def test_an_unknown_name_stays_as_written() -> None:
    # ${sha1_of_setup} is no var and no place: the text keeps it (as for any ${name} the simulator lacks)
    sim = generate([_parse()])
    assert next(e.proc for e in sim.events if e.step == "setup").sha1 == "${sha1_of_setup}"  # type: ignore[union-attr]


def test_with_vars_overrides_some_and_renames() -> None:
    sc = _parse()
    other = with_vars(sc, {"media": "G:"}, "vars-demo-iso")
    assert (other.id, sc.id) == ("vars-demo-iso", "vars-demo")
    assert _written(other) == (r"G:\Setup.exe", r"G:\Setup.exe /Mode:Upgrade", "Microsoft Corporation",
                               AGENTS + r"\Hygiene\x.dll")
    assert _written(sc)[0] == r"D:\Setup.exe"  # the original is unchanged


def test_an_empty_signer_is_no_signature_recorded() -> None:
    sim = generate([with_vars(_parse(), {"signer": ""})])
    assert "DeviceFileCertificateInfo" not in _defender.rows(sim)
    assert [d["Event"]["System"]["EventID"] for d in documents(sim)] == [1, 4688, 11]
    signed = generate([_parse()])
    assert len(_defender.rows(signed)["DeviceFileCertificateInfo"]) == 1


def test_overriding_an_undeclared_var_is_refused() -> None:
    with pytest.raises(UsageError, match=r"vars\.yaml: scenario vars-demo has no var medai \(its vars: media, signer,"
                                         r" target\)"):
        with_vars(_parse(), {"medai": "E:"})


@pytest.mark.parametrize(
    ("vars_text", "message"),
    [
        ("vars: [a, b]", r"vars\.yaml:4: vars: a mapping of names to texts"),
        ("vars: {bin: 'D:'}", r"vars\.yaml:4: vars: 'bin': a lower-case name .* not one of the simulator's own"),
        ("vars: {Media: 'D:'}", r"vars\.yaml:4: vars: 'Media': a lower-case name"),
        ("vars: {media: [D, E]}", r"vars\.yaml:4: vars: media: a text or a number, not \['D', 'E'\]"),
    ],
)
def test_bad_vars_name_file_and_line(vars_text: str, message: str) -> None:
    head, _, tail = TEXT.partition("vars:\n")
    text = head + vars_text + "\nsteps:" + tail.split("steps:", 1)[1]
    with pytest.raises(UsageError, match=message):
        _parse(text)
