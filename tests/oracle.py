"""The frozen output oracle: what every input yields, table by table and alert by alert.

Issue 8 replaces how inputs become tables (Windows events mapped in SQL, CSV read in
place, replay without rescans). Before that, today's output was frozen here: for
each input, every table's rows exactly as a query sees them (all columns, the
provenance columns included), the per-file read/used/skipped counts, and the
alerts every shipped rule raises with the default replay. `test_oracle.py`
requires the current code to reproduce them.

Cases whose data the project owns (demo/, the test generators) are stored whole,
so a difference shows the rows; cases from ../shared/data are stored as digests
(their rows are third-party data, not copied into the repo): rebuild the rows
with `python tests/oracle.py --dump DIR` on two checkouts and diff them.

    python tests/oracle.py --freeze        # rewrite tests/oracle/ (only on purpose)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_DATA = REPO.parent / "shared" / "data"
STORE = HERE / "oracle"
sys.path.insert(0, str(HERE))

Snapshot = dict[str, Any]


def _canon(value: Any) -> Any:
    from exhunt.alerts import jsonable

    return jsonable(value)


def _line(row: dict[str, Any]) -> str:
    return json.dumps({k: _canon(v) for k, v in row.items()}, sort_keys=True, ensure_ascii=False)


def _counts(counter: Any) -> dict[str, int]:
    return dict(sorted((k, v) for k, v in counter.items() if v))


def snapshot(paths: list[Path], tables: bool = True, alerts: bool = True) -> Snapshot:
    """Tables, file reports and alerts of one input set, loaded and hunted as `detect` does."""
    from conftest import run_cli
    from exhunt import sources
    from exhunt.engine import Session

    out: Snapshot = {}
    if tables:
        with Session(in_memory=True) as session:
            session.in_place = True
            reports = session.load_files(sources.walk(paths), jobs=1)
            out["reports"] = sorted(
                [r.path, r.format, r.read, _counts(r.used), _counts(r.skipped), _counts(r.coerced),
                 r.damaged_chunks, r.error]
                for r in reports
            )
            out["tables"] = {}
            for name in sorted(session.tables):
                cur = session.con.execute(f'SELECT * FROM "{name}"')
                cols = [d[0] for d in cur.description]
                rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
                if rows:
                    out["tables"][name] = sorted(_line(r) for r in rows)
    if alerts:
        code, stdout, _ = run_cli(["detect", *map(str, paths), "-f", "jsonl", "--flat", "-q", "-j", "1"])
        if code != 0:
            raise RuntimeError(f"detect exited {code} on {paths}")
        out["alerts"] = sorted(_line(json.loads(line)) for line in stdout.splitlines() if line.strip())
    return out


def digest(snap: Snapshot) -> Snapshot:
    """Counts and SHA-256 of each part: what is stored for third-party data."""

    def h(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    out: Snapshot = {}
    if "alerts" in snap:
        out["alerts"] = [len(snap["alerts"]), h(snap["alerts"])]
    if "tables" in snap:
        out["reports"] = snap["reports"]
        out["tables"] = {name: [len(rows), h(rows)] for name, rows in snap["tables"].items()}
    return out


# -- the cases ------------------------------------------------------------------------

#: (name, writer of the input into a temporary folder -> its paths, with tables, with alerts,
#: folder the paths are shown relative to (None: the temporary folder)). Alerts are taken where
#: they say something the other cases do not: per rendition of the Defender rows only once
#: (test_formats requires every rendition to give the same alerts), for the shared files
#: once over the whole folder.
Case = tuple[str, Callable[[Path], list[Path]], bool, bool, Path | None]


def _owned_cases() -> Iterator[Case]:
    """The cases whose data the repo owns: demo/ and what the test generators write."""
    import helpers
    import winlog_gen as g

    demo = REPO / "demo"
    for f in sorted(demo.iterdir()):
        yield f"demo/{f.name}", (lambda _d, f=f: [f]), True, False, REPO
    yield "demo", (lambda _d: [demo]), False, True, REPO
    for label, (_reader, write) in helpers.FORMATS.items():
        yield f"formats/{label}", write, True, label == "portal-csv", None
    events = [*g.NAMED, g.PS800, g.EX1, g.EX6]
    yield ("winlog/evtx-json", lambda d: [g.write_jsonl(d / "events.json", [g.evtx_json(e) for e in events])],
           True, True, None)
    yield "winlog/ecs", lambda d: [g.write_jsonl(d / "events.ndjson", [g.ecs(e) for e in events])], True, True, None
    yield ("winlog/otrf", lambda d: [g.write_jsonl(d / "events.json", [g.otrf(e) for e in g.NAMED])],
           True, True, None)


def _shared_cases() -> Iterator[Case]:
    if not SHARED_DATA.is_dir():
        return
    for f in sorted(SHARED_DATA.rglob("*")):
        if f.is_file() and f.suffix.lower() in (".evtx", ".zip", ".csv"):
            rel = f.relative_to(SHARED_DATA).as_posix()
            yield f"shared/{rel}", (lambda _d, f=f: [f]), True, False, SHARED_DATA
    yield "shared", (lambda _d: [SHARED_DATA]), False, True, SHARED_DATA


def compute(case: Case, whole: bool) -> Snapshot:
    """One case's snapshot; `whole` False gives its digest."""
    _name, write, tables, alerts, base = case
    with tempfile.TemporaryDirectory(prefix="exhunt-oracle-") as tmp:
        folder = Path(tmp)
        paths = write(folder)
        # File names in reports and alerts must not depend on where the data sits: run from
        # the base folder with relative paths ("." for the base itself).
        base = base or folder
        cwd = os.getcwd()
        try:
            os.chdir(base)
            snap = snapshot([p.relative_to(base) for p in paths], tables, alerts)
        finally:
            os.chdir(cwd)
    return snap if whole else digest(snap)


def store_path(owned: bool) -> Path:
    return STORE / ("owned.json.gz" if owned else "shared.json")


def load_store(owned: bool) -> dict[str, Snapshot]:
    path = store_path(owned)
    if not path.exists():
        return {}
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return dict(json.loads(data))


def cases(owned: bool) -> list[Case]:
    return list(_owned_cases() if owned else _shared_cases())


def freeze() -> None:
    STORE.mkdir(exist_ok=True)
    for owned in (True, False):
        found = {case[0]: compute(case, whole=owned) for case in cases(owned)}
        if not found:
            print(f"no cases for {store_path(owned).name} (../shared/data absent?)", file=sys.stderr)
            continue
        text = json.dumps(found, indent=1, sort_keys=True, ensure_ascii=False).encode()
        path = store_path(owned)
        path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)
        print(f"{path}: {len(found)} cases")


def dump(folder: Path) -> None:
    """Every case's whole snapshot (shared ones too) into FOLDER, one JSON file each, for diffing."""
    folder.mkdir(parents=True, exist_ok=True)
    for owned in (True, False):
        for case in cases(owned):
            snap = compute(case, whole=True)
            (folder / (case[0].replace("/", "__") + ".json")).write_text(
                json.dumps(snap, indent=1, sort_keys=True, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freeze", action="store_true", help="rewrite tests/oracle/ from the current code")
    ap.add_argument("--dump", type=Path, help="write every case's full snapshot into this folder")
    args = ap.parse_args()
    if args.freeze:
        freeze()
    if args.dump:
        dump(args.dump)
    if not (args.freeze or args.dump):
        ap.print_help()
