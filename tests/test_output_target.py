"""--output is checked before the run, and a write error is one line naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from helpers import FILE_ROWS, write_csv

FULL = Path("/dev/full")
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _one(err: str) -> str:
    """stderr as the one message it must be, spaces left out (the console wraps long lines
    at its width, even inside a long path)."""
    assert err.count("error:") == 1 and "Traceback" not in err, err
    return "".join(err.split())


def _squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", FILE_ROWS)


@pytest.mark.parametrize("command", ["detect", "query"])
def test_output_into_a_missing_folder_fails_before_reading(data: Path, tmp_path: Path, command: str) -> None:
    """Used to read every input and run every rule first, then fail."""
    target = tmp_path / "no-such-folder" / "alerts.jsonl"
    args = [command, str(data)] if command == "detect" else [command, "DeviceFileEvents", str(data)]
    code, _, err = run_cli([*args, "-o", str(target)])
    assert code == 2
    assert _one(err) == _squeeze(f"error: --output: cannot write {target}: folder {target.parent} does not exist")


def test_output_onto_a_folder_is_refused_before_reading(data: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(["detect", str(data), "-o", str(tmp_path)])
    assert code == 2 and _one(err) == _squeeze(f"error: --output: {tmp_path} is a folder; give a file name")


@needs_full
@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv", "json"])
def test_a_full_disk_is_one_line_naming_the_file(data: Path, fmt: str) -> None:
    """`-o /dev/full` used to end with 'internal error: OSError'."""
    code, _, err = run_cli(["query", "DeviceFileEvents", str(data), "-q", "-f", fmt, "-o", str(FULL)])
    assert code == 2 and _one(err) == _squeeze("error: --output: cannot write /dev/full: No space left on device")


@needs_full
def test_export_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli(["rules", "export", "exchange-transport-agent-seed", "--to", "sentinel", "-o", str(FULL)])
    assert code == 2 and _one(err) == _squeeze("error: --output: cannot write /dev/full: No space left on device")


@needs_full
def test_standard_output_on_a_full_disk_is_one_line(data: Path) -> None:
    """Results piped to a full disk: one line, exit 2, and no second error as Python exits."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    with FULL.open("wb") as full:
        done = subprocess.run([sys.executable, "-m", "exhunt", "query", "DeviceFileEvents", str(data), "-q",
                               "-f", "jsonl"], stdout=full, stderr=subprocess.PIPE, env=env, timeout=120)
    assert done.returncode == 2
    assert _one(done.stderr.decode()) == _squeeze("error: cannot write standard output: No space left on device")


def test_reader_leaving_the_pipe_ends_quietly_with_141() -> None:
    """`exhunt detect demo/ | head -1`: the reader leaving is not an error to report. Here the
    reader (`true`) is gone long before the hunt writes, so every write meets a closed pipe."""
    proc = subprocess.run(f"{sys.executable} -m exhunt detect demo/ -q -f csv | true; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert (proc.returncode, proc.stderr) == (141, "")
