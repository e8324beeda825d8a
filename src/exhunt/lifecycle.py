"""A run's life: its temporary folders, and stopping it cleanly (Ctrl-C, SIGTERM, SIGHUP).

A run's DuckDB spills to a temporary folder that holds a copy of the telemetry, so the
folder must not outlive the run. Each is made with a pid file naming its owner (pid and
process start time, so a reused pid does not count); a normal exit or a signal removes it,
and any later run removes those whose owner is gone (a kill -9, a power cut).

A signal must also stop DuckDB: a query runs in C++ without returning to Python, so
Python's own handler would only run when the query ends (minutes later). The C-level
handler writes the signal to a socket a watcher thread reads, which interrupts every open
connection at once; the Python handler then raises in the main thread (KeyboardInterrupt
for Ctrl-C, Terminated otherwise) and the `with` blocks unwind, removing the folders.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

PREFIX = "exhunt-"
PID_FILE = "exhunt.pid"

_connections: set[Any] = set()
#: Temporary folders this process made (folder -> pid that made it; see remove_all_temps).
_temps: dict[Path, int] = {}
_lock = threading.RLock()
_stopping: list[int] = []


class Terminated(BaseException):
    """The run received SIGTERM or SIGHUP (a BaseException, like KeyboardInterrupt, so no
    `except Exception` of a reader swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


# -- temporary folders ----------------------------------------------------------


def _started(pid: int) -> float | None:
    """Process `pid`'s start time, None when there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # another user's process: alive, start time unknown
        return -1.0


def _owner_alive(folder: Path) -> bool | None:
    """Whether the process named by the folder's pid file still runs; None without one
    (not ours to judge: another program's folder, or one being made this instant)."""
    try:
        pid_text, _, started_text = (folder / PID_FILE).read_text(encoding="ascii").partition(" ")
        pid, started = int(pid_text), float(started_text)
    except (OSError, ValueError):
        return None
    now = _started(pid)
    return now is not None and (now < 0 or abs(now - started) < 1.0)


def make_temp(prefix: str = PREFIX, parent: Path | None = None) -> Path:
    """A new private folder (mode 0700) with this process's pid file; removes stale ones first."""
    sweep(prefix, parent)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    with _lock:
        _temps[folder] = os.getpid()
    me = psutil.Process(os.getpid())
    (folder / PID_FILE).write_text(f"{me.pid} {me.create_time()!r}", encoding="ascii")
    return folder


def sweep(prefix: str = PREFIX, parent: Path | None = None) -> list[Path]:
    """Remove folders `<parent>/<prefix>*` (default: the system temporary folder) that this
    user owns and whose owning process is gone; returns them."""
    where = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    gone = []
    try:
        entries = list(where.glob(glob_escape(prefix) + "*"))
    except OSError:
        return []
    for folder in entries:
        try:
            if not folder.is_dir() or folder.is_symlink() or (hasattr(os, "getuid")
                                                             and folder.stat().st_uid != os.getuid()):
                continue
        except OSError:
            continue
        if _owner_alive(folder) is False:
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def glob_escape(text: str) -> str:
    """`text` matched literally by Path.glob."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def remove_temp(folder: Path | str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        with _lock:
            _temps.pop(Path(folder), None)


def forget_temp(folder: Path) -> None:
    """A temporary folder that became something lasting (renamed into place): not removed."""
    with _lock:
        _temps.pop(folder, None)


def remove_all_temps() -> None:
    """Remove every folder this process made and has not removed yet: the last step of a run
    that is being stopped, whose `with` blocks a signal may have cut short (Python runs a
    signal's handler at the next function call, which can be the first line of a cleanup)."""
    with _lock:
        mine = [folder for folder, pid in _temps.items() if pid == os.getpid()]
    for folder in mine:
        remove_temp(folder)


# -- stopping -------------------------------------------------------------------


def register(con: Any) -> None:
    """A DuckDB connection (or cursor) to interrupt when the run is stopped."""
    with _lock:
        _connections.add(con)


def unregister(con: Any) -> None:
    with _lock:
        _connections.discard(con)


def interrupt_all() -> None:
    """Interrupt the query of every registered connection (any thread may call this)."""
    with _lock:
        cons = list(_connections)
    for con in cons:
        with contextlib.suppress(Exception):
            con.interrupt()


def stopping() -> int | None:
    """The signal that is stopping the run, if any (errors raised meanwhile are its echo)."""
    return _stopping[-1] if _stopping else None


def _handler(signum: int, frame: FrameType | None) -> None:
    _stopping.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _watch(sock: socket.socket, ours: set[int], done: threading.Event) -> None:
    """Interrupt DuckDB as soon as a stopping signal arrives, while the main thread may still be
    inside a query, and keep interrupting until the run has unwound: a query that a rule's
    thread starts just after the first interruption must not run on for hours."""
    while True:
        try:
            data = sock.recv(64)
        except OSError:
            return
        if not data:
            return
        if ours.intersection(data):
            while not done.is_set():
                interrupt_all()
                done.wait(0.05)
            return


def _wind_down(limit: float = 30.0) -> None:
    """After a stop: interrupt DuckDB until the other threads of the run (rules on cursors)
    have ended, so that neither their queries nor Python's exit waits for them."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        others = [t for t in threading.enumerate()
                  if t is not threading.current_thread() and not t.daemon and t.is_alive()]
        if not others:
            return
        interrupt_all()
        others[0].join(0.05)


def _signals() -> list[signal.Signals]:
    found = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        found.append(signal.SIGHUP)
    return found


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """Within this block, Ctrl-C raises KeyboardInterrupt and SIGTERM/SIGHUP raise Terminated,
    each after interrupting DuckDB. Only in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    # A signal the caller ignores (a background job's Ctrl-C, nohup's SIGHUP) stays ignored.
    previous = {s: h for s in _signals() if (h := signal.getsignal(s)) is not signal.SIG_IGN}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(reader, {int(s) for s in previous}, done),
                               name="exhunt-signals", daemon=True)
    watcher.start()
    _stopping.clear()
    try:
        for s in previous:
            signal.signal(s, _handler)
        yield
    finally:
        if _stopping:
            _wind_down()
            remove_all_temps()
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(old_fd)
        _stopping.clear()
        done.set()
        writer.close()
        with contextlib.suppress(OSError):
            reader.shutdown(socket.SHUT_RDWR)
        reader.close()
        watcher.join(1)


atexit.register(remove_all_temps)  # a library caller that never closed its session
