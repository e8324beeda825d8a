"""Input formats. Each module here that defines `READER` is one format; modules
that define `CONTAINER` (archives) open into more files. Nothing else needs to
change to add either: the registry below finds them by import.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import stat
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

    return SourceFile(display or str(path), opener, path.stat().st_size, path.name, path)


def unreadable(path: Path, problem: str) -> SourceFile:
    """An input that cannot be read (an unreadable folder, a FIFO in a folder): the run
    summary names it as a problem instead of it vanishing."""
    def opener() -> IO[bytes]:
        raise OSError(problem)

    return SourceFile(str(path), opener, 0, path.name, None, problem)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def walk(paths: list[Path]) -> Iterator[SourceFile]:
    """Files named on the command line, folders expanded recursively, in a stable order.

    Only regular files are read: a FIFO, socket or device named on the command line is
    refused (opening one can block forever, or never end); one inside a folder, a folder
    that cannot be listed and a broken link are inputs with a problem the summary names.
    """
    from exhunt import manifest

    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file or folder{manifest.missing_hint(path)}") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot access: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            manifest.refuse_unfinished(path)
            ingested = manifest.FolderCheck()  # only what a complete ingest's manifest lists
            yield from (src for src in _folder(path) if src.path is None or ingested.admit(src.path))
        elif stat.S_ISREG(mode):
            yield disk_file(path)
        else:
            raise UsageError(f"{path}: {_kind(mode)}, not a regular file; exhunt reads files and folders only")


def _folder(top: Path) -> Iterator[SourceFile]:
    """Every input under `top` (hidden names skipped, links to folders not followed), sorted by path."""
    found: list[tuple[Path, SourceFile | None]] = []

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else top
        found.append((where, unreadable(where, f"cannot read folder: {exc.strerror or exc}")))

    for folder, dirs, files in os.walk(top, onerror=failed):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                link = Path(folder, name)
                found.append((link, unreadable(link, "a link to a folder, not followed (name its "
                                                          "target on the command line to read it)")))
        for name in files:
            if name.startswith("."):
                continue
            found.append((Path(folder, name), None))
    for path, entry in sorted(found, key=lambda e: e[0]):
        yield entry if entry is not None else _entry(path)


def _entry(path: Path) -> SourceFile:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return unreadable(path, "a broken link (its target does not exist)")
    except OSError as exc:
        return unreadable(path, f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(mode):
        return unreadable(path, f"{_kind(mode)}, not a regular file; not read")
    return disk_file(path)


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
