"""Benchmark EVTX end to end (parse, map, detect) against the raw `evtx` parse rate.

Builds a set the way the project's performance anchors do: every .evtx file
under a source folder (default ../shared/data) copied N times under distinct
names. Each measurement runs in its own child process so wall time and peak RSS
are its own:

- raw-iter:  `PyEvtxParser(f).records_json()` iterated, nothing else;
- raw-dict:  the same plus `json.loads` of each record (what any Python consumer must do);
- exhunt:    Session.load_files over the folder (parse -> WinEvent -> rows -> DuckDB),
             then every shipped rule run once with now() pinned after the last event.

    python bench/bench_evtx.py                    # copies 40 (about 156k records)
    python bench/bench_evtx.py --copies 10 40     # memory should stay flat as input grows

Target (issue 3): exhunt records/s >= half the raw-dict rate; peak RSS flat in the copy count.
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


def child_raw(folder: Path, to_dict: bool) -> int:
    import evtx

    n = 0
    loads = json.loads
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


def child_exhunt(folder: Path) -> int:
    from exhunt import sources
    from exhunt.engine import Session
    from exhunt.replay import run_rule
    from exhunt.rule import load_rules

    rules = load_rules(None)
    with Session() as session:
        reports = session.load_files(list(sources.walk([folder])))
        span = session.time_span(session.tables)
        now = span[1] if span else None
        alerts = sum(len(run_rule(session, rule, now).rows) for rule in rules)
    print(json.dumps({"alerts": alerts, "rules": len(rules)}), file=sys.stderr)
    return sum(r.read for r in reports)


def run_child(mode: str, folder: Path) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"records": out["records"], "wall": wall, "rss_mb": out["rss_kb"] / 1024,
            "rate": out["records"] / wall, "extra": proc.stderr.strip()}  # type: ignore[dict-item]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--copies", type=int, nargs="+", default=[40])
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs per row")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, folder = args.child[0], Path(args.child[1])
        n = child_exhunt(folder) if mode == "exhunt" else child_raw(folder, mode == "raw-dict")
        print(json.dumps({"records": n, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        return
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}")
    print("| copies | MB | path | records | wall s (median) | records/s | peak RSS MB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for copies in args.copies:
        with tempfile.TemporaryDirectory(prefix="exhunt-bench-") as tmp:
            size = build_set(args.source, copies, Path(tmp))
            results = {}
            for mode in ("raw-iter", "raw-dict", "exhunt"):
                runs = sorted((run_child(mode, Path(tmp)) for _ in range(args.runs)), key=lambda r: r["wall"])
                r = runs[len(runs) // 2]
                results[mode] = r
                print(f"| {copies} | {size / 1e6:.0f} | {mode} | {r['records']:,.0f} | {r['wall']:.2f} | "
                      f"{r['rate']:,.0f} | {r['rss_mb']:.0f} |", flush=True)
            ratio = results["exhunt"]["rate"] / results["raw-dict"]["rate"]
            print(f"<!-- copies {copies}: exhunt / raw-dict = {ratio:.2f}; {results['exhunt']['extra']} -->")


if __name__ == "__main__":
    main()
