"""ZIP archives (the public datasets ship zipped; malware samples come encrypted): members
are read in place, never extracted.

A zip bomb is refused before anything is read: the archive's declared sizes are
checked against the limits in `archives` (total, per-member expansion ratio, member
count), nesting is limited, and each member stream stops at its declared size, so a
forged header cannot make a member expand further. A member whose data fails its CRC
(or AES authentication) is read anyway and flagged: its records may be altered. A member
that stops decompressing partway keeps the records before the damage (see base.Guarded).

Encrypted members (ZipCrypto or AES, via pyzipper) are opened with the passwords of
`archives.passwords()`: `--password`, then `infected`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

import pyzipper
from pyzipper.zipfile_aes import AESZipExtFile

from exhunt.sources import archives
from exhunt.sources.archives import MAX_DEPTH, MAX_RATIO, MAX_TOTAL, RATIO_FLOOR, SEP  # noqa: F401
from exhunt.sources.base import FileReport, SourceFile, guarded

#: What a damaged member's stream raises while it is read.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    pyzipper.BadZipFile, EOFError, zlib.error, OSError, ValueError, NotImplementedError, RuntimeError)


class _ExtFile(AESZipExtFile):
    """A member stream that reports a failed integrity check (CRC, AES HMAC) instead of
    raising it: the check runs after the last bytes were decoded, and raising would lose them."""

    on_damage: Callable[[str], None] | None = None

    def check_integrity(self) -> None:
        try:
            super().check_integrity()
        except pyzipper.BadZipFile as exc:
            if self.on_damage is None:
                raise
            self.on_damage(str(exc))


class _ZipFile(pyzipper.AESZipFile):
    zipextfile_cls = _ExtFile


def bomb_reason(infos: list[Any]) -> str | None:
    """Why an archive is refused, from its directory alone (None when it looks sane)."""
    return archives.bomb_reason([(i.filename, i.file_size, i.compress_size) for i in infos])


class ZipArchive:
    name = "zip"

    def sniff(self, src: SourceFile, head: bytes) -> bool:
        return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]:
        if archives.nested_too_deep(src, report):
            return
        with src.open() as fh:
            try:
                zf = _ZipFile(fh)
            except (pyzipper.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
                report.error = f"damaged zip archive: {exc}"
                return
            with zf:
                infos = [i for i in zf.infolist() if not i.is_dir() and not archives.hidden(i.filename)]
                reason = bomb_reason(infos)
                if reason:
                    report.error = f"refused as a likely zip bomb: {reason}"
                    return
                encrypted = sum(1 for i in infos if i.flag_bits & 0x1)
                report.note = f"{len(infos)} member(s)" + (f", {encrypted} encrypted" if encrypted else "")
                for info in infos:
                    yield self._member(zf, info, src)

    @staticmethod
    def _member(zf: _ZipFile, info: Any, src: SourceFile) -> SourceFile:
        display = archives.member_display(src, info.filename)
        name = archives.base_name(info.filename)
        password: bytes | None = None
        if info.flag_bits & 0x1:
            password = _password(zf, info)
            if password is None:
                return SourceFile(display, _refuse, 0, name, problem=archives.wrong_password())
        member = SourceFile(display, _refuse, info.file_size, name)
        member.opener = _opener(zf, info, password, member)
        return member


def _refuse() -> IO[bytes]:
    raise OSError("cannot open this member")


def _password(zf: _ZipFile, info: Any) -> bytes | None:
    """The first password that opens an encrypted member (its check value matches), else None."""
    for text in archives.passwords():
        pwd = text.encode("utf-8")
        try:
            zf.open(info, pwd=pwd).close()
        except (RuntimeError, pyzipper.BadZipFile, ValueError, NotImplementedError, OSError, EOFError):
            continue
        return pwd
    return None


def _opener(zf: _ZipFile, info: Any, pwd: bytes | None, member: SourceFile) -> Callable[[], IO[bytes]]:
    def damaged(message: str) -> None:
        text = (f"integrity check failed ({message}): the member's data is damaged or was altered; "
                "its records were read, check them")
        if text not in member.warnings:
            member.warnings.append(text)

    def opener() -> IO[bytes]:
        try:
            ext = zf.open(info, pwd=pwd)
        except (pyzipper.BadZipFile, RuntimeError, NotImplementedError, ValueError, EOFError) as exc:
            raise OSError(f"damaged zip member: {exc}") from None
        ext.on_damage = damaged
        return guarded(cast(IO[bytes], ext), member.faults, STREAM_ERRORS)

    return opener


CONTAINER = ZipArchive()
