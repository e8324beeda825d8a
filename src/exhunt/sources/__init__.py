"""Input formats. Each module here that defines `READER` is one format; modules
that define `CONTAINER` (archives) open into more files. Nothing else needs to
change to add either: the registry below finds them by import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Protocol

from exhunt.errors import UsageError
from exhunt.sources.base import FileReport, Reader, SourceFile

#: How many bytes a reader gets to decide whether a file is its format.
SNIFF_BYTES = 65536


class Container(Protocol):
    """An archive: yields the files inside it (possibly containers themselves)."""

    name: str

    def sniff(self, src: SourceFile, head: bytes) -> bool: ...

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]: ...


@cache
def _modules() -> list[ModuleType]:
    mods: list[ModuleType] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def readers() -> dict[str, Reader]:
    """Every input format by name."""
    return {m.READER.name: m.READER for m in _modules() if hasattr(m, "READER")}


def containers() -> list[Container]:
    return [m.CONTAINER for m in _modules() if hasattr(m, "CONTAINER")]


def disk_file(path: Path, display: str | None = None) -> SourceFile:
    def opener() -> IO[bytes]:
        return path.open("rb")

    return SourceFile(display or str(path), opener, path.stat().st_size, path.name)


def walk(paths: list[Path]) -> Iterator[SourceFile]:
    """Files named on the command line, folders expanded recursively, in a stable order."""
    from exhunt import manifest

    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder{manifest.missing_hint(path)}")
        if path.is_dir():
            manifest.refuse_unfinished(path)
            ingested = manifest.FolderCheck()  # only what a complete ingest's manifest lists
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if ingested.admit(child):
                    yield disk_file(child)
        else:
            yield disk_file(path)


def choose(src: SourceFile, head: bytes, forced: str | None = None) -> Reader | None:
    """The reader for a file: the forced one, else the most confident sniffer."""
    all_readers = readers()
    if forced:
        if forced not in all_readers:
            raise UsageError(f"unknown input format {forced!r}; known: {', '.join(sorted(all_readers))}")
        return all_readers[forced]
    best: tuple[int, str] | None = None
    for reader in all_readers.values():
        score = reader.sniff(src, head)
        if score > 0 and (best is None or score > best[0]):
            best = (score, reader.name)
    return all_readers[best[1]] if best else None
