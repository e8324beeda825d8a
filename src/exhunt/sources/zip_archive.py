"""ZIP archives (the public datasets ship zipped): members are read in place, never extracted.

A zip bomb is refused before anything is read: the archive's declared sizes are
checked against a total cap and a per-member expansion-ratio cap, nesting is
limited, and each member stream stops at its declared size (zipfile enforces it
and checks the CRC), so a forged header cannot make a member expand further.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import IO, Any, cast

from exhunt.sources.base import FileReport, SourceFile

#: Refuse an archive whose members would expand to more than this in total.
MAX_TOTAL = 32 << 30
#: ... or a member larger than RATIO_FLOOR that expands more than MAX_RATIO times.
MAX_RATIO = 200
RATIO_FLOOR = 50 << 20
#: Archives inside archives, at most this deep.
MAX_DEPTH = 4
SEP = "!"


class _Member(io.BufferedIOBase):
    """A member stream whose zip errors (bad CRC, truncated data) surface as OSError,
    which the loader reports as "stopped reading" instead of crashing."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise OSError(f"damaged zip member: {exc}") from None

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._call(self._raw.read, -1 if size is None else size)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._raw.seekable())

    def seek(self, offset: int, whence: int = 0) -> int:
        pos: int = self._call(self._raw.seek, offset, whence)
        return pos

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


def bomb_reason(infos: list[zipfile.ZipInfo]) -> str | None:
    """Why an archive is refused, from its directory alone (None when it looks sane)."""
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL:
        return f"its members would expand to {total >> 20} MB (limit {MAX_TOTAL >> 20} MB)"
    for i in infos:
        ratio = i.file_size / max(i.compress_size, 1)
        if i.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            return (f"member {i.filename!r} would expand {ratio:.0f} times to {i.file_size >> 20} MB "
                    f"(limit {MAX_RATIO} times for members over {RATIO_FLOOR >> 20} MB)")
    return None


class ZipArchive:
    name = "zip"

    def sniff(self, src: SourceFile, head: bytes) -> bool:
        return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]:
        if src.display.count(SEP) >= MAX_DEPTH:
            report.error = f"refused: archives nested more than {MAX_DEPTH} deep"
            return
        with src.open() as fh:
            try:
                zf = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                report.error = f"damaged zip archive: {exc}"
                return
            with zf:
                infos = [i for i in zf.infolist() if not i.is_dir() and not _hidden(i.filename)]
                reason = bomb_reason(infos)
                if reason:
                    report.error = f"refused as a likely zip bomb: {reason}"
                    return
                encrypted = [i for i in infos if i.flag_bits & 0x1]
                if encrypted:
                    report.note = f"{len(encrypted)} encrypted member(s) skipped (no password support)"
                report.note = report.note or f"{len(infos)} member(s)"
                for info in infos:
                    if info.flag_bits & 0x1:
                        continue
                    yield SourceFile(
                        display=f"{src.display}{SEP}{info.filename}",
                        opener=_opener(zf, info),
                        size=info.file_size,
                        name=PurePosixPath(info.filename).name,
                    )


def _opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        return cast(IO[bytes], _Member(zf.open(info)))

    return opener


def _hidden(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


CONTAINER = ZipArchive()
