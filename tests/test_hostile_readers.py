"""Hostile and broken input to the readers: nothing aborts the run, hangs, or is lost uncounted.

Each test writes its own input: files nested 10,000 deep, 5,000-digit numbers, archive
members with damaged data or names like `../../x`, FIFOs, unreadable folders, UTF-16
exports, repeated CSV columns, gzip/tar/7z archives and encrypted ones.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import py7zr
import pytest
import pyzipper

import helpers
from conftest import REPO, run_cli
from exhunt import sources
from exhunt.engine import Session
from exhunt.errors import UsageError
from exhunt.sources import archives
from exhunt.sources.base import FileReport

SEED = "exchange-transport-agent-seed"
NAME = "DeviceFileEvents"


def rows(n: int) -> list[dict[str, Any]]:
    """`n` full DeviceFileEvents rows, ReportId 0..n-1."""
    return [helpers.full(NAME, dict(helpers.FILE_ROWS[i % 3], ReportId=i)) for i in range(n)]


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def csv_bytes(records: list[dict[str, Any]], header: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    cols = header or helpers.columns(NAME)
    w.writerow(cols)
    for r in records:
        w.writerow([helpers.text_value(r.get(c)) for c in helpers.columns(NAME)] if header is None
                   else [helpers.text_value(v) for v in r.values()])
    return buf.getvalue().encode()


def load(*paths: Path, jobs: int = 1) -> tuple[list[FileReport], dict[str, list[tuple[Any, ...]]]]:
    """Load as `exhunt detect` does; the reports and the (ReportId, _record, _source_file)
    of the stored DeviceFileEvents rows, by file."""
    with Session(in_memory=True) as s:
        s.in_place = True
        s.lines_later = True
        reports = s.load_files(list(sources.walk(list(paths))), jobs=jobs)
        got: dict[str, list[tuple[Any, ...]]] = {}
        for rid, where, src in s.run(f'SELECT ReportId, _record, _source_file FROM "{NAME}" ORDER BY ReportId'):
            got.setdefault(src, []).append((rid, where))
    return reports, got


def counts(report: FileReport) -> tuple[int, int, int]:
    return report.read, report.total_used, report.total_skipped


def by_path(reports: list[FileReport], root: Path) -> dict[str, FileReport]:
    return {r.path.removeprefix(str(root) + "/"): r for r in reports}


# -- nesting ----------------------------------------------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


def _deep_jsonl(folder: Path) -> Path:
    good = rows(3)
    lines = [json.dumps(r) for r in good]
    lines.insert(1, json.dumps(good[0]).replace('"ActionType"', f'"Deep": {DEEP}, "ActionType"'))
    path = folder / f"{NAME}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _deep_array(folder: Path) -> Path:
    good = rows(3)
    parts = [json.dumps(r) for r in good]
    parts.insert(1, json.dumps(good[0]).replace('"ActionType"', f'"Deep": {DEEP}, "ActionType"'))
    path = folder / f"{NAME}.json"
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n")
    return path


def _deep_first_line(folder: Path) -> Path:
    """The deep record first: the sniffers must not recurse into it either."""
    good = rows(2)
    path = folder / f"{NAME}.jsonl"
    path.write_text(json.dumps(good[0]).replace('"ActionType"', f'"Deep": {DEEP}, "ActionType"') + "\n"
                    + "\n".join(json.dumps(r) for r in good) + "\n")
    return path


@pytest.mark.parametrize(("write", "where", "expected"), [
    (_deep_jsonl, "line 2", [(0, "line 1"), (1, "line 3"), (2, "line 4")]),
    (_deep_array, "record 2 (line 3)", [(0, "record 1"), (1, "record 3"), (2, "record 4")]),
    (_deep_first_line, "line 1", [(0, "line 2"), (1, "line 3")]),
], ids=["json-lines", "json-array", "first-line"])
def test_deep_nesting_is_one_skipped_record(tmp_path: Path, write: Any, where: str,
                                            expected: list[tuple[int, str]]) -> None:
    """Before: RecursionError aborted the whole run ("internal error"), losing the other files too."""
    bad = write(tmp_path)
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    code, out, err = run_cli(["detect", str(tmp_path), "--rules", SEED, "--format", "jsonl", "--flat", "-j", "1"])
    flat = " ".join(err.split())
    assert code == 0, err
    assert f"{bad}:{where}: skipped: nested too deep" in flat
    assert f"Total: {len(expected) + 1 + 3} records read, {len(expected) + 3} used, 1 skipped." in flat
    alerts = [json.loads(line) for line in out.splitlines()]
    assert sorted(a["FileName"] for a in alerts) == ["cmd.exe", "evil.dll", "pwsh.exe"]
    _, got = load(tmp_path)
    assert got[str(bad)] == expected


def test_deep_nesting_in_windows_event_forms(tmp_path: Path) -> None:
    from winlog_gen import NAMED, evtx_json

    docs = [evtx_json(e) for e in NAMED[:2]]
    text = json.dumps(docs[0]) + "\n" + json.dumps(docs[1]).replace('"Version"', f'"Deep": {DEEP}, "Version"')
    (tmp_path / "events.json").write_text("[" + text.replace("\n", ",\n") + "]")  # an array: Python's reader
    reports, _ = load(tmp_path)
    (report,) = reports
    assert report.format == "evtx-json" and report.error is None
    assert report.read == 2 and report.skipped == {"nested too deep": 1}
    assert report.messages == [f"{tmp_path}/events.json:record 2 (line 2): skipped: nested too deep"]


# -- errors partway through a file -------------------------------------------------------

HUGE = "9" * 5000


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv"])
def test_a_5000_digit_integer_keeps_every_row(tmp_path: Path, kind: str) -> None:
    """Before (JSON): "stopped reading: Exceeds the limit (4300 digits)", every row of the file lost."""
    records = rows(5)
    path = tmp_path / f"{NAME}.{kind}"
    if kind == "csv":
        records[2]["ReportId"] = HUGE
        path.write_bytes(csv_bytes(records))
    else:
        text = "\n".join(json.dumps(r) for r in records).replace('"ReportId": 2', f'"ReportId": {HUGE}')
        path.write_text(text if kind == "jsonl" else "[" + text.replace("\n", ",\n") + "]")
    reports, got = load(tmp_path)
    (report,) = reports
    assert counts(report) == (5, 5, 0) and report.error is None
    assert dict(report.coerced) == {"ReportId": 1}
    where = {"jsonl": "line 3", "json": "record 3", "csv": "line 4"}[kind]
    assert report.messages == [f"{path}:{where}: ReportId value '{'9' * 200}... (5000 characters)' is not a "
                               "valid ReportId value; kept the row with ReportId empty"]
    assert [rid for rid, _ in got[str(path)]] == [0, 1, 3, 4, None]


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_member_with_a_bad_crc_is_read_and_flagged(tmp_path: Path) -> None:
    """Before: "cannot read: damaged zip member: Bad CRC-32", all of the member's rows lost."""
    data = bytearray(_zip({f"{NAME}.jsonl": jsonl_bytes(rows(4))}))
    at = data.index(b"notes.txt")
    data[at] = ord("N")  # one altered byte: the stored CRC no longer matches
    (tmp_path / "a.zip").write_bytes(bytes(data))
    reports, got = load(tmp_path)
    member = by_path(reports, tmp_path)[f"a.zip!{NAME}.jsonl"]
    assert counts(member) == (4, 4, 0)
    assert member.error == (f"integrity check failed (Bad CRC-32 for file '{NAME}.jsonl'): the member's data is "
                            "damaged or was altered; its records were read, check them")
    assert [rid for rid, _ in got[f"{tmp_path}/a.zip!{NAME}.jsonl"]] == [0, 1, 2, 3]
    code, _, err = run_cli(["query", f"{NAME} | count", str(tmp_path), "--strict", "-j", "1"])
    assert code == 2 and "--strict" in err


