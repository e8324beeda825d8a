"""Where results go: a file checked before the run, written with errors named, or stdout.

A run can take minutes; a typo in `--output` must fail before it starts, not after. And a
full disk, a quota or /dev/full is the user's to fix: one line naming the file, never an
internal error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from exhunt.errors import UsageError

STDOUT = "standard output"


def check_writable(path: Path | None, option: str = "--output") -> None:
    """Refuse, before anything is read, a path the results could not be written to."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists():
        if not parent.is_dir():
            raise UsageError(f"{option}: cannot write {path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{option}: cannot write {path}: folder {parent} is not writable")
    elif not os.access(path, os.W_OK):
        raise UsageError(f"{option}: cannot write {path}: permission denied")


def _quiet_stdout() -> None:
    """After a failed write to stdout, point it at the null device so that Python's flush at
    exit does not fail a second time with a traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


#: Exit status when stdout's reader went away: 128 + SIGPIPE, what a shell reports for a tool killed by it.
EXIT_PIPE = 141


@contextlib.contextmanager
def opened(path: Path | None, option: str = "--output") -> Iterator[TextIO]:
    """The file (created or truncated) or stdout; any write error, at any point up to and
    including the final flush, becomes one UsageError naming where."""
    name = STDOUT if path is None else str(path)
    try:
        if path is None:
            yield sys.stdout
            sys.stdout.flush()
            return
        with path.open("w", encoding="utf-8", newline="") as fh:
            yield fh
    except BrokenPipeError:
        if path is None:  # the reader left (`| head`): what it read is what it wanted, as for any Unix tool
            _quiet_stdout()
            raise SystemExit(EXIT_PIPE) from None
        raise UsageError(f"{option}: cannot write {name}: broken pipe") from None
    except OSError as exc:
        if path is None:
            _quiet_stdout()
        reason = exc.strerror or str(exc) or type(exc).__name__
        prefix = f"{option}: " if path is not None else ""
        raise UsageError(f"{prefix}cannot write {name}: {reason}") from None
