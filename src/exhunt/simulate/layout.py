"""Several scenarios in one detect: each on its own server, all at the same time.

`--check` on many scenarios (and the test matrix) loads one data set per format instead of one
per scenario. Each scenario is generated alone, on a host of its own (`exch01-01`, `exch01-02`...
from `--host`; one scenario keeps `--host` as given), with its own Exchange root and its own seed
offset (so servers get distinct device ids), and starts at `--start` like the others: the data span
stays that of the longest scenario, so the rules' replay runs no more windows than for it alone.
Its files go to a folder of their own, and the alerts and hunt rows of a host are its scenario's.
Rules key their correlations by DeviceName; `owner` returning None for a row is what --check
reports as a row it cannot attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from exhunt.incidents import host_key
from exhunt.simulate.events import DEFAULT_HOST, DEFAULT_START, Simulation, generate, install_root
from exhunt.simulate.formats import Writer
from exhunt.simulate.scenario import Scenario


@dataclass(frozen=True)
class Placed:
    """One scenario of a layout: the host it ran on and its events."""

    scenario: Scenario
    host: str
    sim: Simulation
    #: Exchange's install root on that host.
    root: str


def host_names(count: int, host: str = DEFAULT_HOST) -> list[str]:
    """`count` distinct servers named after `host`: itself for one, else `NAME-01.domain`, `NAME-02.domain`..."""
    if count == 1:
        return [host]
    name, dot, domain = host.partition(".")
    return [f"{name}-{i:02d}{dot}{domain}" for i in range(1, count + 1)]


@dataclass
class Layout:
    """Scenarios placed on their hosts; `write` puts each one's files in a folder of its own."""

    placed: list[Placed]

    def write(self, writer: Writer, out: Path) -> list[Path]:
        paths: list[Path] = []
        for i, p in enumerate(self.placed, 1):
            folder = out / f"{i:02d}-{p.scenario.id}"
            folder.mkdir(parents=True, exist_ok=True)
            paths += writer.write(p.sim, folder)
        return paths

    def owner(self, device: object) -> Placed | None:
        """The scenario whose host a row's DeviceName (or Computer) names: the FQDN or the short name,
        any case. None: no host, or one no scenario ran on."""
        key = host_key(device)
        return self._by_key.get(key) if key else None

    def __post_init__(self) -> None:
        self._by_key = {host_key(p.host): p for p in self.placed}
        if len(self._by_key) != len(self.placed):
            raise ValueError("two scenarios share a host name")


def lay_out(
    scenarios: list[Scenario],
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    exchange_root: str | None = None,
    hosts: list[str] | None = None,
) -> Layout:
    """Each scenario generated alone on its own host, all starting at `start` (seed + its index:
    one scenario alone gives the events `simulate SCENARIO --seed N` writes). `hosts` names the
    servers one by one instead (a fleet whose names tests and reports refer to)."""
    if hosts is not None and len(hosts) != len(scenarios):
        raise ValueError(f"{len(hosts)} host names for {len(scenarios)} scenarios")
    names = hosts if hosts is not None else host_names(len(scenarios), host)
    return Layout(
        [
            Placed(sc, name, generate([sc], name, start, seed + i, exchange_root=exchange_root),
                   install_root([sc], exchange_root))
            for i, (sc, name) in enumerate(zip(scenarios, names, strict=True))
        ]
    )