def test_truncated_gzip_keeps_the_rows_before_and_counts_the_rest(tmp_path: Path) -> None:
    """A stream that fails partway: the rows before are kept, the cut record and the
    unreadable rest are counted as skipped with their positions."""
    raw = gzip.compress(jsonl_bytes(rows(2000)))
    (tmp_path / f"{NAME}.jsonl.gz").write_bytes(raw[: len(raw) // 2])
    reports, got = load(tmp_path)
    member = by_path(reports, tmp_path)[f"{NAME}.jsonl.gz!{NAME}.jsonl"]
    kept = len(got[member.path])
    assert 0 < kept < 2000
    assert got[member.path] == [(i, f"line {i + 1}") for i in range(kept)]
    assert member.read == kept + 2 and member.total_used == kept
    assert member.skipped == {"truncated JSON line": 1, "rest of the file unreadable": 1}
    assert member.messages[-1].startswith(f"{member.path}:byte ")
    assert member.messages[-1].endswith("skipped: rest of the file unreadable: Compressed file ended before "
                                        "the end-of-stream marker was reached")


def test_damaged_parquet_row_group_is_counted_and_the_next_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"Timestamp": ["2026-03-01T00:00:00Z"] * 30, "ReportId": list(range(30)),
                      "FileName": [f"f{i:02}.dll" for i in range(30)]})
    path = tmp_path / f"{NAME}.parquet"
    pq.write_table(table, path, row_group_size=10, compression="NONE")
    data = bytearray(path.read_bytes())
    # The second row group's Timestamp pages overwritten (a column the load reads: damage in
    # a column only a rule reads would surface when the rule runs, see the in-place Parquet path).
    meta = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = meta.dictionary_page_offset if meta.has_dictionary_page else meta.data_page_offset
    data[start:start + meta.total_compressed_size] = b"\xff" * meta.total_compressed_size
    path.write_bytes(bytes(data))
    reports, got = load(tmp_path)
    (report,) = reports
    assert counts(report) == (30, 20, 10)
    assert report.skipped == {"damaged Parquet row group": 10}
    assert report.messages[0].startswith(f"{path}:row 11: skipped: damaged Parquet row group: row group 2: ")
    assert [rid for rid, _ in got[str(path)]] == [*range(10), *range(20, 30)]


