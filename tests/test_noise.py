"""The one noise model (exhunt.simulate.noise): `simulate --noise` and bench/bench_detect.py both draw
from its templates, and the noise changes no scenario's alerts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from conftest import run_cli
from exhunt.rule import load_rules
from exhunt.simulate import noise
from exhunt.simulate.check import judge
from exhunt.simulate.events import DEFAULT_EXCHANGE_ROOT, generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import shipped

SCENARIOS = {s.id: s for s in shipped()}
_CHECKED = {  # the event's fields each kind's template is known by
    "process": ("image", "command_line", "parent"),
    "file": ("image", "target"),
    "image_load": ("image", "target"),
    "network": ("image", "target", "value"),
    "registry": ("image", "target", "value"),
}


def _pattern(text: str) -> str:
    """A template's text as a regex: {n} any number, {u} any of noise.USERS."""
    text = re.escape(text.replace("${exchange}", DEFAULT_EXCHANGE_ROOT))
    return text.replace(r"\{n\}", r"\d+").replace(r"\{u\}", "(?:" + "|".join(map(re.escape, noise.USERS)) + ")")


def _name(path: str) -> str:
    return path.replace("${exchange}", DEFAULT_EXCHANGE_ROOT).rsplit("\\", 1)[-1]


def _which(kind: str, key: tuple[str, ...]) -> set[int]:
    """The index of every template of `kind` that an event's `key` (file names, then texts) fits."""
    out = set()
    for i, t in enumerate(noise.TEMPLATES):
        if t.kind != kind:
            continue
        want = tuple(_name(getattr(t, f)) if f in ("image", "parent") else getattr(t, f) for f in _CHECKED[kind])
        if all(w == k if f in ("image", "parent") else re.fullmatch(_pattern(w), k)
               for f, w, k in zip(_CHECKED[kind], want, key, strict=True)):
            out.add(i)
    return out


_BENCH_KEY = {
    "process": "FileName, ProcessCommandLine, InitiatingProcessFileName",
    "file": "InitiatingProcessFileName, FolderPath",
    "image_load": "InitiatingProcessFileName, FolderPath",
    "network": "InitiatingProcessFileName, RemoteUrl, CAST(RemotePort AS VARCHAR)",
    "registry": "InitiatingProcessFileName, RegistryKey, RegistryValueName",
}


def test_bench_rows_are_the_noise_templates(bench: ModuleType, tmp_path: Path) -> None:
    """Every noise row the bench writes is one of noise.TEMPLATES (of its table's kind), every
    template is drawn, and each lands on Exchange servers exactly when the template says so."""
    bench.generate(tmp_path, 6000)
    assert set(noise.TABLES) == {t.kind for t in noise.TEMPLATES} == set(_BENCH_KEY)
    assert {p.stem for p in (tmp_path / "parquet").glob("*.parquet")} == set(noise.TABLES.values())
    drawn: set[int] = set()
    con = duckdb.connect()
    for kind, table in noise.TABLES.items():
        rows = con.execute(f"SELECT DISTINCT {_BENCH_KEY[kind]}, DeviceName LIKE 'exch%' "
                           f"FROM read_parquet('{tmp_path / 'parquet' / table}.parquet')").fetchall()
        assert rows, table
        for *key, on_exchange in rows:
            fits = _which(kind, tuple(str(k or "") for k in key))
            assert fits, (table, key)
            assert any(noise.TEMPLATES[i].exchange == on_exchange for i in fits), (table, key, on_exchange)
            drawn |= fits
    assert drawn == set(range(len(noise.TEMPLATES)))


def test_simulate_noise_draws_the_exchange_templates_it_can_emit() -> None:
    """--noise emits only kinds the simulator has (noise.SIMULATED), only Exchange-server templates
    (the run is one Exchange server), every one of them, and nothing else."""
    sim = generate([SCENARIOS["benign-get-transportagent"]], seed=2, noise=800)
    background = [e for e in sim.events if e.scenario == ""]
    assert len(background) == 800
    drawn: set[int] = set()
    for ev in background:
        assert ev.kind in noise.SIMULATED and ev.proc is not None
        if ev.kind == "process":
            assert ev.proc.parent is not None
            key = (ev.proc.file_name, ev.proc.command_line, ev.proc.parent.file_name)
        else:
            key = (ev.proc.file_name, ev.data["path"])
        fits = _which(ev.kind, key)
        assert fits, (ev.kind, key)
        drawn |= fits
    assert drawn == {i for i, t in enumerate(noise.TEMPLATES) if t.kind in noise.SIMULATED and t.exchange}


@pytest.mark.parametrize("fmt", ["mde-csv", "evtx-json"])
@pytest.mark.parametrize("scenario", ["lightneuron-emulation", "attack-encoded-command", "benign-exchange-su-msiexec"])
def test_simulate_with_noise_gives_exactly_the_expected_alerts(tmp_path: Path, fmt: str, scenario: str) -> None:
    """`exhunt simulate X --noise N` then `exhunt detect`: the scenario's expectations all hold
    (each rule on exactly its steps, the rest silent), with the noise in the files."""
    out = tmp_path / "o"
    code, _, err = run_cli(["simulate", scenario, "--format", fmt, "--out", str(out), "--noise", "500",
                            "--seed", "9"])
    assert code == 0, err
    quiet = tmp_path / "quiet"
    assert run_cli(["simulate", scenario, "--format", fmt, "--out", str(quiet), "--seed", "9"])[0] == 0
    size = sum(p.stat().st_size for p in out.iterdir())
    assert size > sum(p.stat().st_size for p in quiet.iterdir()) + 500 * 200  # the noise is there
    code, text, err = run_cli(["detect", str(out), "-f", "jsonl", "--flat", "-q"])
    assert code in (0, 1), err
    rules = load_rules(None)
    by_id = {r.id: r for r in rules}
    alerts = [(a, by_id[a["rule_id"]]) for a in map(json.loads, text.splitlines())]
    sc = SCENARIOS[scenario]
    sim = generate([sc], seed=9, noise=500)
    verdicts = judge(sc, writers()[fmt], sim, alerts, rules)
    assert [v.text for v in verdicts if not v.ok] == []
    assert sum(v.applies for v in verdicts) >= 3
    if sc.kind == "attack":
        assert alerts
