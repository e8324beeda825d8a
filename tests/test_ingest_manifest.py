"""An ingested folder is trusted only when complete: published in one rename with its manifest
last; a folder an ingest left half-written is refused, and --append never ingests twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from exhunt import manifest
from helpers import FILE_ROWS, PROCESS_ROWS, write_jsonl


def _count(folder: Path, table: str = "DeviceFileEvents") -> tuple[int, int | None, str]:
    code, out, err = run_cli(["query", f"{table} | count", str(folder), "-q", "-f", "jsonl"])
    return code, (json.loads(out)["Count"] if code == 0 else None), _squeeze(err)


def _squeeze(text: str) -> str:
    """Without whitespace: the console wraps long lines at its width, even inside a path."""
    return "".join(text.split())


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    return (write_jsonl(src / "DeviceFileEvents.jsonl", "DeviceFileEvents", FILE_ROWS),
            write_jsonl(src / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", PROCESS_ROWS))


def _ingest_dies_before_manifest(args: list[str]) -> int:
    """`exhunt ingest ARGS` in a child that dies (as kill -9 would) when about to write the manifest."""
    code = ("import os, sys\nfrom exhunt import manifest\nmanifest.write = lambda m: os._exit(9)\n"
            f"sys.argv = ['exhunt', 'ingest', *{args!r}]\nfrom exhunt.cli import main\nmain()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300).returncode


def test_a_folder_an_old_ingest_left_half_written_is_refused(tmp_path: Path) -> None:
    """What a killed ingest used to leave (a 0-byte part, the other tables missing) was read as
    an empty table: Count 0, exit 0."""
    out = tmp_path / "hunt"
    (out / "DeviceFileEvents").mkdir(parents=True)
    (out / "DeviceFileEvents" / "part-0123456789ab-0.parquet").write_bytes(b"")
    code, count, err = _count(out)
    assert (code, count) == (2, None)
    assert err == _squeeze(f"error: {out}: holds exhunt part files but no exhunt-manifest.json: an `exhunt "
                           "ingest` into it stopped before it finished (or an older exhunt wrote it); ingest the "
                           "inputs again into a new folder")


def test_an_ingest_killed_before_publishing_leaves_nothing_a_hunt_trusts(tmp_path: Path,
                                                                        inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "hunt"
    assert _ingest_dies_before_manifest([str(inputs[0].parent), "--out", str(out), "-q"]) == 9
    assert not out.exists()
    (temp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".hunt.exhunt-ingest-")]
    assert list((temp / "DeviceFileEvents").glob("part-*.parquet"))  # the parts were written, not published
    code, _, err = _count(out)
    assert code == 2 and err == _squeeze(f"error: {out}: no such file or folder (an `exhunt ingest` into it "
                                         "stopped before it finished; ingest the inputs again)")
    code, _, err = _count(temp)
    assert code == 2 and _squeeze("the temporary folder of an `exhunt ingest` that did not finish") in err
    # The next ingest removes the dead run's folder and publishes a complete one.
    code, _, err = run_cli(["ingest", str(inputs[0].parent), "--out", str(out), "-q"])
    assert code == 0, err
    assert not temp.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert _count(out) == (0, len(FILE_ROWS), "")
    assert _count(out, "DeviceProcessEvents") == (0, len(PROCESS_ROWS), "")


def test_append_killed_before_its_manifest_is_refused_then_completed(tmp_path: Path,
                                                                    inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "hunt"
    code, _, err = run_cli(["ingest", str(inputs[0]), "--out", str(out), "-q"])
    assert code == 0, err
    assert _ingest_dies_before_manifest([str(inputs[1]), "--out", str(out), "--append", "-q"]) == 9
    # The new part was moved in, the manifest not replaced: the folder is refused, not half read.
    code, _, err = _count(out)
    assert code == 2
    assert err.startswith(_squeeze(f"error: {out}: 1 part file(s) its exhunt-manifest.json does not list, e.g. "
                                   "DeviceProcessEvents/part-"))
    assert err.endswith(_squeeze("(an `exhunt ingest --append` stopped before it finished); run the same "
                                 "`exhunt ingest --append` again to complete it"))
    code, _, err = run_cli(["ingest", str(inputs[1]), "--out", str(out), "--append"])
    assert code == 0, err
    assert _squeeze("note: removed DeviceProcessEvents/part-") in _squeeze(err)
    assert _count(out) == (0, len(FILE_ROWS), "")
    assert _count(out, "DeviceProcessEvents") == (0, len(PROCESS_ROWS), "")


def test_append_skips_inputs_already_ingested(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """`ingest --append` of the same inputs used to store their rows twice."""
    out = tmp_path / "hunt"
    code, _, err = run_cli(["ingest", str(inputs[0]), "--out", str(out), "-q"])
    assert code == 0, err
    code, _, err = run_cli(["ingest", str(inputs[0].parent), "--out", str(out), "--append"])
    assert code == 0, err
    note = f"note: {inputs[0]}: already ingested into {out} (same path, size and modification time); skipped"
    assert _squeeze(note) in _squeeze(err)
    assert _count(out) == (0, len(FILE_ROWS), "")
    assert _count(out, "DeviceProcessEvents") == (0, len(PROCESS_ROWS), "")
    doc = json.loads((out / manifest.NAME).read_text())
    assert sorted(Path(i["path"]).name for i in doc["inputs"]) == ["DeviceFileEvents.jsonl",
                                                                   "DeviceProcessEvents.jsonl"]
    assert {i["size"] for i in doc["inputs"]} == {inputs[0].stat().st_size, inputs[1].stat().st_size}


def _published(tmp_path: Path, inputs: tuple[Path, Path]) -> tuple[Path, dict[str, object]]:
    out = tmp_path / "hunt"
    code, _, err = run_cli(["ingest", str(inputs[0]), "--out", str(out), "-q"])
    assert code == 0, err
    return out, json.loads((out / manifest.NAME).read_text())


def test_a_part_missing_or_changed_is_refused(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    out, doc = _published(tmp_path, inputs)
    (entry,) = doc["tables"]["DeviceFileEvents"]  # type: ignore[index]
    part = out / entry["file"]
    data = part.read_bytes()
    part.write_bytes(data[:-10])
    code, _, err = _count(out)
    assert code == 2 and err == _squeeze(f"error: {out}: {entry['file']} has {len(data) - 10} bytes, the manifest says "
                                 f"{len(data)}; it is not a complete `exhunt ingest` folder (ingest the inputs "
                                 "again into a new folder)")
    part.unlink()
    code, _, err = _count(out)
    assert code == 2 and _squeeze(f"{entry['file']} is missing") in err


@pytest.mark.parametrize("listed", ["../../secret.parquet", "DeviceFileEvents/../../secret.parquet",
                                    "/etc/passwd", "DeviceProcessEvents/part-0123456789ab-0.parquet"])
def test_a_manifest_naming_files_outside_its_tables_is_refused(tmp_path: Path, inputs: tuple[Path, Path],
                                                               listed: str) -> None:
    """A crafted manifest must not make exhunt read a file of its choosing."""
    out, doc = _published(tmp_path, inputs)
    doc["tables"]["DeviceFileEvents"].append({"file": listed, "bytes": 1, "rows": 1})  # type: ignore[index]
    (out / manifest.NAME).write_text(json.dumps(doc))
    code, _, err = _count(out)
    assert code == 2 and err == _squeeze(f"error: {out}: exhunt-manifest.json lists {listed!r}, which is not a "
                                         "part file of table DeviceFileEvents in the folder; it is not a complete "
                                         "`exhunt ingest` folder (ingest the inputs again into a new folder)")


def test_out_must_be_new_empty_or_an_ingest_to_append_to(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """Checked before any input is read."""
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = run_cli(["ingest", str(inputs[0]), "--out", str(busy)])
    assert code == 2 and _squeeze(err) == _squeeze(f"error: --out {busy} is not empty; choose a new or empty folder")
    code, _, err = run_cli(["ingest", str(inputs[0]), "--out", str(busy / "notes.txt")])
    assert code == 2 and _squeeze(err) == _squeeze(f"error: --out: {busy / 'notes.txt'} is a file; give a folder")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
