"""Property tests: every input format and archive kind fed arbitrary and mutated bytes.

Each registered reader (exhunt.sources.readers()) gets, through the loading path `exhunt
detect` uses (Session.load_files with the rows queried in place), random bytes and
damaged copies of a valid sample of its format; each archive kind gets damaged copies of
a valid archive. For every file in the run's reports: no exception escapes, nothing hangs
(a hard alarm beside hypothesis' deadline), and records read = used + skipped.

Windows event forms are loaded with `--table Event`: there each record is one row (or one
skipped record); without it one event also fills DeviceProcessEvents, DeviceFileEvents...
by design, so rows outnumber records.

Deterministic by default (the same examples each run, fast enough for every test run);
HYPOTHESIS_PROFILE=explore runs more, random examples.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evtx_gen as gen
import helpers
from exhunt import sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport
from winlog_gen import NAMED, SEC4688, SYSMON11, ecs, evtx_json, otrf

settings.register_profile("ci", max_examples=25, derandomize=True, database=None,
                          deadline=timedelta(seconds=20), suppress_health_check=list(HealthCheck))
settings.register_profile("explore", max_examples=300, derandomize=False, database=None,
                          deadline=timedelta(seconds=20), suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
#: An example taking this long is a hang: the alarm stops it with a clear failure.
HANG_SECONDS = 60

WINDOWS_FORMATS = {"evtx", "evtx-json", "otrf-json", "sentinel-windows", "winlogbeat-ecs"}


def _lines(docs: list[Any]) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in docs).encode()


def _sentinel() -> list[dict[str, Any]]:
    return [{"TenantId": "0", "TimeGenerated": f"2026-03-01T10:0{i}:00Z", "Computer": "EXCH01", "EventID": 4688,
             "Type": "SecurityEvent", "Channel": "Security",
             "EventSourceName": "Microsoft-Windows-Security-Auditing", "NewProcessName": r"C:\Windows\cmd.exe",
             "CommandLine": f"cmd /c echo {i}", "SubjectUserName": "svc"} for i in range(3)]


def _admin_audit() -> bytes:
    from exhunt.simulate.events import generate
    from exhunt.simulate.formats import exchange_admin_audit
    from exhunt.simulate.scenario import shipped

    lightneuron = [s for s in shipped() if s.id == "lightneuron-emulation"]
    return exchange_admin_audit.csv_text(exchange_admin_audit.entries(generate(lightneuron))).encode()


def _parquet() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = helpers.write_parquet(Path(tmp) / "DeviceFileEvents.parquet", "DeviceFileEvents", helpers.FILE_ROWS)
        return path.read_bytes()


def _csv() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = helpers.write_csv(Path(tmp) / "DeviceFileEvents.csv", "DeviceFileEvents", helpers.FILE_ROWS)
        return path.read_bytes()


def _api() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = helpers.write_ah_api(Path(tmp) / "result.json", "DeviceFileEvents", helpers.FILE_ROWS)
        return path.read_bytes()


#: A valid sample of each format: (file name, bytes).
SAMPLES: dict[str, tuple[str, bytes]] = {
    "mde-csv": ("DeviceFileEvents.csv", _csv()),
    "mde-json": ("result.json", _api()),
    "mde-jsonl": ("PT1H.json", _lines([helpers.streaming_record("DeviceFileEvents", r) for r in helpers.FILE_ROWS])),
    "parquet": ("DeviceFileEvents.parquet", _parquet()),
    "evtx-json": ("events.jsonl", _lines([evtx_json(e) for e in NAMED[:4]])),
    "otrf-json": ("otrf.json", _lines([otrf(e) for e in NAMED[:4]])),
    "winlogbeat-ecs": ("ecs.json", json.dumps([ecs(e) for e in NAMED[:4]], indent=1).encode()),
    "sentinel-windows": ("SecurityEvent.json", _lines(_sentinel())),
    "exchange-admin-audit": ("admin-audit.csv", _admin_audit()),
    # Two chunks (the .evtx reader has property tests of its own: test_evtx_fuzz).
    "evtx": ("log.evtx", gen.evtx_bytes([*gen.numbered(SYSMON11, 4, 1), *gen.numbered(SEC4688, 4, 5)],
                                        per_chunk=4)[0]),
}


def _archive(kind: str) -> tuple[str, bytes]:
    inner = SAMPLES["mde-jsonl"][1]
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("a/PT1H.json", inner)
            z.writestr("b.csv", SAMPLES["mde-csv"][1])
        return "bundle.zip", buf.getvalue()
    if kind == "gzip":
        return "PT1H.json.gz", gzip.compress(inner)
    if kind == "tar":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in (("a/PT1H.json", inner), ("b.csv", SAMPLES["mde-csv"][1])):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return "bundle.tgz", buf.getvalue()
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="infected") as z:
        z.writestr(inner, "a/PT1H.json")
        z.writestr(SAMPLES["mde-csv"][1], "b.csv")
    return "bundle.7z", buf.getvalue()


ARCHIVES = {kind: _archive(kind) for kind in ("zip", "gzip", "tar", "7z")}

#: Byte strings that readers have tripped on: deep nesting, huge numbers, BOMs, NULs, quotes.
NASTY = [b"[" * 3000, b"{\"a\":" * 1500, b"9" * 5000, b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\x00" * 64,
         b"\"", b"\r\n", b"\n\n\n", b",,,,", b"\\u0000", b"\x1b[2J", b"NaN", b"1e999999", b"-0", b"PK\x03\x04"]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few damages: bytes changed, cut, dropped, repeated, or nasty bytes put in."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "drop", "repeat", "insert", "nasty"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        n = draw(st.integers(1, 64))
        if kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[at:]
        elif kind == "drop":
            del out[at:at + n]
        elif kind == "repeat":
            out[at:at] = out[at:at + n] * draw(st.integers(1, 5))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=n))
        else:
            out[at:at] = draw(st.sampled_from(NASTY))
    return bytes(out)


@contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail an example that runs `seconds` (a reader stuck for good would stop the suite)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise TimeoutError(f"an example ran {seconds} s: a reader hangs")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    """One session for all examples (a new one costs 0.2 s), emptied before each load."""
    with Session(in_memory=True) as s:
        s.in_place = True
        s.lines_later = True
        yield s


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="exhunt-prop-") as tmp:
        yield Path(tmp)


def check(session: Session, folder: Path, name: str, data: bytes, input_format: str | None,
          table: str | None) -> list[FileReport]:
    """Load one file as `detect` does; every report's records must add up."""
    for old in folder.iterdir():
        old.unlink()
    path = folder / name
    path.write_bytes(data)
    session.clear()
    with no_hang():
        reports = session.load_files(list(sources.walk([path])), input_format, table, jobs=1)
    for r in reports:
        assert not (r.error or "").startswith(("reader failed", "reader process failed")), r.error
        assert r.read == r.total_used + r.total_skipped, (
            f"{r.path} ({r.format}): read {r.read} != used {dict(r.used)} + skipped {dict(r.skipped)}; "
            f"{r.error or ''} {r.messages[:3]}")
    return reports