# -- what cannot be read at all -----------------------------------------------------------


def test_fifo_on_the_command_line_is_refused(tmp_path: Path) -> None:
    """Before: opened to sniff it, and waited forever for a writer."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"pipe\.csv: a FIFO, not a regular file; exhunt reads files and folders"):
        list(sources.walk([fifo]))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "exhunt", "query", "DeviceFileEvents | count", str(fifo)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "a FIFO, not a regular file" in " ".join(done.stderr.split())


def test_fifo_unreadable_folder_and_file_inside_a_folder_are_reported(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: skipped silently (rglob ignores what it cannot list; is_file() is false for a FIFO)."""
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    os.mkfifo(tmp_path / "pipe")
    locked = tmp_path / "locked"
    locked.mkdir()
    helpers.write_csv(locked / f"{NAME}.csv", NAME, helpers.FILE_ROWS)
    secret = tmp_path / "secret.csv"
    helpers.write_csv(secret, NAME, helpers.FILE_ROWS)
    locked.chmod(0)
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: refuse these as a normal user's system would
        real, real_open = os.scandir, Path.open

        def scandir(path: Any = ".") -> Any:
            if isinstance(path, (str, os.PathLike)) and Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        def path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == secret:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(Path, "open", path_open)
    try:
        code, _, err = run_cli(["query", "DeviceProcessEvents | count", str(tmp_path), "-j", "1"])
        strict, _, _ = run_cli(["query", "DeviceProcessEvents | count", str(tmp_path), "-j", "1", "--strict"])
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    flat = " ".join(err.split())
    assert code == 0 and strict == 2
    assert f"{locked}: cannot read folder: Permission denied" in flat
    assert f"{tmp_path}/pipe: a FIFO, not a regular file; not read" in flat
    assert f"{secret}: cannot read: Permission denied" in flat
    assert "3 file(s) not read" in flat


