"""Writers of simulated events, one module per format (`WRITER`): `name`, `family`, `write(sim, out) -> [paths]`.

`family` says who collected the events (scenario.FAMILIES): a Defender host's tables, Windows logs, or
Exchange's own admin audit log. A format that holds only part of what happened says so (`tables`,
`kinds`), so `--check` reports the expectations it cannot judge as not applicable instead of failing them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from exhunt.simulate.events import Simulation


@dataclass(frozen=True)
class Writer:
    name: str
    family: str
    description: str
    write: Callable[[Simulation, Path], list[Path]]
    #: The tables its files fill (None: every table its family's readers fill).
    tables: frozenset[str] | None = None
    #: The step kinds whose events it holds (None: every kind).
    kinds: frozenset[str] | None = None
    #: The finest time it keeps: --check ties alerts to steps at this resolution.
    resolution: timedelta = timedelta(milliseconds=1)


def writers() -> dict[str, Writer]:
    out: dict[str, Writer] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        writer = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "WRITER", None)
        if isinstance(writer, Writer):
            out[writer.name] = writer
    return dict(sorted(out.items()))
