"""ZIP archives: members read in place (nested too), zip bombs refused, damaged archives named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from conftest import run_cli
from exhunt import sources
from exhunt.engine import Session
from winlog_gen import NAMED, SYSMON11, evtx_json, write_jsonl


def test_members_are_read_without_extraction(tmp_path: Path) -> None:
    inner = write_jsonl(tmp_path / "events.jsonl", [evtx_json(e) for e in NAMED])
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(inner, "deep/events.jsonl")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(inner, "events.jsonl")
        z.writestr("inner.zip", nested.getvalue())
        z.writestr("__MACOSX/._events.jsonl", b"junk")
        z.writestr("readme.txt", b"hello")
    inner.unlink()
    with Session(in_memory=True) as s:
        reports = s.load_files(list(sources.walk([tmp_path])))
        got = [(r.path.removeprefix(str(tmp_path) + "/"), r.format, r.read, r.error) for r in reports]
        assert got == [
            ("bundle.zip", "zip", 0, None),
            ("bundle.zip!events.jsonl", "evtx-json", len(NAMED), None),
            ("bundle.zip!inner.zip", "zip", 0, None),
            ("bundle.zip!inner.zip!deep/events.jsonl", "evtx-json", len(NAMED), None),
            ("bundle.zip!readme.txt", "?", 0, "not a telemetry format exhunt reads (unknown file type)"),
        ]
        assert s.row_count("DeviceFileEvents") == 2
    assert not list(tmp_path.glob("*.jsonl"))


def test_zip_bomb_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("big.json", "w") as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(64):
                member.write(chunk)
        z.writestr("sysmon.jsonl", "\n".join(__import__("json").dumps(evtx_json(SYSMON11)) for _ in range(1)))
    code, _, err = run_cli(["query", "Event | count", str(bomb)])
    flat = " ".join(err.split())
    assert code == 2  # the only input was refused: nothing was read (see test_hostile_readers)
    assert "refused as a likely zip bomb: member 'big.json' would expand" in flat
    assert "Traceback" not in err and "internal error" not in err


def test_damaged_zip_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    code, _, err = run_cli(["query", "Event | count", str(bad)])
    assert code == 2 and "damaged zip archive" in " ".join(err.split()) and "Traceback" not in err
