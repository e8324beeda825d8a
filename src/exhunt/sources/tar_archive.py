"""tar archives, plain or gzip-compressed (`.tar`, `.tar.gz`, `.tgz`): regular-file members
are read in place, never extracted; links, devices and folders are only counted.

A plain tar is read where it lies: each member is a slice of the archive. A compressed
tar can only be read front to back, so each member is held in a spooled temporary file
while it is read (see archives.Spool). The limits of `archives` apply as members come:
total declared size, the expansion over the compressed archive, the member count; the
archive stops at the first member beyond them. A damaged stream ends the archive there,
keeping what came before.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from typing import IO

from exhunt.sources import archives
from exhunt.sources.base import Fault, FileReport, SourceFile, describe, guarded
from exhunt.sources.gzip_archive import MAGIC as GZIP_MAGIC
from exhunt.sources.gzip_archive import decompressed_head, is_tar

STREAM_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, OSError)


class TarArchive:
    name = "tar"

    def sniff(self, src: SourceFile, head: bytes) -> bool:
        if head[:2] == GZIP_MAGIC:
            return is_tar(decompressed_head(head))
        return is_tar(head)

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]:
        if archives.nested_too_deep(src, report):
            return
        compressed = src.head(2) == GZIP_MAGIC
        with src.open() as fh:
            try:
                tf = tarfile.open(fileobj=fh, mode="r|gz" if compressed else "r:")  # noqa: SIM115 (closed below)
            except STREAM_ERRORS as exc:
                report.error = f"damaged tar archive: {describe(exc)}"
                return
            with tf:
                yield from self._walk(tf, src, report, compressed)

    def _walk(self, tf: tarfile.TarFile, src: SourceFile, report: FileReport, compressed: bool) -> Iterator[SourceFile]:
        count = total = others = 0
        while True:
            try:
                info = tf.next()
            except STREAM_ERRORS as exc:
                report.error = f"damaged tar archive after {count} member(s): {describe(exc)}"
                break
            if info is None:
                break
            if not info.isreg():
                others += not info.isdir()
                continue
            if archives.hidden(info.name):
                continue
            count += 1
            total += info.size
            reason = archives.running_reason(count, total, src.size if compressed else None)
            if reason:
                report.error = f"stopped as a likely archive bomb at member {count}: {reason}"
                break
            if not compressed:
                yield _slice(src, info)
                continue
            stream = tf.extractfile(info)
            if stream is None:
                continue
            faults: list[Fault] = []
            spool = archives.spool_stream(stream.read, info.size, faults, STREAM_ERRORS)
            try:
                yield spool.source(archives.member_display(src, info.name), archives.base_name(info.name), faults)
            finally:
                spool.close()
            if faults:  # the stream is damaged: nothing after this member can be found
                report.error = f"damaged tar archive in member {count}: {faults[-1].message}"
                break
        report.note = f"{count} member(s)" + (f"; {others} link/device member(s) not read" if others else "")


def _slice(src: SourceFile, info: tarfile.TarInfo) -> SourceFile:
    member = SourceFile(archives.member_display(src, info.name), _refuse, info.size, archives.base_name(info.name))
    start, size = info.offset_data, info.size

    def opener() -> IO[bytes]:
        return guarded(archives.Slice(src.open(), start, size), member.faults, STREAM_ERRORS)

    member.opener = opener
    return member


def _refuse() -> IO[bytes]:
    raise OSError("cannot open this member")


CONTAINER = TarArchive()