def test_malformed_csv_line_with_invalid_utf8_prints_no_traceback(tmp_path: Path) -> None:
    """Before: pyarrow's invalid-row callback failed to decode the line and printed
    "Exception ignored ... Traceback" to the terminal."""
    path = tmp_path / f"{NAME}.csv"
    path.write_bytes(b"Timestamp,DeviceName,FileName\r\n2026-03-01T10:00:00Z,h,a.dll\r\n"
                     b"2026-03-01T10:00:00Z,\xbd\xff,b.dll,extra\r\n2026-03-01T10:00:00Z,h,c.dll\r\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "exhunt", "query", f"{NAME} | count", str(path), "-f", "jsonl"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and json.loads(done.stdout) == {"Count": 2}
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    flat = " ".join(done.stderr.split())
    assert f"{path}:line 3: skipped: malformed CSV line: expected 3 fields, found 4" in flat


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_control_characters_in_column_names_are_kept_as_inert_text(tmp_path: Path, kind: str) -> None:
    """Found by the property tests: a NUL in a CSV header made DuckDB's binder fail
    (an internal error that ended the run); an escape sequence reached the terminal."""
    odd = "\x00Odd\x1b[2J"
    records = [dict(r, **{odd: f"v{i}"}) for i, r in enumerate(rows(2))]
    path = tmp_path / f"{NAME}.{kind}"
    if kind == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(records[0]))
        w.writerows([[helpers.text_value(v) for v in r.values()] for r in records])
        path.write_text(buf.getvalue())
    elif kind == "jsonl":
        path.write_bytes(jsonl_bytes(records))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"Timestamp": ["2026-03-01T00:00:00Z"] * 2, "ReportId": [0, 1],
                                 odd: ["v0", "v1"]}), path)
    with Session(in_memory=True) as s:
        s.in_place = True
        (report,) = s.load_files(list(sources.walk([path])), jobs=1)
        assert counts(report) == (2, 2, 0) and report.error is None
        assert s.run(f'SELECT "\\x00Odd\\x1b[2J" FROM "{NAME}" ORDER BY ReportId') == [("v0",), ("v1",)]
    code, _, err = run_cli(["query", f"{NAME} | count", str(path), "-j", "1"])
    assert code == 0 and "\x1b" not in err and "\x00" not in err


# -- archive member names ------------------------------------------------------------------


