"""Benchmark EVTX end to end (parse, map, detect) against the raw `evtx` parse rate.

Builds a set the way the project's performance anchors do: every .evtx file
under a source folder (default ../shared/data) copied N times under distinct
names. Each measurement runs in its own child process so wall time and peak RSS
are its own:

- raw-iter:   `PyEvtxParser(f).records_json()` iterated, nothing else;
- raw-dict:   the same plus `json.loads` of each record (what any Python consumer must do);
- raw-orjson: the same with `orjson.loads` (the single-core parse-to-dict ceiling);
- reader:     exhunt's EVTX reader alone in one process: parse -> WinEvent -> table rows ->
              Arrow batches, nothing stored (the per-process cost a reader worker pays);
- exhunt:     Session.load_files over the folder (reader worker processes -> DuckDB),
              then every shipped rule run once with now() pinned after the last event.

    python bench/bench_evtx.py                    # copies 40 (about 156k records)
    python bench/bench_evtx.py --copies 10 40     # memory should stay flat as input grows

Target (issue 3): exhunt records/s >= half the raw-dict rate; peak RSS flat in the copy count.
Peak RSS is the measured process's own; for exhunt also the largest reader worker's and the
largest sum over all its processes at one time (sampled every 50 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


MODES = ("raw-iter", "raw-dict", "raw-orjson", "reader", "exhunt")


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


def child_exhunt(folder: Path) -> int:
    from exhunt import sources
    from exhunt.engine import Session
    from exhunt.replay import run_rule
    from exhunt.rule import load_rules

    rules = load_rules(None)
    with Session() as session:
        # As `exhunt detect` sets its session up (cli.detect).
        session.load_only_for([r.query for r in rules])
        session.in_place = True
        reports = session.load_files(list(sources.walk([folder])))
        span = session.time_span(session.tables)
        now = span[1] if span else None
        alerts = sum(len(run_rule(session, rule, now).rows) for rule in rules)
    print(json.dumps({"alerts": alerts, "rules": len(rules)}), file=sys.stderr)
    return sum(r.read for r in reports)


def _tree_memory(root: int) -> tuple[int, dict[int, int]]:
    """(sum of VmRSS over `root` and its descendants, VmHWM per descendant pid), in KB, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total, peaks = 0, {}
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        fields = {line.split(":", 1)[0]: line.split()[1] for line in status if line.startswith(("VmRSS", "VmHWM"))}
        total += int(fields.get("VmRSS", 0))
        if pid != root:
            peaks[pid] = int(fields.get("VmHWM", 0))
    return total, peaks


def run_child(mode: str, folder: Path) -> dict[str, float]:
    """Run one measurement; memory of reader worker processes (children of a forkserver, so
    invisible to getrusage) is sampled from /proc every 50 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree_kb, worker_kb = 0, 0
    while proc.poll() is None:
        if mode == "exhunt" and sys.platform == "linux":
            total, peaks = _tree_memory(proc.pid)
            tree_kb = max(tree_kb, total)
            worker_kb = max([worker_kb, *peaks.values()])
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{stderr}")
    out = json.loads(stdout.strip().splitlines()[-1])
    return {"records": out["records"], "wall": wall, "rss_mb": out["rss_kb"] / 1024,
            "workers_mb": worker_kb / 1024, "tree_mb": tree_kb / 1024, "rate": out["records"] / wall,
            "extra": stderr.strip().splitlines()[-1] if stderr.strip() else ""}  # type: ignore[dict-item]


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
            n = child_exhunt(folder)
        elif mode == "reader":
            n = child_reader(folder)
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
            results = {}
            for mode in args.modes:
                runs = sorted((run_child(mode, Path(tmp)) for _ in range(args.runs)), key=lambda r: r["wall"])
                r = runs[len(runs) // 2]
                results[mode] = r
                rss = f"{r['rss_mb']:.0f}"
                if mode == "exhunt" and r["workers_mb"]:
                    rss += f" (largest worker {r['workers_mb']:.0f}, all processes {r['tree_mb']:.0f})"
                print(f"| {copies} | {size / 1e6:.0f} | {mode} | {r['records']:,.0f} | {r['wall']:.2f} | "
                      f"{r['rate']:,.0f} | {rss} |", flush=True)
            if "exhunt" in results and ("raw-dict" in results or "raw-orjson" in results):
                ratios = ", ".join(f"exhunt / {m} = {results['exhunt']['rate'] / results[m]['rate']:.2f}"
                                   for m in ("raw-dict", "raw-orjson") if m in results)
                print(f"<!-- copies {copies}: {ratios}; {results['exhunt']['extra']} -->")


if __name__ == "__main__":
    main()
