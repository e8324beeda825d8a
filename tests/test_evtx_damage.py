"""Damaged .evtx files: every record the file held is counted, as used or as skipped with its
reason, chunk and record; intact chunks are read whatever else is broken.

The files are written by the test (evtx_gen): 200 Sysmon file-create events, record ids 1..200,
25 per chunk, so chunk k holds records 25k+1 .. 25k+25.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import pytest

import evtx_gen as gen
from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.sources.base import FileReport
from winlog_gen import SYSMON11

N, PER_CHUNK = 200, 25


@pytest.fixture(scope="module")
def good() -> tuple[bytes, gen.FileLayout]:
    return gen.evtx_bytes(gen.numbered(SYSMON11, N, 1), per_chunk=PER_CHUNK)


def _chunk(k: int) -> int:
    return gen.HEADER + k * gen.CHUNK


def fix_crc(data: bytearray, k: int) -> None:
    """Give chunk k's header a right checksum again (damage made to look like the writer's)."""
    at = _chunk(k)
    struct.pack_into("<I", data, at + 124, zlib.crc32(bytes(data[at:at + 120]) + bytes(data[at + 128:at + 512])))


def load(path: Path) -> FileReport:
    s = Session(in_memory=True)
    try:
        (report,) = s.load_files(list(sources.walk([path])))
        count = s.run('SELECT count(*) FROM "_t_DeviceFileEvents"')[0][0] if report.read else 0
        assert count == report.used.get("DeviceFileEvents", 0)
    finally:
        s.close()
    return report


def write(tmp_path: Path, data: bytes | bytearray, name: str = "sysmon.evtx") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def summary(r: FileReport) -> tuple[int, int, dict[str, int], int, str | None]:
    return r.read, r.used.get("Event", 0), dict(r.skipped), r.damaged_chunks, r.error


def test_intact_file_is_read_whole(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    r = load(write(tmp_path, good[0]))
    assert summary(r) == (200, 200, {}, 0, None)
    assert r.used["DeviceFileEvents"] == 200 and r.messages == [] and r.note is None


def test_bad_record_size_counts_the_rest_of_the_chunk(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    data, layout = bytearray(good[0]), good[1]
    chunk, at = layout.record(60)
    assert chunk == 2  # records 51..75
    struct.pack_into("<I", data, at + 4, 0xFFF0)  # the record's size field
    r = load(write(tmp_path, data))
    # The parser drops record 60 and the 15 after it in its chunk.
    assert summary(r) == (200, 184, {"damaged record": 16}, 0, None)
    (msg,) = r.messages
    assert msg.startswith(f"{tmp_path / 'sysmon.evtx'}:chunk 2 (offset 0x21000), record 60: skipped: damaged record: ")
    assert msg.endswith("16 records lost (60..75)")


def test_record_with_bad_signature(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    """The parser's message names no record here: the chunk and record are found from the records
    read before it."""
    data, layout = bytearray(good[0]), good[1]
    _, at = layout.record(101)  # first record of chunk 4
    data[at:at + 4] = b"XXXX"
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 175, {"damaged record": 25}, 0, None)
    assert ":chunk 4 (offset 0x41000), record 101: skipped: damaged record: " in r.messages[0]


@pytest.mark.parametrize("damage", ["signature", "string table"])
def test_damaged_chunk_counts_its_records(tmp_path: Path, good: tuple[bytes, gen.FileLayout], damage: str) -> None:
    data = bytearray(good[0])
    if damage == "signature":  # the chunk header is gone: its count comes from its neighbours
        data[_chunk(3):_chunk(3) + 8] = b"XXXXXXXX"
    else:  # the header is intact (it lists records 76..100) but the chunk cannot be parsed
        struct.pack_into("<I", data, _chunk(3) + 128, 600)
        data[_chunk(3) + 600:_chunk(3) + 610] = b"\xff" * 10
        fix_crc(data, 3)
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 175, {"damaged chunk": 25}, 1, None)
    assert any(":chunk 3 (offset 0x31000): skipped: damaged chunk: " in m and m.endswith("25 records lost (76..100)")
               for m in r.messages), r.messages


def test_zeroed_chunk_in_the_middle(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    """A blank chunk between two others whose record numbers leave a gap: the parser passes it over
    without a word, as it does the unused chunks at the end of a log."""
    data = bytearray(good[0])
    data[_chunk(1):_chunk(2)] = bytes(gen.CHUNK)
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 175, {"damaged chunk": 25}, 1, None)
    assert any(":chunk 1 (offset 0x11000): skipped: damaged chunk: " in m and m.endswith("25 records lost (26..50)")
               for m in r.messages), r.messages


def test_records_missing_from_an_intact_chunk(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    """A chunk whose free-space offset was moved back ends early, silently, for the parser."""
    data, layout = bytearray(good[0]), good[1]
    offsets = [off for off, _ in layout.chunks[5][1]]
    struct.pack_into("<I", data, _chunk(5) + 48, offsets[10])  # records 126..135 stay
    fix_crc(data, 5)
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 185, {"damaged chunk": 15}, 1, None)
    assert any(m.endswith("15 records lost (136..150)") and ":chunk 5 (offset 0x51000)" in m for m in r.messages)


def test_file_cut_at_a_chunk_boundary(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    path = write(tmp_path, good[0][:_chunk(3)])
    r = load(path)
    assert summary(r) == (200, 75, {"file truncated": 125}, 0, "file truncated: 3 of 8 chunks present")
    assert any(m.endswith("125 records lost (76..200)") for m in r.messages), r.messages
    code, _, err = run_cli(["query", "Event | count", str(path)])
    flat = " ".join(err.split())
    assert code == 0 and "file truncated: 3 of 8 chunks present" in flat and "125 skipped" in flat
    assert "Traceback" not in err


def test_file_cut_inside_a_chunk_keeps_its_whole_records(tmp_path: Path,
                                                         good: tuple[bytes, gen.FileLayout]) -> None:
    data, layout = good
    cut = _chunk(3) + 30000
    records = layout.chunks[3][1]
    ends = [off for off, _ in records[1:]] + [gen.CHUNK]
    whole = [rid for (_, rid), end in zip(records, ends, strict=True) if _chunk(3) + end <= cut]
    assert whole == list(range(76, 87))
    r = load(write(tmp_path, data[:cut]))
    assert summary(r) == (200, 86, {"file truncated": 114}, 1, "file truncated: 3 of 8 chunks present")
    flat = " ".join(r.messages)
    assert "the file ends inside a chunk: chunk 3 (offset 0x31000) is cut short" in flat
    assert "14 records lost (87..100)" in flat
    assert "100 records lost (101..200)" in flat


def test_zeroed_file_header_carves_the_chunks(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    data = bytearray(good[0])
    data[:gen.HEADER] = bytes(gen.HEADER)
    path = write(tmp_path, data)
    r = load(path)
    assert summary(r) == (200, 200, {}, 0, None)
    assert r.format == "evtx" and r.note == "header damaged: 8 chunks carved"
    code, _, err = run_cli(["query", "DeviceFileEvents | count", str(path)])
    assert code == 0 and "header damaged: 8 chunks carved" in " ".join(err.split()), err


def test_damaged_header_and_chunk_together(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    data = bytearray(good[0])
    data[:8] = b"garbage!"
    data[_chunk(6):_chunk(6) + 8] = b"XXXXXXXX"
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 175, {"damaged chunk": 25}, 1, None)
    assert r.note == "header damaged: 7 chunks carved"
    assert any(":chunk 6 (offset 0x61000): skipped: damaged chunk: " in m for m in r.messages), r.messages


def test_nothing_to_carve(tmp_path: Path) -> None:
    r = load(write(tmp_path, b"\0" * 9000))
    assert (r.format, r.read, r.error) == ("evtx", 0, "damaged EVTX file header and no chunk found to carve")


def test_file_header_with_a_wrong_checksum_is_not_believed(tmp_path: Path,
                                                           good: tuple[bytes, gen.FileLayout]) -> None:
    """A chunk count changed without its checksum: the chunks are all read, nothing is called missing."""
    data = bytearray(good[0])
    struct.pack_into("<H", data, 42, 50)
    r = load(write(tmp_path, data))
    assert summary(r) == (200, 200, {}, 0, None)
    path = tmp_path / "sysmon.evtx"
    assert r.messages == [f"{path}: the file header's checksum is wrong; its chunk count is not used"]


def test_zip_member_with_a_bad_crc(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    """A member whose data fails its CRC is read whole (the zip reader reports the failed check
    instead of raising it at the last read, which lost the last chunk): every record is kept and
    the file is flagged, so --strict fails."""
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("sysmon.evtx", good[0])
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"ElfChnk\0", _chunk(2)) + 5000] ^= 0xFF  # inside a string of record 53
    path.write_bytes(bytes(raw))
    s = Session(in_memory=True)
    try:
        archive, r = s.load_files(list(sources.walk([path])))
    finally:
        s.close()
    assert (archive.format, r.path) == ("zip", f"{path}!sysmon.evtx")
    assert summary(r) == (200, 200, {}, 0, "integrity check failed (Bad CRC-32 for file 'sysmon.evtx'): the "
                          "member's data is damaged or was altered; its records were read, check them")


def test_file_ending_inside_its_header(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    r = load(write(tmp_path, good[0][:3000]))
    assert (r.format, r.read, r.error) == ("evtx", 0, "damaged EVTX file header and no chunk found to carve")


def test_file_header_claiming_too_many_records(tmp_path: Path, good: tuple[bytes, gen.FileLayout]) -> None:
    """A truncated file whose header's next record number is more than its missing chunks could
    hold: the truncation is said, no made-up count of lost records."""
    data = bytearray(good[0][:_chunk(3)])
    struct.pack_into("<Q", data, 24, 10**15)
    struct.pack_into("<I", data, 124, zlib.crc32(bytes(data[:120])))
    r = load(write(tmp_path, data))
    assert summary(r) == (75, 75, {}, 0, "file truncated: 3 of 8 chunks present")
    assert r.messages[0].endswith("how many records the missing chunks held is unknown "
                                  "(the file header's next record number does not tell)")
