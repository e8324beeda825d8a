"""A run stopped by Ctrl-C, SIGTERM or a kill: it stops at once, says so, and leaves no copy of
the telemetry behind (its temporary folder is removed then, or by the next run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import helpers
from conftest import REPO, run_cli
from exhunt import lifecycle

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: A query that runs for hours on 3,000 rows of one device (27 billion joined rows to count).
SLOW = ("DeviceFileEvents | join kind=inner (DeviceFileEvents) on DeviceName "
        "| join kind=inner (DeviceFileEvents) on DeviceName | count")
SLOW_RULE = helpers.file_rule("00000000-0000-4000-8000-0000000051a0", "Slow", "A rule that takes hours.", SLOW)


def _data(folder: Path) -> Path:
    rows = [{"Timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "DeviceName": "exch01",
             "ActionType": "FileCreated", "FileName": f"f{i}.dll"} for i in range(3000)]
    path = folder / "DeviceFileEvents.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _start(args: list[str], tmp: Path, err: Path) -> subprocess.Popen[bytes]:
    """exhunt in a child with its own TMPDIR and Ctrl-C not ignored (a background job's is)."""
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen([sys.executable, "-m", "exhunt", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=err.open("wb"), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(err: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the child wrote `text` on stderr (the input summary: loading is over)."""
    deadline = time.monotonic() + 120
    while text not in err.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, err.read_text(errors="replace")
        time.sleep(0.05)
    time.sleep(0.5)  # into the query


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:  # still running: the signal did not stop the query
        proc.kill()
        proc.wait()
        return -999


def _spill_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("exhunt-"))


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated (SIGTERM)")])
@pytest.mark.parametrize("command", ["query", "detect"])
def test_a_signal_stops_the_query_and_removes_the_spill_folder(tmp_path: Path, sig: int, code: int, said: str,
                                                               command: str) -> None:
    """Ctrl-C used to leave DuckDB running to the end of the query and then report an internal
    error (exit 2); SIGTERM left the temporary folder (a copy of the telemetry) in /tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    data = _data(tmp_path)
    if command == "query":
        args = ["query", SLOW, str(data)]
    else:
        (tmp_path / "slow.yaml").write_text(SLOW_RULE, encoding="utf-8")
        args = ["detect", str(data), "-r", str(tmp_path / "slow.yaml"), "-r", "exchange-transport-agent-seed",
                "-j", "2"]
    err = tmp_path / "err.txt"
    proc = _start(args, tmp, err)
    _wait_for(err, "Total:", proc)
    assert len(_spill_folders(tmp)) == 1
    assert _stop(proc, sig) == code
    text = err.read_text()
    assert text.splitlines()[-1] == said and "Traceback" not in text and "internal error" not in text
    assert _spill_folders(tmp) == []


def test_a_killed_runs_folder_is_removed_by_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 leaves the folder; the next run removes it (its pid file names a dead process),
    and leaves folders of live processes and folders without a pid file alone."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    data = _data(tmp_path)
    err = tmp_path / "err.txt"
    proc = _start(["query", SLOW, str(data)], tmp, err)
    _wait_for(err, "Total:", proc)
    (left,) = _spill_folders(tmp)
    assert _stop(proc, signal.SIGKILL) == -signal.SIGKILL
    assert _spill_folders(tmp) == [left]
    assert (tmp / left / lifecycle.PID_FILE).read_text().split()[0] == str(proc.pid)

    live = tmp / "exhunt-live"
    live.mkdir()
    me = psutil.Process()
    (live / lifecycle.PID_FILE).write_text(f"{me.pid} {me.create_time()!r}")
    reused = tmp / "exhunt-reused"  # this pid, but another process's start time: the owner is gone
    reused.mkdir()
    (reused / lifecycle.PID_FILE).write_text(f"{me.pid} {me.create_time() - 3600!r}")
    other = tmp / "exhunt-other"  # not made by exhunt's lifecycle: not ours to judge
    other.mkdir()

    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    code, out, _ = run_cli(["query", "DeviceFileEvents | count", str(data), "-q", "-f", "jsonl"])
    assert code == 0 and json.loads(out) == {"Count": 3000}
    assert _spill_folders(tmp) == ["exhunt-live", "exhunt-other"]
