"""Property tests of the .evtx reader: arbitrary bytes and damaged copies of a valid file never
raise, never hang, and the report accounts for every record: read = used + skipped.

Many examples go through the reader alone (records it hands on + records it skipped = records
read), fewer through a whole load, where "used" is the `Event` table's count: every Windows
event record goes there once (the other tables take some records a second time)."""

from __future__ import annotations

import faulthandler
import struct
from datetime import timedelta
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evtx_gen as gen
from exhunt import readpool, sources
from exhunt.engine import Session
from exhunt.sources.base import Batch, FileReport
from exhunt.winlog.sql import RAW
from winlog_gen import EX1, PS800, SEC4688, SYSMON1, SYSMON11

#: A hang is a failure: past this, the process dumps every thread's stack and exits.
HARD_LIMIT_S = 300
_COMMON = {"deadline": timedelta(seconds=60), "derandomize": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}
#: The reader alone: fast, so many examples.
FUZZ = settings(max_examples=300, **_COMMON)  # type: ignore[arg-type]
#: A whole load (DuckDB, the mappings): about a second an example.
LOADS = settings(max_examples=15, **_COMMON)  # type: ignore[arg-type]


@cache
def valid() -> tuple[bytes, gen.FileLayout]:
    """Three chunks of mixed events (Sysmon, Security, PowerShell, Exchange), ids 1..60."""
    events = [*gen.numbered(SYSMON11, 20, 1), *gen.numbered(SEC4688, 10, 21), *gen.numbered(SYSMON1, 20, 31),
              *gen.numbered(PS800, 5, 51), *gen.numbered(EX1, 5, 56)]
    return gen.evtx_bytes(events, per_chunk=20)


def load(path: Path, forced: str | None) -> FileReport:
    """The file's report after a whole load; the run's invariants checked."""
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    s = Session(in_memory=True)
    try:
        (r,) = s.load_files(list(sources.walk([path])), input_format=forced, jobs=1)
    finally:
        s.close()
        faulthandler.cancel_dump_traceback_later()
    assert r.read == r.used.get("Event", 0) + r.total_skipped, r
    assert all(n > 0 for n in r.skipped.values()), r
    return r


def read_only(path: Path, forced: str | None) -> FileReport:
    """The file's report after its reader alone; records handed on + skipped = read."""
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    reports: list[FileReport] = []
    try:
        rows = sum(item.data.num_rows for _, _, item in readpool.iter_source(
            sources.disk_file(path), forced, None, reports) if isinstance(item, Batch) and item.table == RAW)
    finally:
        faulthandler.cancel_dump_traceback_later()
    (r,) = reports
    assert r.read == rows + r.total_skipped, r
    assert all(n > 0 for n in r.skipped.values()), r
    return r


ARBITRARY = st.one_of(st.binary(max_size=3 * gen.CHUNK),
                      st.binary(max_size=2 * gen.CHUNK).map(lambda b: b"ElfFile\0" + b),
                      st.binary(max_size=2 * gen.CHUNK).map(lambda b: gen.file_header(2, 9) + b"ElfChnk\0" + b),
                      st.binary(max_size=gen.CHUNK).map(lambda b: bytes(gen.HEADER) + b"ElfChnk\0" + b))


@FUZZ
@given(ARBITRARY)
def test_arbitrary_bytes(tmp_path_factory: object, data: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "x.evtx"  # type: ignore[attr-defined]
    path.write_bytes(data)
    read_only(path, "evtx")


@LOADS
@given(ARBITRARY)
def test_arbitrary_bytes_loaded(tmp_path_factory: object, data: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "x.evtx"  # type: ignore[attr-defined]
    path.write_bytes(data)
    load(path, "evtx")


def _places() -> st.SearchStrategy[int]:
    """Offsets worth damaging: headers of the file, chunks and records, and anywhere at all."""
    data, layout = valid()
    heads = [at + k for at, _ in layout.chunks for k in range(0, 512, 4)]
    records = [at + off + k for at, recs in layout.chunks for off, _ in recs for k in (0, 4, 8, 24, 28, 40)]
    return st.one_of(st.integers(0, 127), st.sampled_from(heads), st.sampled_from(records),
                     st.integers(0, len(data) - 1))


MUTATION = st.one_of(
    st.tuples(st.just("write"), _places(), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("u32"), _places(), st.sampled_from([0, 1, 8, 28, 0x7FFF, 0xFFFF, 0xFFFFFFFF])),
    st.tuples(st.just("zero"), _places(), st.integers(1, gen.CHUNK)),
    st.tuples(st.just("cut"), _places(), st.just(0)),
)


def mutate(data: bytes, steps: list[tuple[str, int, object]]) -> bytes:
    buf = bytearray(data)
    for kind, at, arg in steps:
        at = min(at, max(len(buf) - 1, 0))
        if kind == "write":
            assert isinstance(arg, bytes)
            buf[at:at + len(arg)] = arg
        elif kind == "u32" and at + 4 <= len(buf):
            assert isinstance(arg, int)
            struct.pack_into("<I", buf, at, arg)
        elif kind == "zero":
            assert isinstance(arg, int)
            buf[at:at + arg] = bytes(len(buf[at:at + arg]))
        elif kind == "cut":
            del buf[at:]
    return bytes(buf)


@FUZZ
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_damaged_copies_of_a_valid_file(tmp_path_factory: object, steps: list[tuple[str, int, object]]) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "x.evtx"  # type: ignore[attr-defined]
    path.write_bytes(mutate(valid()[0], steps))
    read_only(path, None)


@LOADS
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_damaged_copies_loaded(tmp_path_factory: object, steps: list[tuple[str, int, object]]) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "x.evtx"  # type: ignore[attr-defined]
    path.write_bytes(mutate(valid()[0], steps))
    load(path, None)


def test_the_valid_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.evtx"
    path.write_bytes(valid()[0])
    r = load(path, None)
    assert (r.read, r.used["Event"], r.total_skipped, r.damaged_chunks, r.error) == (60, 60, 0, 0, None)
    assert read_only(path, None).read == 60