def test_zip_members_with_dot_dot_and_absolute_names_are_read_in_place(tmp_path: Path) -> None:
    """Before: dropped without a word (`..` was taken for a hidden name)."""
    data = jsonl_bytes(rows(2))
    (tmp_path / "in").mkdir()
    archive = tmp_path / "in" / "evil.zip"
    archive.write_bytes(_zip({f"../../{NAME}.jsonl": data, f"/tmp/{NAME}\x1b[2J.jsonl": data,
                              f"..\\..\\{NAME}.jsonl": data}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    reports, got = load(archive)
    assert [(r.path.removeprefix(str(archive)), counts(r)) for r in reports] == [
        ("", (0, 0, 0)),
        (f"!../../{NAME}.jsonl", (2, 2, 0)),
        (f"!/tmp/{NAME}\\x1b[2J.jsonl", (2, 2, 0)),
        (f"!..\\..\\{NAME}.jsonl", (2, 2, 0)),
    ]
    assert sum(len(v) for v in got.values()) == 6
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    code, _, err = run_cli(["query", f"{NAME} | count", str(archive), "-j", "1"])
    assert code == 0 and "\x1b" not in err and f"{NAME}\\x1b[2J.jsonl" in "".join(err.split())


# -- encodings and headers ---------------------------------------------------------------------


@pytest.mark.parametrize("bom", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("kind", ["csv", "jsonl", "json"])
def test_utf16_with_bom_is_read_like_utf8(tmp_path: Path, bom: str, kind: str) -> None:
    """Before: unreadable (UTF-16 is not a format exhunt reads / a garbled header)."""
    records = rows(3)
    records[1]["FileName"] = "évil-ünïcode.dll"
    if kind == "csv":
        text = csv_bytes(records).decode()
    elif kind == "jsonl":
        text = jsonl_bytes(records).decode()
    else:
        text = json.dumps(records)
    mark = codecs.BOM_UTF16_LE if bom == "utf-16-le" else codecs.BOM_UTF16_BE
    (tmp_path / "u16").mkdir()
    (tmp_path / "u8").mkdir()
    (tmp_path / "u16" / f"{NAME}.{kind}").write_bytes(mark + text.encode(bom))
    (tmp_path / "u8" / f"{NAME}.{kind}").write_text(text, encoding="utf-8")
    reports16, got16 = load(tmp_path / "u16")
    reports8, got8 = load(tmp_path / "u8")
    assert [counts(r) for r in reports16] == [(3, 3, 0)]
    assert reports16[0].format == reports8[0].format
    assert list(got16.values()) == list(got8.values())
    with Session(in_memory=True) as s:
        s.load_files(list(sources.walk([tmp_path / "u16"])), jobs=1)
        assert s.run(f'SELECT FileName FROM "{NAME}" WHERE ReportId = 1') == [("évil-ünïcode.dll",)]


def test_repeated_csv_columns_are_both_kept_and_reported(tmp_path: Path) -> None:
    """Before: the second `FileName` column silently lost (or replaced the first)."""
    header = ["Timestamp", "DeviceName", "ActionType", "FileName", "FolderPath", "filename", "FileName"]
    body = [["2026-03-01T10:00:00Z", "h", "FileCreated", "benign.txt", r"C:\x", "evil.dll", "third.dll"]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *body])
    path = tmp_path / f"{NAME}.csv"
    path.write_text(buf.getvalue())
    code, out, err = run_cli(["query", f"{NAME} | project FileName, filename_2, FileName_3", str(path),
                              "--format", "jsonl", "-j", "1"])
    flat = " ".join(err.split())
    assert code == 0, err
    assert json.loads(out) == {"FileName": "benign.txt", "filename_2": "evil.dll", "FileName_3": "third.dll"}
    assert f"{path}:line 1: column 'filename' appears more than once; both kept, the later one as 'filename_2'" in flat
    assert f"{path}:line 1: column 'FileName' appears more than once; both kept, the later one as 'FileName_3'" in flat


# -- archives ----------------------------------------------------------------------------------


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link-to-passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        t.addfile(link)
    return buf.getvalue()


def _7z(members: dict[str, bytes], password: str | None = None) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password) as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()


def _aes_zip(members: dict[str, bytes], password: bytes) -> bytes:
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as z:
        z.setpassword(password)
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _zipcrypto(members: dict[str, bytes], password: bytes) -> bytes:
    """A classic ZipCrypto archive (what `zip -P` writes), encrypted by hand: pyzipper and
    zipfile only read it."""
    out = io.BytesIO()
    central = b""
    for name, data in members.items():
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = comp.compress(data) + comp.flush()
        crc = zlib.crc32(data)
        keys = [0x12345678, 0x23456789, 0x34567890]

        def update(c: int, keys: list[int] = keys) -> None:
            keys[0] = (zlib.crc32(bytes([c]), keys[0] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF)
            keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            keys[2] = (zlib.crc32(bytes([(keys[1] >> 24) & 0xFF]), keys[2] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF)

        for c in password:
            update(c)
        header = bytes(range(11)) + bytes([(crc >> 24) & 0xFF])
        enc = bytearray()
        for c in header + packed:
            k = keys[2] | 2
            enc.append(c ^ (((k * (k ^ 1)) >> 8) & 0xFF))
            update(c)
        fname = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 8, 0, 0x21, crc, len(enc), len(data),
                              len(fname), 0) + fname + bytes(enc))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 8, 0, 0x21, crc, len(enc), len(data),
                               len(fname), 0, 0, 0, 0, 0, offset) + fname
    start = out.tell()
    out.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                                    start, 0))
    return out.getvalue()


ARCHIVED = {f"logs/{NAME}.jsonl": jsonl_bytes(rows(3)), "notes.txt": b"not telemetry\n"}


