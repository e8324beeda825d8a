"""What the archive readers share (not a format of its own).

Every archive is read in place: no member is ever written under its own name, so a
name like `../../x` or `/etc/x` is only text, shown escaped. Bomb limits are the same
for every kind: the total a archive's members may expand to, the expansion ratio of a
large member, how many members, and how deep archives may nest. Passwords for
encrypted archives come from `--password`, then the malware-sample convention
`infected`.

Solid and compressed archives (7z, .tar.gz) cannot reopen a member cheaply, and readers
open a file several times (sniffing, then reading), so such a member is held in a
spooled temporary file (memory up to SPOOL_MEMORY, then an unnamed temporary file)
while it is read, and dropped right after.
"""

from __future__ import annotations

import io
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import IO

from exhunt.sources.base import Fault, FileReport, RawReader, SourceFile, describe, printable

#: Refuse an archive whose members would expand to more than this in total.
MAX_TOTAL = 32 << 30
#: ... or a member larger than RATIO_FLOOR that expands more than MAX_RATIO times.
MAX_RATIO = 200
RATIO_FLOOR = 50 << 20
#: ... or one with more members than this (each becomes a line of the run summary).
MAX_MEMBERS = 50_000
#: Archives inside archives, at most this deep.
MAX_DEPTH = 4
#: Between an archive's name and its member's in a displayed path.
SEP = "!"
#: Tried on every encrypted archive, after any --password: malware samples are shared so.
DEFAULT_PASSWORDS: tuple[str, ...] = ("infected",)
#: A member is held in memory up to this size while read, beyond in an unnamed temporary file.
SPOOL_MEMORY = 16 << 20

_passwords: tuple[str, ...] = DEFAULT_PASSWORDS


def set_passwords(given: Sequence[str] | None) -> None:
    """The passwords tried on encrypted archives: those given, then `infected`."""
    global _passwords
    _passwords = tuple(dict.fromkeys([*(given or []), *DEFAULT_PASSWORDS]))


def passwords() -> tuple[str, ...]:
    return _passwords


def wrong_password() -> str:
    """The error of an archive no password opens (never echoing the user's password)."""
    tried = "the --password given, then 'infected'" if len(_passwords) > 1 else "'infected'"
    return f"encrypted, and the password is wrong (tried {tried}; give the right one with --password)"


def member_display(src: SourceFile, name: str) -> str:
    """`archive!member`, the member's name with control characters escaped."""
    return f"{src.display}{SEP}{printable(name)}"


def base_name(name: str) -> str:
    """The member's file name without folders (`..` and absolute parts are only text here)."""
    return PurePosixPath(name.replace("\\", "/")).name or name


def hidden(name: str) -> bool:
    """macOS resource forks and dot-files; `.` and `..` are path steps, not hidden names."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any((p.startswith(".") and p not in (".", "..")) or p == "__MACOSX" for p in parts)


def nested_too_deep(src: SourceFile, report: FileReport) -> bool:
    if src.display.count(SEP) >= MAX_DEPTH:
        report.error = f"refused: archives nested more than {MAX_DEPTH} deep"
        return True
    return False


def bomb_reason(members: list[tuple[str, int, int | None]], archive_size: int | None = None) -> str | None:
    """Why an archive is refused, from its directory alone (None when it looks sane).

    `members` are (name, declared size, compressed size or None); without compressed sizes
    (solid 7z, tar.gz) the whole archive's ratio is checked against `archive_size`.
    """
    total = sum(size for _, size, _ in members)
    reason = running_reason(len(members), total, archive_size)
    if reason:
        return reason
    for name, size, packed in members:
        if packed is None:
            continue
        ratio = size / max(packed, 1)
        if size > RATIO_FLOOR and ratio > MAX_RATIO:
            return (f"member {printable(name)!r} would expand {ratio:.0f} times to {size >> 20} MB "
                    f"(limit {MAX_RATIO} times for members over {RATIO_FLOOR >> 20} MB)")
    return None


def running_reason(count: int, total: int, archive_size: int | None) -> str | None:
    """The limits on `count` members declaring `total` bytes, checked as members come
    (tar) or all at once (bomb_reason); `archive_size` when members have no compressed size."""
    if count > MAX_MEMBERS:
        return f"it has more than {MAX_MEMBERS} members"
    if total > MAX_TOTAL:
        return f"its members would expand to {total >> 20} MB (limit {MAX_TOTAL >> 20} MB)"
    if archive_size is not None and total > RATIO_FLOOR and total > MAX_RATIO * max(archive_size, 1):
        return (f"its members would expand {total / max(archive_size, 1):.0f} times to {total >> 20} MB "
                f"(limit {MAX_RATIO} times beyond {RATIO_FLOOR >> 20} MB)")
    return None


def expansion_limit(compressed: int) -> int:
    """How far a stream without declared sizes (gzip) may expand before it is cut as a bomb."""
    return min(MAX_TOTAL, max(RATIO_FLOOR, MAX_RATIO * compressed))


def limit_reason(compressed: int) -> str:
    return (f"refused beyond {expansion_limit(compressed) >> 20} MB: it expands more than {MAX_RATIO} "
            f"times (a likely decompression bomb)")


# -- members held while read ----------------------------------------------------------


class Spool:
    """One member's bytes, written once, then read by any number of independent views."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self.size = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            self.file.seek(self.size)
            n = self.file.write(data)
            self.size += n
            return n

    def read_at(self, pos: int, n: int) -> bytes:
        with self._lock:
            self.file.seek(pos)
            return self.file.read(max(0, min(n, self.size - pos)))

    def close(self) -> None:
        self.file.close()

    def source(self, display: str, name: str, faults: list[Fault] | None = None) -> SourceFile:
        def opener() -> IO[bytes]:
            return io.BufferedReader(_View(self), 1 << 16)

        return SourceFile(display, opener, self.size, name, faults=faults if faults is not None else [])


class _View(RawReader):
    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self._spool = spool

    def _read(self, n: int) -> bytes:
        return self._spool.read_at(self._pos, n)

    def _seek(self, offset: int, whence: int) -> int:
        return self._target(offset, whence, self._spool.size)


def spool_stream(read: Callable[[int], bytes], limit: int, faults: list[Fault],
                 errors: tuple[type[BaseException], ...]) -> Spool:
    """Copy a member's stream into a spool, at most `limit` bytes; a read error ends the copy
    and becomes a fault at its offset (the reader keeps what came before)."""
    spool = Spool()
    try:
        while spool.size < limit:
            try:
                chunk = read(min(1 << 20, limit - spool.size))
            except errors as exc:
                faults.append(Fault(spool.size, describe(exc)))
                break
            if not chunk:
                break
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool


class Slice(RawReader):
    """`size` bytes of a seekable stream from `start` (an uncompressed tar's member in place)."""

    _raw: IO[bytes]

    def __init__(self, raw: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._raw = raw
        self._start = start
        self._size = size
        raw.seek(start)

    def _read(self, n: int) -> bytes:
        want = min(n, self._size - self._pos)
        return self._raw.read(want) if want > 0 else b""

    def _seek(self, offset: int, whence: int) -> int:
        pos = min(self._size, self._target(offset, whence, self._size))
        self._raw.seek(self._start + pos)
        return pos
