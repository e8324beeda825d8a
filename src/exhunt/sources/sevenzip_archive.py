"""7z archives (py7zr), encrypted or not: members are read, never extracted under their names.

7z archives are usually solid (one compressed stream for many files), so members are
decompressed in one pass into spooled temporary storage (see archives.Spool), each
dropped once it has been read. The declared sizes are checked against the limits of
`archives` first, and py7zr stops at the total; an encrypted archive is opened with
`archives.passwords()` (`--password`, then `infected`).
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from typing import IO, Any

from exhunt.sources import archives
from exhunt.sources.base import FileReport, SourceFile, describe

MAGIC = b"7z\xbc\xaf\x27\x1c"


def _errors() -> tuple[type[BaseException], ...]:
    import py7zr

    # A wrong password or damaged data surfaces as any of these (py7zr decodes the header
    # with the key, so a wrong one can even fail as a KeyError or TypeError in its parser).
    return (py7zr.Bad7zFile, py7zr.DecompressionError, py7zr.PasswordRequired, py7zr.DecompressionBombError,
            py7zr.UnsupportedCompressionMethodError, lzma.LZMAError, zlib.error, EOFError, OSError, ValueError,
            KeyError, TypeError, IndexError, AttributeError, AssertionError, NotImplementedError, RuntimeError)


class SevenZipArchive:
    name = "7z"

    def sniff(self, src: SourceFile, head: bytes) -> bool:
        return head[:6] == MAGIC

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]:
        if archives.nested_too_deep(src, report):
            return
        with src.open() as fh:
            members, problem = _extract(fh, src, report)
        if problem is not None:
            report.error = problem
            return
        try:
            for display, spool, name in members:
                try:
                    yield spool.source(display, name)
                finally:
                    spool.close()
        finally:
            for _, spool, _ in members:
                spool.close()


Member = tuple[str, archives.Spool, str]


def _extract(fh: IO[bytes], src: SourceFile, report: FileReport) -> tuple[list[Member], str | None]:
    """(display, bytes, base name) of every member in archive order; or why none can be read."""
    import py7zr

    errors = _errors()
    candidates: list[str | None] = [None]
    last = "damaged 7z archive"
    while candidates:
        password = candidates.pop(0)
        fh.seek(0)
        factory = _Factory()
        try:
            with py7zr.SevenZipFile(fh, mode="r", password=password, max_extract_size=archives.MAX_TOTAL) as z:
                listed = [(i, f) for i, f in enumerate(z.files)
                          if not (f.is_directory or f.is_socket or f.is_symlink)]  # links: only a name
                infos = [(i, f) for i, f in listed if not archives.hidden(f.filename)]
                reason = archives.bomb_reason([(f.filename, f.uncompressed, None) for _, f in infos], src.size)
                if reason:
                    return [], f"refused as a likely archive bomb: {reason}"
                names = _rename(z, infos)
                if infos:
                    z.extract(targets=list(names), factory=factory)
                report.note = f"{len(infos)} member(s)" + (", encrypted" if z.password_protected else "")
        except py7zr.PasswordRequired:
            factory.close()
            candidates = list(archives.passwords())
            last = archives.wrong_password()
            continue
        except errors as exc:
            factory.close()
            if password is not None:  # a wrong password garbles the data: try the next
                continue
            return [], f"damaged 7z archive: {describe(exc)}"
        out: list[Member] = []
        for key, (_, original) in sorted(names.items(), key=lambda kv: kv[1][0]):
            spool = factory.spools.pop(key, None) or archives.Spool()
            out.append((archives.member_display(src, original), spool, archives.base_name(original)))
        factory.close()
        return out, None
    return [], last


def _rename(z: Any, infos: list[tuple[int, Any]]) -> dict[str, tuple[int, str]]:
    """Give members py7zr's factory sees safe names (`m<i>`): py7zr refuses `..` and absolute
    names even when nothing is written to disk, and renames duplicates; the real name is kept
    for display."""
    names: dict[str, tuple[int, str]] = {}
    listing = getattr(z.files, "files_list", None)
    for i, f in infos:
        original = f.filename
        key = original
        if listing is not None:
            key = f"m{i}"
            listing[i]["filename"] = key
        names[key] = (i, original)
    return names


class _Factory:
    """py7zr's writer factory: each member into a spool of its own."""

    def __init__(self) -> None:
        self.spools: dict[str, archives.Spool] = {}

    def create(self, filename: str) -> _Member:
        spool = self.spools.get(filename)
        if spool is None:
            spool = self.spools[filename] = archives.Spool()
        return _Member(spool)

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()
        self.spools.clear()


class _Member:
    """py7zr's Py7zIO: writes go to the spool (py7zr stops at each member's declared size)."""

    def __init__(self, spool: archives.Spool) -> None:
        self.spool = spool
        self._pos = 0

    def write(self, s: bytes | bytearray) -> int:
        return self.spool.write(bytes(s))

    def read(self, size: int | None = None) -> bytes:
        data = self.spool.read_at(self._pos, self.spool.size if size is None or size < 0 else size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else (self._pos + offset if whence == 1 else self.spool.size + offset)
        return self._pos

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.spool.size

    def close(self) -> None:
        return None


CONTAINER = SevenZipArchive()