@pytest.mark.parametrize(("file", "make", "fmt"), [
    (f"{NAME}.jsonl.gz", lambda: gzip.compress(ARCHIVED[f"logs/{NAME}.jsonl"]), "gzip"),
    ("bundle.tar", lambda: _tar(ARCHIVED), "tar"),
    ("bundle.tar.gz", lambda: _tar(ARCHIVED, "w:gz"), "tar"),
    ("bundle.tgz", lambda: _tar(ARCHIVED, "w:gz"), "tar"),
    ("bundle.7z", lambda: _7z(ARCHIVED), "7z"),
    ("sample.7z", lambda: _7z(ARCHIVED, "infected"), "7z"),
    ("sample.zip", lambda: _aes_zip(ARCHIVED, b"infected"), "zip"),
    ("zipcrypto.zip", lambda: _zipcrypto(ARCHIVED, b"infected"), "zip"),
], ids=["gz", "tar", "tar.gz", "tgz", "7z", "7z-infected", "zip-aes-infected", "zip-crypto-infected"])
def test_archives_are_read_like_zip(tmp_path: Path, file: str, make: Any, fmt: str) -> None:
    """Before: "not a telemetry format exhunt reads" (or the encrypted members skipped)."""
    (tmp_path / file).write_bytes(make())
    reports, got = load(tmp_path)
    shown = [(r.path.removeprefix(f"{tmp_path}/{file}"), r.format, counts(r), r.error) for r in reports]
    if fmt == "gzip":
        assert shown == [("", "gzip", (0, 0, 0), None), (f"!{NAME}.jsonl", "mde-jsonl", (3, 3, 0), None)]
    else:
        assert shown == [("", fmt, (0, 0, 0), None), (f"!logs/{NAME}.jsonl", "mde-jsonl", (3, 3, 0), None),
                         ("!notes.txt", "?", (0, 0, 0), "not a telemetry format exhunt reads (unknown file type)")]
    assert [rid for v in got.values() for rid, _ in v] == [0, 1, 2]
    if fmt == "tar":
        assert reports[0].note == "2 member(s); 1 link/device member(s) not read"
    assert sorted(p.name for p in tmp_path.iterdir()) == [file]  # nothing extracted


@pytest.mark.parametrize(("file", "make"), [
    ("s.7z", lambda: _7z(ARCHIVED, "s3cret")),
    ("s.zip", lambda: _aes_zip(ARCHIVED, b"s3cret")),
    ("c.zip", lambda: _zipcrypto(ARCHIVED, b"s3cret")),
], ids=["7z", "zip-aes", "zip-crypto"])
def test_password_option_and_wrong_password(tmp_path: Path, file: str, make: Any) -> None:
    (tmp_path / file).write_bytes(make())
    helpers.write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", helpers.PROCESS_ROWS)
    code, out, err = run_cli(["query", f"{NAME} | count", str(tmp_path), "-f", "jsonl", "-j", "1"])
    flat = " ".join(err.split())
    assert code == 0 and json.loads(out) == {"Count": 0}
    assert ("encrypted, and the password is wrong (tried 'infected'; give the right one with --password)"
            in flat)
    code, out, err = run_cli(["query", f"{NAME} | count", str(tmp_path), "-f", "jsonl", "-j", "1",
                              "--password", "nope", "--password", "s3cret"])
    assert code == 0 and json.loads(out) == {"Count": 3}, err
    assert "password is wrong" not in err
    code, out, err = run_cli(["query", f"{NAME} | count", str(tmp_path), "-f", "jsonl", "-j", "1",
                              "--password", "nope"])
    flat = " ".join(err.split())
    assert "the password is wrong (tried the --password given, then 'infected';" in flat
    assert "nope" not in flat  # the user's password is never echoed


def test_password_reaches_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt import readpool

    monkeypatch.setattr(readpool, "POOL_MIN_BYTES", 0)
    for i in range(2):
        (tmp_path / f"s{i}.zip").write_bytes(_aes_zip(ARCHIVED, b"s3cret"))
    assert readpool.worth_pooling(list(sources.walk([tmp_path])), 2)
    code, out, err = run_cli(["query", f"{NAME} | count", str(tmp_path), "-f", "jsonl", "-j", "2",
                              "--password", "s3cret"])
    assert code == 0 and json.loads(out) == {"Count": 6}, err


def _zeros_jsonl(n: int) -> bytes:
    """A valid row, `n` blank lines (skipped, not records), another row: compresses ~1000 times."""
    first, last = rows(2)
    return json.dumps(first).encode() + b"\n" + b"\n" * n + json.dumps(last).encode() + b"\n"


