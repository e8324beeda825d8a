"""Benchmark `exhunt detect` when nearly every row alerts: memory must not grow with alerts.

Generates a Defender `DeviceFileEvents` export in which ALERTS rows are DLL writes
under the Exchange folders by powershell.exe (each an alert of the seed rule, each
with its own file name), interleaved with as many rows that do not alert, spread over
30 days. Then runs `exhunt detect FOLDER --rules exchange-transport-agent-seed` as a
user would, in a child process, and prints its wall time and the peak RSS of the whole
process tree (sampled from /proc every 50 ms, see proctree.py), and checks that every
alert names the file and record its row came from.

    python bench/bench_alerts.py                      # 100,000 alerts, JSON lines
    python bench/bench_alerts.py --alerts 20000 --formats jsonl,csv,parquet

Target (issue 9): 100,000 alerts in under 1 GB for all processes together.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_detect import _exhunt, measure  # noqa: E402

OUT = HERE / "out" / "alerts"
RULE = "exchange-transport-agent-seed"
TABLE = "DeviceFileEvents"
EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents"
START = "2026-11-01 00:00:00"
SPAN_US = 30 * 86400 * 1_000_000


def _rows_sql(alerts: int) -> str:
    """2 * alerts rows in file order: even rows alert (agent<k>.dll), odd rows are .txt files
    in the same folder (same shape, no alert). Every third alert has no command line, so the
    alerts' values come in more than one shape."""
    n = 2 * alerts
    ts = f"TIMESTAMP '{START}' + to_microseconds(CAST(i * {SPAN_US} // {n} AS BIGINT))"
    name = "CASE WHEN i % 2 = 0 THEN 'agent' || CAST(i // 2 AS VARCHAR) || '.dll' " \
           "ELSE 'note' || CAST(i // 2 AS VARCHAR) || '.txt' END"
    return (
        f"SELECT strftime({ts}, '%Y-%m-%dT%H:%M:%S.%fZ') AS Timestamp, "
        f"'exch0' || CAST(1 + i % 4 AS VARCHAR) || '.contoso.local' AS DeviceName, "
        f"'FileCreated' AS ActionType, {name} AS FileName, '{EXCH}\\' || {name} AS FolderPath, "
        f"'powershell.exe' AS InitiatingProcessFileName, "
        f"CASE WHEN (i // 2) % 3 = 0 THEN NULL ELSE 'powershell.exe -File deploy' || CAST(i AS VARCHAR) || '.ps1' "
        f"END AS InitiatingProcessCommandLine, "
        f"'admin' || CAST(i % 7 AS VARCHAR) AS InitiatingProcessAccountName, "
        f"CAST(i + 1 AS BIGINT) AS ReportId "
        f"FROM range({n}) r(i) ORDER BY i"
    )


def generate(out: Path, alerts: int, fmt: str) -> Path:
    """out/<fmt>/DeviceFileEvents.<ext>; reused when already made for `alerts`."""
    folder = out / f"{fmt}-{alerts}"
    ext = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}[fmt]
    path = folder / f"{TABLE}.{ext}"
    if path.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    options = {"jsonl": "FORMAT json", "csv": "HEADER, NEW_LINE '\\r\\n'", "parquet": "FORMAT parquet"}[fmt]
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"COPY ({_rows_sql(alerts)}) TO '{path}' ({options})").fetchall()
    con.close()
    return folder


def expected_record(file_name: str, fmt: str) -> str:
    """Where the row of `agent<k>.dll` is: row 2k (0-based) of the file."""
    i = 2 * int(file_name.removeprefix("agent").removesuffix(".dll"))
    return {"jsonl": f"line {i + 1}", "csv": f"line {i + 2}", "parquet": f"row {i + 1}"}[fmt]


def check(alerts_file: Path, fmt: str) -> tuple[int, int, list[str]]:
    """Alerts in all, the seed rule's, and every alert on a generated row whose provenance is
    not that row's."""
    n = seed = 0
    wrong = []
    with alerts_file.open() as fh:
        for line in fh:
            a = json.loads(line)
            n += 1
            seed += a.get("DetectionType") == "Exchange_Transport_DLL_Write"
            name = str(a.get("FileName") or "")
            if not re.fullmatch(r"agent\d+\.dll", name):
                continue
            want = expected_record(name, fmt)
            if Path(a["source_file"]).stem != TABLE or a["source_record"] != want:
                wrong.append(f"{name}: {a['source_file']} {a['source_record']}, want {want}")
    return n, seed, wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=100_000, help="alerting rows to generate (default 100,000)")
    ap.add_argument("--formats", default="jsonl", help="comma-separated: jsonl, csv, parquet")
    ap.add_argument("--out", type=Path, default=OUT, help="where data and alerts go (default bench/out/alerts)")
    ap.add_argument("--rules", action="append", default=None,
                    help=f"rule for detect (repeatable; default {RULE}; 'all' for every shipped rule)")
    ap.add_argument("--generate-only", action="store_true", help="write the data and stop")
    args = ap.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.generate_only:
        for fmt in formats:
            generate(args.out, args.alerts, fmt)
        return 0
    # In a child: Linux carries a parent's peak RSS into its children's ru_maxrss.
    import subprocess

    subprocess.run([sys.executable, __file__, "--generate-only", "--alerts", str(args.alerts),
                    "--formats", args.formats, "--out", str(args.out)], check=True)
    ok = True
    print(f"{'format':8} {'size MB':>8} {'wall s':>7} {'peak MB':>8} {'tree MB':>8} alerts")
    for fmt in formats:
        folder = generate(args.out, args.alerts, fmt)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        alerts_file = args.out / f"alerts-{fmt}-{args.alerts}.jsonl"
        t0 = time.perf_counter()
        rules = args.rules or [RULE]
        chosen = [] if "all" in rules else [arg for r in rules for arg in ("--rules", r)]
        m = measure([*_exhunt(), "detect", str(folder), *chosen, "-f", "jsonl", "--flat", "-q"], stdout=alerts_file)
        wall = time.perf_counter() - t0
        n, seed, wrong = check(alerts_file, fmt) if m.rc in (0, 1) else (0, 0, ["detect failed"])
        ok &= seed == args.alerts and not wrong
        verdict = "provenance exact" if not wrong else f"{len(wrong)} provenance WRONG"
        print(f"{fmt:8} {size:8.0f} {wall:7.2f} {m.rss_mb:8.0f} {m.tree_mb:8.0f} "
              f"{n:,} ({seed:,} of {args.alerts:,} from the seed rule), {verdict}")
        for w in wrong[:10]:
            print(f"  {w}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