def _table(fmt: str) -> str | None:
    return "Event" if fmt in WINDOWS_FORMATS else None


@pytest.mark.parametrize("fmt", sorted(sources.readers()))
def test_every_reader_survives_arbitrary_bytes(session: Session, folder: Path, fmt: str) -> None:
    name = SAMPLES[fmt][0]

    @settings(settings.get_profile(PROFILE))
    @given(data=st.binary(max_size=4096))
    def run(data: bytes) -> None:
        check(session, folder, name, data, fmt, _table(fmt))

    run()


@pytest.mark.parametrize("fmt", sorted(sources.readers()))
def test_every_reader_survives_damaged_samples(session: Session, folder: Path, fmt: str) -> None:
    name, sample = SAMPLES[fmt]
    # The intact sample is read whole and clean: the mutations below start from real data.
    (clean,) = check(session, folder, name, sample, fmt, _table(fmt))
    assert clean.read > 0 and clean.total_skipped == 0 and clean.error is None, (clean.error, clean.messages)

    @settings(settings.get_profile(PROFILE))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        check(session, folder, name, data, fmt, _table(fmt))

    run()


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_every_archive_kind_survives_damage(session: Session, folder: Path, kind: str) -> None:
    name, sample = ARCHIVES[kind]
    clean = check(session, folder, name, sample, None, None)
    rows = sum(r.total_used for r in clean)
    assert clean[0].format == kind and rows == (3 if kind == "gzip" else 6), [(r.path, r.error) for r in clean]

    @settings(settings.get_profile(PROFILE))
    @given(data=mutated(sample))
    def run(data: bytes) -> None:
        check(session, folder, name, data, None, None)

    run()


def test_the_properties_cover_every_registered_format() -> None:
    """A new reader must come with a sample here, or it escapes these tests."""
    assert set(SAMPLES) == set(sources.readers())
    assert set(ARCHIVES) == {c.name for c in sources.containers()}
