"""Benchmark the schedule replay: a windowed rule over an export spanning many windows.

Generates one portal-style DeviceProcessEvents CSV (default 1M rows over 30 days, rows
shuffled so the file is not in time order) from the shared noise model's process templates
(as bench_detect expands them), and a few planted agent installs, most followed by a
transport restart (a chain). Then times, each as a child process (median of --repeat runs):

- `exhunt detect demo/` (what `make run` does);
- `exhunt detect FILE -r exchange-transport-agent-chain` (the windowed rule alone: 695 runs);
- `exhunt detect FILE` (all shipped rules).

It prints each run's alert count and a digest of its alerts, so two checkouts can be
compared for identical results.

    python bench/bench_replay.py                   # 1M rows, 30 days, 3 runs each
    python bench/bench_replay.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_detect as bd  # noqa: E402

REPO = HERE.parent
CHAIN = "exchange-transport-agent-chain"
DAYS = 30
SEED = 8005
#: (position in the span, Exchange server index, restart too) of each planted agent install:
#: with a restart 40 minutes later it is a two-stage chain, without it a lone step.
PLANTED = [(0.05, 0, True), (0.20, 1, False), (0.31, 1, True), (0.52, 2, True), (0.60, 3, False),
           (0.74, 3, True), (0.97, 0, True)]
INSTALL = "powershell.exe -c Install-TransportAgent -Name Connectivity -AssemblyPath C:\\ProgramData\\a.dll"
RESTART = "net stop msexchangetransport"


def _planted(rows: int, days: int) -> str:
    """The planted rows, keyed by the row index (`pi`) they replace."""
    out = []
    for pos, dev, restart in PLANTED:
        t = bd.START + timedelta(days=days * pos)
        steps = [(t, "powershell.exe", INSTALL, "explorer.exe")]
        if restart:
            steps.append((t + timedelta(minutes=40), "net.exe", RESTART, "cmd.exe"))
        for k, (when, name, line, parent) in enumerate(steps):
            out.append(f"SELECT {int(rows * pos) + k} AS pi, TIMESTAMP '{when.isoformat()}' AS ts, "
                       f"'exch0{dev + 1}.contoso.local' AS dn, {bd._lit(name)} AS fn, {bd._lit(line)} AS cl, "
                       f"{bd._lit(parent)} AS ipf")
    return " UNION ALL ".join(out)


def generate(out: Path, rows: int, days: int = DAYS) -> Path:
    """Write out/DeviceProcessEvents.csv (skipped when already made with these settings)."""
    path = out / "DeviceProcessEvents.csv"
    stamp = out / "stamp.json"
    want = {"rows": rows, "days": days, "seed": SEED, "version": 3}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return path
    out.mkdir(parents=True, exist_ok=True)
    base = bd._select("DeviceProcessEvents", rows, days)
    planted = _planted(rows, days)
    con = duckdb.connect()
    cols = [d[0] for d in con.execute(f"SELECT * FROM ({base}) LIMIT 0").description if d[0] != "i"]
    swap = {
        "Timestamp": "COALESCE(pl.ts, b.Timestamp)",
        "DeviceName": "COALESCE(pl.dn, b.DeviceName)",
        "FileName": "COALESCE(pl.fn, b.FileName)",
        # the noise model (exhunt.simulate.noise) holds no chain step: steps stay rare, as in a real fleet
        "ProcessCommandLine": "COALESCE(pl.cl, b.ProcessCommandLine)",
        "InitiatingProcessFileName": "COALESCE(pl.ipf, b.InitiatingProcessFileName)",
    }
    texts = []
    for c in cols:
        expr = swap.get(c, f"b.{c}")
        if c in ("Timestamp", "ProcessCreationTime"):
            expr = f"strftime({expr}, '%Y-%m-%dT%H:%M:%S.%f') || '0Z'"
        texts.append(f"{expr} AS {c}")
    # Shuffled: exports are often concatenated or sorted by device, not by time.
    query = (f"SELECT {', '.join(texts)} FROM ({base}) b LEFT JOIN ({planted}) pl ON pl.pi = b.i "
             f"ORDER BY hash(b.i, {SEED})")
    con.execute(f"COPY ({query}) TO '{path}' (HEADER, NEW_LINE '\\r\\n')").fetchall()
    con.close()
    stamp.write_text(json.dumps(want))
    return path


def _digest(path: Path) -> tuple[int, str]:
    lines = sorted(json.dumps(json.loads(x), sort_keys=True) for x in path.read_text().splitlines() if x.strip())
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=DAYS)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is printed")
    ap.add_argument("--out", type=Path, default=bd.OUT / "replay")
    ap.add_argument("--skip", default="", help="comma-separated cases to skip: demo, chain, all")
    args = ap.parse_args(argv)
    path = generate(args.out, args.rows, args.days)
    size = path.stat().st_size / 1e6
    print(f"data: {path} ({args.rows:,} rows over {args.days} days, {size:.0f} MB, shuffled)")
    cases = {
        "demo": [str(REPO / "demo")],
        "chain": [str(path), "--rules", CHAIN],
        "all": [str(path)],
    }
    skip = {s for s in args.skip.split(",") if s}
    print(f"{'case':6} {'median s':>9} {'runs s':>24} {'peak MB':>8} alerts")
    for name, extra in cases.items():
        if name in skip:
            continue
        alerts = args.out / f"alerts-{name}.jsonl"
        runs = [bd.measure([*bd._exhunt(), "detect", *extra, "-f", "jsonl", "--flat", "-q"], stdout=alerts)
                for _ in range(args.repeat)]
        mid = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
        n, digest = _digest(alerts)
        walls = ", ".join(f"{m.wall:.2f}" for m in runs)
        print(f"{name:6} {mid.wall:9.2f} {walls:>24} {mid.rss_mb:8.0f} {n} ({digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
