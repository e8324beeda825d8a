"""gzip-compressed files (`events.jsonl.gz`, rotated logs): the one file inside is read as it
is decompressed, never written out. A gzip file declares no reliable size (its trailer
is the size modulo 4 GB), so the bomb limit is enforced while reading: past
`archives.expansion_limit` of its compressed size the stream ends and the rest is
counted as refused. A `.tar.gz` is the tar reader's (tar_archive).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import IO, Any

from exhunt.sources import archives
from exhunt.sources.base import FileReport, SourceFile, guarded

MAGIC = b"\x1f\x8b"
STREAM_ERRORS: tuple[type[BaseException], ...] = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


def decompressed_head(head: bytes, n: int = 1024) -> bytes:
    """The first `n` bytes of a gzip stream's content, from its first compressed bytes."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, n)
    except zlib.error:
        return b""


def is_tar(block: bytes) -> bool:
    """Whether `block` starts with a valid tar header (its checksum matches)."""
    import tarfile

    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def inner_name(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".tgz"):
        return name[:-4] + ".tar"
    if lower.endswith(".gz"):
        return name[:-3]
    return name


class GzipArchive:
    name = "gzip"

    def sniff(self, src: SourceFile, head: bytes) -> bool:
        return head[:2] == MAGIC and not is_tar(decompressed_head(head))

    def members(self, src: SourceFile, report: FileReport) -> Iterator[SourceFile]:
        if archives.nested_too_deep(src, report):
            return
        # The trailer's size is only a hint (modulo 4 GB, and garbage in a cut file): the limit
        # is enforced on the bytes as they come.
        limit = archives.expansion_limit(src.size)
        name = inner_name(src.name)
        member = SourceFile(archives.member_display(src, name), _refuse, src.size, name)

        def opener() -> IO[bytes]:
            raw = _Gzip(fileobj=src.open(), mode="rb")
            return guarded(raw, member.faults, STREAM_ERRORS, limit, archives.limit_reason(src.size))

        member.opener = opener
        report.note = "1 member"
        yield member


class _Gzip(gzip.GzipFile):
    """A gzip stream that closes the file it reads (GzipFile leaves a given file open)."""

    def close(self) -> None:
        inner: Any = self.fileobj
        try:
            super().close()
        finally:
            if inner is not None:
                inner.close()


def _refuse() -> IO[bytes]:
    raise OSError("cannot open this member")


CONTAINER = GzipArchive()
