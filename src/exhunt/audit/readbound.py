"""Read a file named by an attacker-writable list: regular files only, never more than a limit.

An agent list can point at anything: a FIFO (opening it would wait forever), a device, a
folder, a huge file. The file is opened without blocking, checked to be a regular file and
sized before any byte is read, refused when over the limit, and read with a cap even if it
grows in the meantime.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class Read:
    """What reading gave: the bytes, or why not (in plain words)."""

    exists: bool
    size: int = 0
    data: bytes | None = None
    error: str = ""


def read_bounded(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Read:
    """The file's bytes when it is a regular file of at most `max_bytes`; never raises."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return Read(exists=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            return Read(exists=False, error=f"the path cannot be opened ({os.strerror(exc.errno)})")
        return Read(exists=True, error=f"the file could not be opened ({_words(exc)})")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Read(exists=True, error="not a regular file: not read")
        if info.st_size > max_bytes:
            return Read(
                exists=True,
                size=info.st_size,
                error=f"the file is {info.st_size} bytes, over the {max_bytes}-byte limit: not read",
            )
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            return Read(exists=True, size=len(data), error=f"the file grew over the {max_bytes}-byte limit while read")
        return Read(exists=True, size=len(data), data=data)
    except OSError as exc:
        return Read(exists=True, error=f"the file could not be read ({_words(exc)})")
    finally:
        os.close(fd)


def _words(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__
