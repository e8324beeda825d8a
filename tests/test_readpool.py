"""Parallel reading: worker processes give the same reports and rows as reading in process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from exhunt import readpool, sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport

CSV = ("Timestamp,DeviceName,ActionType,FileName,FolderPath,FileSize,Extra{k}\r\n"
       "2026-03-01T10:00:0{k}Z,exch01,FileCreated,a{k}.dll,C:\\x\\a{k}.dll,12,e\r\n"
       "not-a-time,exch01,FileCreated,b.dll,C:\\x\\b.dll,zz,e\r\n"
       "2026-03-01T10:00:00Z,too,few\r\n"
       "2026-03-01T11:00:0{k}Z,exch01,FileCreated,c{k}.dll,C:\\x\\c{k}.dll,1e9x,e\r\n")


def _summary(reports: list[FileReport]) -> list[tuple[Any, ...]]:
    return [(r.path, r.format, r.read, dict(r.used), dict(r.skipped), dict(r.coerced), r.messages,
             sorted(r.unknown_columns), r.error) for r in reports]


def _load(paths: list[Path], jobs: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with Session(in_memory=True) as s:
        reports = s.load_files(list(sources.walk(paths)), jobs=jobs)
        rows = s.run('SELECT * FROM "_t_DeviceFileEvents" ORDER BY _source_file, _record')
        return _summary(reports), rows


@pytest.fixture
def mixed(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(readpool, "POOL_MIN_BYTES", 0)
    for k in range(3):
        (tmp_path / f"DeviceFileEvents_{k}.csv").write_text(CSV.format(k=k))
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "notes.txt").write_text("hello")
    shutil.copy(shared_data / "evtx/samples/sysmon.evtx", tmp_path / "sysmon.evtx")
    return tmp_path


def test_pooled_reading_matches_sequential(mixed: Path) -> None:
    seq = _load([mixed], jobs=1)
    par = _load([mixed], jobs=2)
    assert par == seq
    by_path = {r[0]: r for r in par[0]}
    csv0 = by_path[str(mixed / "DeviceFileEvents_0.csv")]
    assert csv0[3] == {"DeviceFileEvents": 2}
    assert csv0[4] == {"bad Timestamp": 1, "malformed CSV line": 1}
    assert any(":line 2: FileSize value '12'" not in m and ":line 3:" in m for m in csv0[6])
    assert by_path[str(mixed / "sysmon.evtx")][2] == 358


_REAL_READ = readpool._read_file


def _flaky(path: str, display: str, *args: Any) -> Any:
    """Runs in a worker (by reference): one file kills its process, one hits a reader bug."""
    if path.endswith("_1.csv"):
        import os

        os._exit(3)
    if path.endswith("_2.csv"):
        raise RuntimeError("boom")
    return _REAL_READ(path, display, *args)


def test_worker_crash_and_reader_bug_fail_only_their_file(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readpool, "_read_file", _flaky)
    reports, _ = _load([mixed], jobs=2)
    errors = {Path(r[0]).name: r[-1] for r in reports}
    assert errors["DeviceFileEvents_1.csv"].startswith("reader process failed")
    assert "boom" in errors["DeviceFileEvents_2.csv"]
    assert errors["DeviceFileEvents_0.csv"] is None and errors["sysmon.evtx"] is None
    assert [Path(r[0]).name for r in reports] == sorted(Path(r[0]).name for r in reports)


def test_without_forkserver_workers_are_spawned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no forkserver (asking for it raises ValueError): the pool spawns its workers
    there, with the same reports and rows as reading in this process."""
    import multiprocessing

    real = multiprocessing.get_context
    asked: list[str | None] = []

    def windows_like(method: str | None = None) -> Any:
        asked.append(method)
        if method == "forkserver":
            raise ValueError("cannot find context for 'forkserver'")
        return real(method)

    monkeypatch.setattr(readpool, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(multiprocessing, "get_context", windows_like)
    for k in range(3):
        (tmp_path / f"DeviceFileEvents_{k}.csv").write_text(CSV.format(k=k))
    (tmp_path / "notes.txt").write_text("hello")
    seq = _load([tmp_path], jobs=1)
    assert asked == []
    assert _load([tmp_path], jobs=2) == seq
    assert asked == ["spawn"]
    assert [r[4] for r in seq[0][:3]] == [{"bad Timestamp": 1, "malformed CSV line": 1}] * 3
