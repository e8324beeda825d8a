"""The manifest of an ingested folder (`exhunt ingest --out FOLDER`): what a complete one holds.

`FOLDER/exhunt-manifest.json` is written last, once every part file is on disk, and lists
each part (`<Table>/part-<run>-<n>.parquet`) with its size and rows, and each input that was
ingested (path, size, modification time) so `--append` skips what is already there. A reader
trusts only what it lists: a part missing or of another size, a part it does not list (an
append that stopped before its manifest), or part files with no manifest at all (an ingest
that stopped, or one made before manifests) make the folder refused with a message that says
what to do. The manifest names files inside the folder only; one that points elsewhere is
refused, so a crafted manifest cannot make exhunt read other files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.errors import UsageError

NAME = "exhunt-manifest.json"
FORMAT = "exhunt-ingest"
VERSION = 1
#: Part files exhunt ingest writes (`part-<12 hex run id>-<n>.parquet`), in `<Table>/`.
PART = re.compile(r"part-[0-9a-f]{12}-\d+\.parquet")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Prefix of the temporary sibling an ingest writes before publishing: `.<name>` + this.
TEMP_MARK = ".exhunt-ingest-"
#: A manifest larger than this is not one exhunt wrote.
MAX_BYTES = 64 << 20


@dataclass
class Manifest:
    root: Path
    #: Table -> list of {"file": "<Table>/part-...parquet", "bytes": n, "rows": n}.
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Ingested inputs: {"path": absolute path, "size": bytes, "mtime_ns": n}.
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def parts(self) -> list[Path]:
        return sorted(self.root / p["file"] for entries in self.tables.values() for p in entries)

    def rows(self) -> dict[str, int]:
        return {name: sum(int(p["rows"]) for p in entries) for name, entries in self.tables.items()}

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "tables": self.tables, "inputs": self.inputs}


def temp_prefix(out: Path) -> str:
    return f".{out.name}{TEMP_MARK}"


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARK in path.name


def _bad(root: Path, what: str) -> UsageError:
    return UsageError(f"{root}: {what}; it is not a complete `exhunt ingest` folder "
                      f"(ingest the inputs again into a new folder)")


def _part_entry(root: Path, name: str, entry: Any) -> dict[str, Any]:
    """One listed part, checked: a plain `<Table>/part-...parquet` name inside the folder."""
    if not isinstance(entry, dict):
        raise _bad(root, f"{NAME} lists a part that is not an object")
    file, size, rows = entry.get("file"), entry.get("bytes"), entry.get("rows")
    parts = file.split("/") if isinstance(file, str) else []
    if len(parts) != 2 or parts[0] != name or not PART.fullmatch(parts[1]):
        raise _bad(root, f"{NAME} lists {file!r}, which is not a part file of table {name} in the folder")
    if not isinstance(size, int) or not isinstance(rows, int) or isinstance(size, bool) or size < 0 or rows < 0:
        raise _bad(root, f"{NAME} gives no size or rows for {file}")
    return {"file": file, "bytes": size, "rows": rows}


def read(root: Path) -> Manifest | None:
    """The folder's manifest, checked for shape; None when there is none."""
    path = root / NAME
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _bad(root, f"{NAME} is larger than {MAX_BYTES >> 20} MB")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(root, f"{NAME} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(root, f"{NAME} is not an exhunt ingest manifest")
    if doc.get("version") != VERSION:
        raise UsageError(f"{root}: {NAME} has version {doc.get('version')!r}; this exhunt reads version {VERSION}")
    tables, inputs = doc.get("tables"), doc.get("inputs")
    if not isinstance(tables, dict) or not isinstance(inputs, list):
        raise _bad(root, f"{NAME} has no tables or inputs")
    out = Manifest(root)
    for name, entries in tables.items():
        if not isinstance(name, str) or not _TABLE.fullmatch(name) or not isinstance(entries, list):
            raise _bad(root, f"{NAME} names a table {name!r} exhunt does not write")
        out.tables[name] = [_part_entry(root, name, e) for e in entries]
    out.inputs = [i for i in inputs if isinstance(i, dict)]
    return out


def unlisted(m: Manifest) -> list[Path]:
    """Part files in the folder's table folders that the manifest does not list."""
    listed = set(m.parts())
    found = []
    for folder in sorted(p for p in m.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [f for f in sorted(folder.iterdir()) if PART.fullmatch(f.name) and f not in listed]
    return found


def verify(m: Manifest, allow_unlisted: bool = False) -> None:
    """Every listed part is there with its size; no part is there that is not listed."""
    for entries in m.tables.values():
        for entry in entries:
            path = m.root / entry["file"]
            try:
                size = path.stat().st_size
            except OSError:
                raise _bad(m.root, f"{entry['file']} is missing") from None
            if size != entry["bytes"]:
                raise _bad(m.root, f"{entry['file']} has {size} bytes, the manifest says {entry['bytes']}")
    if not allow_unlisted:
        extra = unlisted(m)
        if extra:
            raise UsageError(
                f"{m.root}: {len(extra)} part file(s) its {NAME} does not list, e.g. "
                f"{extra[0].relative_to(m.root).as_posix()} (an `exhunt ingest --append` stopped before it "
                f"finished); run the same `exhunt ingest --append` again to complete it")


class FolderCheck:
    """Walking a folder: each ingested folder met is checked once, and only what its manifest
    lists is read (see `admit`)."""

    def __init__(self) -> None:
        self._seen: dict[Path, Manifest] = {}

    def _manifest(self, root: Path) -> Manifest:
        m = self._seen.get(root)
        if m is None:
            found = read(root)
            if found is None:
                raise UsageError(
                    f"{root}: holds exhunt part files but no {NAME}: an `exhunt ingest` into it stopped before "
                    f"it finished (or an older exhunt wrote it); ingest the inputs again into a new folder")
            verify(found)
            m = self._seen[root] = found
        return m

    def admit(self, path: Path) -> bool:
        """Whether a file met while walking is an input: not the manifest, and a part file
        only if its folder is complete (else a UsageError says why)."""
        if path.name == NAME:
            self._manifest(path.parent)
            return False
        if PART.fullmatch(path.name):
            self._manifest(path.parent.parent)
        return True


def refuse_unfinished(path: Path) -> None:
    """A folder named on the command line that an ingest was still writing."""
    if is_temp(path):
        raise UsageError(f"{path}: the temporary folder of an `exhunt ingest` that did not finish; "
                         f"ingest the inputs again")


def missing_hint(path: Path) -> str:
    """For a path that does not exist: a note when an ingest into it stopped before publishing."""
    from exhunt.lifecycle import glob_escape

    with contextlib.suppress(OSError):
        if any(path.parent.glob(glob_escape(temp_prefix(path)) + "*")):
            return " (an `exhunt ingest` into it stopped before it finished; ingest the inputs again)"
    return ""


def fsync_file(path: Path) -> None:
    """Data on disk before the manifest says it is (a power cut must not leave a listed part
    empty). Best effort where a platform cannot sync a file opened this way."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: Path) -> None:
    """A rename made durable (POSIX; Windows cannot open a folder for this)."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write(m: Manifest) -> None:
    """Write the manifest atomically: a hidden temporary file, synced, then renamed over it."""
    tmp = m.root / f".{NAME}.tmp"
    tmp.write_text(json.dumps(m.as_json(), indent=1, sort_keys=True), encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, m.root / NAME)
    fsync_dir(m.root)