def test_gzip_bomb_is_cut_at_the_expansion_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "RATIO_FLOOR", 1 << 20)
    (tmp_path / f"{NAME}.jsonl.gz").write_bytes(gzip.compress(_zeros_jsonl(8 << 20), 9))
    reports, got = load(tmp_path)
    member = reports[1]
    assert counts(member) == (2, 1, 1)
    assert member.skipped == {"rest of the file refused (decompression bomb limit)": 1}
    assert "refused beyond 1 MB: it expands more than 200 times (a likely decompression bomb)" in member.messages[0]
    assert [rid for v in got.values() for rid, _ in v] == [0]


@pytest.mark.parametrize(("file", "make", "error"), [
    ("m.zip", lambda: _zip({f"{i}.jsonl": b"{}\n" for i in range(5)}),
     "refused as a likely zip bomb: it has more than 3 members"),
    ("m.7z", lambda: _7z({f"{i}.jsonl": b"{}\n" for i in range(5)}),
     "refused as a likely archive bomb: it has more than 3 members"),
    ("m.tar", lambda: _tar({f"{i}.jsonl": b"{}\n" for i in range(5)}),
     "stopped as a likely archive bomb at member 4: it has more than 3 members"),
], ids=["zip", "7z", "tar"])
def test_member_count_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, make: Any,
                            error: str) -> None:
    monkeypatch.setattr(archives, "MAX_MEMBERS", 3)
    (tmp_path / file).write_bytes(make())
    reports, _ = load(tmp_path)
    assert reports[0].error == error
    assert len(reports) == (4 if file.endswith(".tar") else 1)  # a tar's first members were read


def test_7z_declared_size_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "RATIO_FLOOR", 1 << 20)
    (tmp_path / "b.7z").write_bytes(_7z({"big.jsonl": b"\n" * (4 << 20)}))
    reports, _ = load(tmp_path)
    assert len(reports) == 1
    assert (reports[0].error or "").startswith("refused as a likely archive bomb: its members would expand ")


# -- a run that read nothing -------------------------------------------------------------------


def _nothing(tmp_path: Path, what: str) -> Path:
    if what == "text":
        (tmp_path / "notes.txt").write_text("just notes\n")
    elif what == "agents-config":
        (tmp_path / "agents.config").write_text('<?xml version="1.0"?><configuration><agentList/></configuration>')
    elif what == "several":
        (tmp_path / "notes.txt").write_text("just notes\n")
        (tmp_path / "empty.csv").write_bytes(b"")
        (tmp_path / "people.csv").write_text("name,age\nbob,3\n")
    return tmp_path


@pytest.mark.parametrize("what", ["text", "agents-config", "empty-folder", "several"])
@pytest.mark.parametrize("command", ["detect", "query"])
def test_a_run_that_read_nothing_exits_2(tmp_path: Path, what: str, command: str) -> None:
    """Before: "No alerts." (or 0 rows) and exit 0, as if the input had been looked at."""
    folder = _nothing(tmp_path, what)
    args = ["detect", str(folder), "--rules", SEED] if command == "detect" else ["query", "Event | count", str(folder)]
    code, out, err = run_cli([*args, "-q"])
    flat = " ".join(err.split())
    assert code == 2 and out == ""
    expected = {
        "text": [f"{folder}/notes.txt: not a telemetry format exhunt reads (unknown file type)"],
        "agents-config": [f"{folder}/agents.config: not a telemetry format exhunt reads (unknown file type); "
                          "it is an Exchange agent list: judge its agents with `exhunt audit`"],
        "empty-folder": [],
        "several": [f"{folder}/empty.csv: empty file",
                    f"{folder}/notes.txt: not a telemetry format exhunt reads (unknown file type)",
                    f"{folder}/people.csv: not Defender telemetry: no table named by --table or the file "
                    "name, and the header (name, age) matches no table"],
    }[what]
    if expected:
        assert flat == ("error: no input was in a format exhunt reads (see `exhunt formats`): "
                        + "; ".join(expected))
    else:
        assert flat == f"error: no input was in a format exhunt reads: no files in {folder}"


def test_an_empty_export_is_still_an_input(tmp_path: Path) -> None:
    """A CSV export with a header and no rows is telemetry: no alerts, exit 0."""
    (tmp_path / f"{NAME}.csv").write_bytes(csv_bytes([]))
    code, out, _ = run_cli(["detect", str(tmp_path), "--rules", SEED, "-q", "--format", "jsonl", "--flat"])
    assert code == 0 and out == ""
