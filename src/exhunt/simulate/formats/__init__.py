"""Writers of simulated events, one module per format (`WRITER`): `name`, `family`, `write(sim, out) -> [paths]`.

`family` says who collected the events (scenario.FAMILIES): a Defender host's tables, or Windows logs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exhunt.simulate.events import Simulation


@dataclass(frozen=True)
class Writer:
    name: str
    family: str
    description: str
    write: Callable[[Simulation, Path], list[Path]]


def writers() -> dict[str, Writer]:
    out: dict[str, Writer] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        writer = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "WRITER", None)
        if isinstance(writer, Writer):
            out[writer.name] = writer
    return dict(sorted(out.items()))
