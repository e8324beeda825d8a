"""Benchmark EVTX end to end (parse, map, detect) against a bare `evtx` iteration.

Builds a set the way the project's performance anchors do: every .evtx file
under a source folder (default ../shared/data) copied N times under distinct
names. Each measurement runs in its own child process so wall time and peak RSS
are its own:

- raw-iter:   `PyEvtxParser(f).records_json()` iterated, nothing else (the yardstick);
- raw-dict:   the same plus `json.loads` of each record (what any Python consumer must do);
- raw-orjson: the same with `orjson.loads`;
- reader:     exhunt's EVTX reader alone, in one process (records into Arrow batches of their JSON);
- floor:      raw-iter's records kept as text and handed to DuckDB, which parses each once for
              its System fields into a table: the least the design issue 8 prescribes must do
              before any mapping or rule runs;
- startup:    the interpreter importing exhunt's command line (what every run pays first);
- exhunt:     `exhunt detect FOLDER` exactly as a user runs it: every shipped rule, default
              replay, alerts written as JSON lines.

    python bench/bench_evtx.py                    # copies 40 (about 156k records)
    python bench/bench_evtx.py --copies 10 40 160 # memory must stay flat as input grows

Targets (issue 8): exhunt at most 2.4x raw-iter's wall time (aiming at 1.7x) and over 120,000
records/s; peak resident memory of all exhunt processes together at most 300 MB, within 20%
from 39k to 625k records. Peak RSS is sampled from /proc every 50 ms over the whole process
tree (reader worker processes included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proctree import detect_child, run_sampled, tree_memory  # noqa: E402

DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data"


def build_set(source: Path, copies: int, dest: Path) -> int:
    """Copy every .evtx under source `copies` times into dest; returns bytes written."""
    files = sorted(source.rglob("*.evtx"))
    if not files:
        raise SystemExit(f"no .evtx files under {source}")
    total = 0
    for i in range(copies):
        for j, f in enumerate(files):
            target = dest / f"c{i:03d}_{j:02d}.evtx"
            shutil.copyfile(f, target)
            total += target.stat().st_size
    return total


# -- child measurements ---------------------------------------------------------


MODES = ("raw-iter", "raw-dict", "raw-orjson", "floor", "startup", "reader", "exhunt")


def child_raw(folder: Path, mode: str) -> int:
    import evtx
    import orjson

    n = 0
    to_dict = mode != "raw-iter"
    loads = orjson.loads if mode == "raw-orjson" else json.loads
    for f in sorted(folder.glob("*.evtx")):
        records = evtx.PyEvtxParser(str(f)).records_json()
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except RuntimeError:
                continue
            if to_dict:
                loads(rec["data"])
            n += 1
    return n


def child_floor(folder: Path) -> int:
    """Records as text -> Arrow -> DuckDB, parsed once for the System fields and stored."""
    import duckdb
    import evtx
    import pyarrow as pa

    texts: list[str] = []
    for f in sorted(folder.glob("*.evtx")):
        records = evtx.PyEvtxParser(str(f)).records_json()
        while True:
            try:
                texts.append(next(records)["data"])
            except StopIteration:
                break
            except RuntimeError:
                continue
    raw = pa.table({"data": pa.array(texts, pa.string())})
    del texts
    con = duckdb.connect()
    con.register("raw", raw)
    con.execute("""CREATE TABLE e AS SELECT try(from_json(data, '{"Event": {"System": {"Channel": "VARCHAR",
        "Computer": "VARCHAR", "Provider": {"#attributes": {"Name": "VARCHAR"}}, "EventID": "VARCHAR",
        "EventRecordID": "VARCHAR", "TimeCreated": {"#attributes": {"SystemTime": "VARCHAR"}}}}}')).Event.System AS s,
        data FROM raw""")
    return int(con.execute("SELECT count(*) FROM e").fetchone()[0])  # type: ignore[index]


def child_startup() -> int:
    import exhunt.cli  # noqa: F401

    return 0


def child_reader(folder: Path) -> int:
    import warnings

    from exhunt import sources
    from exhunt.sources.base import FileReport
    from exhunt.sources.evtx_file import READER

    warnings.simplefilter("ignore")
    n = 0
    for src in sources.walk([folder]):
        report = FileReport(src.display)
        for _ in READER.read(src, report, None):
            pass
        n += report.read
    return n


def run_child(mode: str, folder: Path) -> dict[str, float]:
    """Run one measurement; memory of reader worker processes (children of a forkserver, so
    invisible to getrusage) is sampled from /proc every 50 ms."""
    tree_kb, worker_kb = 0, 0

    def sample(pid: int) -> None:
        nonlocal tree_kb, worker_kb
        if mode == "exhunt" and sys.platform == "linux":
            total, peaks = tree_memory(pid)
            tree_kb = max(tree_kb, total)
            worker_kb = max([worker_kb, *peaks.values()])

    out, extra, wall = run_sampled(__file__, mode, folder, sample)
    return {"records": out["records"], "wall": wall, "rss_mb": out["rss_kb"] / 1024,
            "workers_mb": worker_kb / 1024, "tree_mb": tree_kb / 1024, "rate": out["records"] / wall,
            "extra": extra}  # type: ignore[dict-item]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--copies", type=int, nargs="+", default=[40])
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs per row")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, folder = args.child[0], Path(args.child[1])
        if mode == "exhunt":
            n = detect_child(folder)
        elif mode == "reader":
            n = child_reader(folder)
        elif mode == "floor":
            n = child_floor(folder)
        elif mode == "startup":
            n = child_startup()
        else:
            n = child_raw(folder, mode)
        print(json.dumps({"records": n, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        return
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}")
    print("| copies | MB | path | records | wall s (median) | records/s | peak RSS MB |")
    print("|---:|---:|---|---:|---:|---:|---|")
    for copies in args.copies:
        with tempfile.TemporaryDirectory(prefix="exhunt-bench-") as tmp:
            size = build_set(args.source, copies, Path(tmp))
            records = child_raw(Path(tmp), "raw-iter")
            results = {}
            for mode in args.modes:
                runs = sorted((run_child(mode, Path(tmp)) for _ in range(args.runs)), key=lambda r: r["wall"])
                r = runs[len(runs) // 2]
                if r["records"] < 0:
                    r["records"], r["rate"] = records, records / r["wall"]
                results[mode] = r
                rss = f"{r['rss_mb']:.0f}"
                if mode == "exhunt" and r["workers_mb"]:
                    rss += f" (largest worker {r['workers_mb']:.0f}, all processes {r['tree_mb']:.0f})"
                print(f"| {copies} | {size / 1e6:.0f} | {mode} | {r['records']:,.0f} | {r['wall']:.2f} | "
                      f"{r['rate']:,.0f} | {rss} |", flush=True)
            if "exhunt" in results and "raw-iter" in results:
                ex, raw = results["exhunt"], results["raw-iter"]
                print(f"copies {copies}: exhunt detect / bare evtx iteration = {ex['wall'] / raw['wall']:.2f}x "
                      f"(target <= 2.4x, aim 1.7x); {ex['rate']:,.0f} records/s (target > 120,000); "
                      f"all processes peak {ex['tree_mb']:.0f} MB (target <= 300); {ex['extra']}", flush=True)
            if {"floor", "startup", "raw-iter"} <= results.keys():
                raw = results["raw-iter"]["wall"]
                floor = results["floor"]["wall"] + results["startup"]["wall"]
                print(f"copies {copies}: floor (startup + records to DuckDB, parsed once, no mapping, no rule) / "
                      f"bare evtx iteration = {floor / raw:.2f}x", flush=True)


if __name__ == "__main__":
    main()
