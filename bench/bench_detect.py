"""Benchmark `exhunt detect` on generated Defender Advanced Hunting exports.

Generates N rows of mixed MDE tables (portal-style CSV, and Parquet) spread over
30 days on 200 machines, expanded inside DuckDB from the noise model that
`exhunt simulate --noise` uses too (exhunt.simulate.noise.TEMPLATES: ordinary
Windows and Exchange activity, near misses included), and beside them every
shipped scenario rendered by the simulator on a host of its own (its attacks are
the true positives, its benign runs more near misses). Then it times
`exhunt detect FOLDER` with every shipped rule and the default replay, as a user
runs it, and, as the yardstick, DuckDB scanning the same files for the seed
rule's columns with a plain SQL filter. The alerts are judged as
`exhunt simulate --check` judges them: each scenario's expected alerts, exactly,
and none at all on the noise hosts. Every measured command runs as a child
process; its peak memory is sampled from /proc over the whole process tree
(reader workers are separate processes), beside the child's own peak RSS.

    python bench/bench_detect.py --rows 1000000          # CSV and Parquet
    python bench/bench_detect.py --rows 10000000 --formats csv
    python bench/bench_detect.py --rules exchange-transport-agent-seed   # one rule, as rounds 2-4 measured

Targets (issue 8): detect at most 1.5x the scan (the ratio is printed), peak memory of
all processes bounded by the `--memory` setting and not growing with the input.
The data is generated with DuckDB itself (deterministic hashes, no Python loop),
so making 10M rows takes well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from exhunt.simulate.check import Verdict
    from exhunt.simulate.layout import Layout

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proctree import tree_memory  # noqa: E402

OUT = HERE / "out"
RULE = "exchange-transport-agent-seed"
START = datetime(2026, 11, 14)
DAYS = 30
SEED = 1505002

#: Share of all rows per table (roughly what a server fleet's Defender export holds).
MIX = {
    "DeviceProcessEvents": 0.40,
    "DeviceFileEvents": 0.30,
    "DeviceNetworkEvents": 0.15,
    "DeviceImageLoadEvents": 0.10,
    "DeviceRegistryEvents": 0.05,
}

#: Where Exchange lives on the noise hosts (the simulator's default root).
EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15"
#: The attack and benign scenarios run on hosts of their own (sim-01.contoso.local...), all starting here.
SIM_HOST = "sim.contoso.local"
SIM_START = START + timedelta(days=12, hours=2)
#: The simulator's writer that makes each bench format's scenario files.
WRITER = {"csv": "mde-csv", "parquet": "parquet"}
_FILE_ACTION = {"created": "FileCreated", "modified": "FileModified", "deleted": "FileDeleted",
                "renamed": "FileRenamed"}


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _values(rows: list[tuple[object, ...]], names: list[str]) -> str:
    body = ", ".join("(" + ", ".join(_lit(str(v)) if not isinstance(v, bool) else str(v) for v in r) + ")"
                     for r in rows)
    return f"(SELECT * FROM (VALUES {body}) v({', '.join(names)}))"


def _fill(expr: str, h: str) -> str:
    """Replace the {n} and {u} placeholders of a template column with per-row values."""
    from exhunt.simulate.noise import USERS

    users = "[" + ", ".join(_lit(u) for u in USERS) + "]"
    return (f"replace(replace({expr}, '{{n}}', CAST({h} % 100000 AS VARCHAR)), "
            f"'{{u}}', {users}[1 + CAST({h} % {len(USERS)} AS INTEGER)])")


def _n_rows(total: int) -> dict[str, int]:
    counts = {t: int(total * share) for t, share in MIX.items()}
    counts["DeviceProcessEvents"] += total - sum(counts.values())
    return counts


def _split(path: str) -> tuple[str, str]:
    folder, _, name = path.rpartition("\\")
    return folder, name


def template_rows(kind: str) -> list[tuple[object, ...]]:
    """noise.TEMPLATES of `kind` as VALUES rows, each repeated by its weight (so a uniform pick
    over the slots is a pick by weight); ${exchange} filled, {n} and {u} left for DuckDB."""
    from exhunt.simulate.noise import TEMPLATES

    rows: list[tuple[object, ...]] = []
    for t in TEMPLATES:
        if t.kind != kind:
            continue
        acct = t.account.lower()
        domain = "nt authority" if acct in ("system", "network service") else "contoso"
        image, parent, target = (x.replace("${exchange}", EXCH) for x in (t.image, t.parent, t.target))
        for _ in range(t.weight):
            rows.append((len(rows), *_split(image), t.command_line, *_split(parent), t.parent_command_line, acct,
                         domain, t.action, target, _split(target)[1], t.value, t.data, t.exchange))
    return rows


_TEMPLATE_COLS = ["k", "folder", "fname", "cl", "pfolder", "pfname", "pcl", "acct", "dom", "act", "target", "tname",
                  "val", "vdata", "exch"]


def _select(table: str, n: int, days: int = DAYS) -> str:
    """A SELECT producing `n` time-ordered rows of `table` with typed columns, over `days` days,
    each drawn by weight from noise.TEMPLATES of the table's kind."""
    from exhunt.simulate import noise

    kind = next(k for k, t in noise.TABLES.items() if t == table)
    rows = template_rows(kind)
    span_us = days * 86400 * 1_000_000
    ts = (f"(TIMESTAMP '{START.isoformat()}' + to_microseconds(CAST(i * {span_us} // {n} "
          f"+ hash(i, {SEED}) % 999983 AS BIGINT)))")
    h = f"hash(i, {SEED} + 1)"
    pick = f"hash(i, {SEED} + 2)"
    dev = f"hash(i, {SEED} + 3)"
    device_expr = (f"CASE WHEN p.exch THEN CAST({dev} % 4 AS INTEGER) "
                   f"ELSE 4 + CAST({dev} % 196 AS INTEGER) END")
    common = f"{ts} AS Timestamp, d.DeviceId, d.DeviceName"
    user = _fill("p.acct", h)
    actor = (f"{user} AS InitiatingProcessAccountName, p.dom AS InitiatingProcessAccountDomain, "
             f"p.fname AS InitiatingProcessFileName, p.folder || '\\' || p.fname AS InitiatingProcessFolderPath, "
             f"{_fill('p.cl', h)} AS InitiatingProcessCommandLine, "
             f"CAST(({h} >> 8) % 60000 AS BIGINT) AS InitiatingProcessId")
    if kind == "file":
        actions = "CASE p.act " + " ".join(f"WHEN '{a}' THEN '{d}'" for a, d in _FILE_ACTION.items()) + " END"
        cols = (f"{common}, {actions} AS ActionType, {_fill('p.tname', h)} AS FileName, "
                f"{_fill('p.target', h)} AS FolderPath, "
                f"lower(hex(sha256(CAST({h} AS VARCHAR)))) AS SHA256, CAST({h} % 5000000 AS BIGINT) AS FileSize, "
                f"{actor}, 'Local' AS RequestProtocol")
    elif kind == "process":
        cols = (f"{common}, 'ProcessCreated' AS ActionType, p.fname AS FileName, "
                f"p.folder || '\\' || p.fname AS FolderPath, lower(hex(sha256(p.fname))) AS SHA256, "
                f"CAST({h} % 60000 AS BIGINT) AS ProcessId, {_fill('p.cl', h)} AS ProcessCommandLine, "
                f"{ts} AS ProcessCreationTime, p.dom AS AccountDomain, {user} AS AccountName, "
                f"'S-1-5-21-1004336348-1177238915-682003330-' || CAST(1000 + {h} % 50 AS VARCHAR) AS AccountSid, "
                f"{user} AS InitiatingProcessAccountName, p.pfname AS InitiatingProcessFileName, "
                f"p.pfolder || '\\' || p.pfname AS InitiatingProcessFolderPath, "
                f"p.pcl AS InitiatingProcessCommandLine, CAST(({h} >> 8) % 60000 AS BIGINT) AS InitiatingProcessId")
    elif kind == "network":
        cols = (f"{common}, p.act AS ActionType, "
                f"'10.' || CAST({h} % 250 AS VARCHAR) || '.' || CAST(({h} >> 8) % 250 AS VARCHAR) || '.7' AS RemoteIP, "
                f"CAST(p.val AS INTEGER) AS RemotePort, {_fill('p.target', h)} AS RemoteUrl, "
                f"'10.0.0.' || CAST(({h} >> 16) % 250 AS VARCHAR) AS LocalIP, "
                f"CAST(49152 + {h} % 16000 AS INTEGER) AS LocalPort, 'Tcp' AS Protocol, {actor}")
    elif kind == "image_load":
        cols = (f"{common}, 'ImageLoaded' AS ActionType, p.tname AS FileName, "
                f"p.target AS FolderPath, lower(hex(sha256(p.tname))) AS SHA256, {actor}")
    elif kind == "registry":
        cols = (f"{common}, p.act AS ActionType, p.target AS RegistryKey, p.val AS RegistryValueName, "
                f"{_fill('p.vdata', h)} AS RegistryValueData, {actor}")
    else:
        raise ValueError(table)
    devices = ("(SELECT CAST(k AS INTEGER) AS dn, "
               "CASE WHEN k < 4 THEN 'exch0' || CAST(k + 1 AS VARCHAR) || '.contoso.local' "
               "ELSE 'ws' || lpad(CAST(k AS VARCHAR), 4, '0') || '.contoso.local' END AS DeviceName, "
               "lower(hex(sha1(CAST(k AS VARCHAR)))) AS DeviceId FROM range(200) r(k))")
    return (f"SELECT {cols}, CAST(i + 1 AS BIGINT) AS ReportId, i FROM range({n}) r(i) "
            f"JOIN {_values(rows, _TEMPLATE_COLS)} p ON p.k = CAST({pick} % {len(rows)} AS INTEGER) "
            f"JOIN {devices} d ON d.dn = {device_expr}")


def scenarios() -> Layout:
    """Every shipped scenario on its own host (sim-01.contoso.local...), all starting at SIM_START:
    the bench's true positives (attacks) and near misses (benign installs and updates)."""
    from exhunt.simulate.layout import lay_out
    from exhunt.simulate.scenario import shipped

    return lay_out(shipped(), SIM_HOST, SIM_START.replace(tzinfo=UTC), SEED)


def generate(out: Path, rows: int) -> dict[str, int]:
    """Write out/<format>/<Table>.<ext> (`rows` noise rows) and out/<format>/scenarios/NN-<id>/ (every
    shipped scenario, rendered by the simulator); skip when already made for `rows`."""
    from exhunt.simulate.formats import writers
    from exhunt.simulate.noise import TEMPLATES

    stamp = out / "stamp.json"
    want = {"rows": rows, "seed": SEED, "version": 4, "days": DAYS}
    if stamp.exists() and want.items() <= json.loads(stamp.read_text()).items():
        return _n_rows(rows)
    for fmt in WRITER:
        shutil.rmtree(out / fmt, ignore_errors=True)
        (out / fmt).mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    for table, n in _n_rows(rows).items():
        if n <= 0:
            continue
        base = _select(table, n)
        cols = [d[0] for d in con.execute(f"SELECT * FROM ({base}) LIMIT 0").description if d[0] != "i"]
        query = f"SELECT {', '.join(cols)} FROM ({base}) ORDER BY i"
        con.execute(f"COPY ({query}) TO '{out / 'parquet' / (table + '.parquet')}' (FORMAT parquet)").fetchall()
        # Portal CSV: every value as text, timestamps with 7 fractional digits and Z, CRLF line ends.
        texts = [
            (f"strftime({c}, '%Y-%m-%dT%H:%M:%S.%f') || '0Z' AS {c}" if c in ("Timestamp", "ProcessCreationTime")
             else c) for c in cols
        ]
        src = out / "parquet" / (table + ".parquet")
        con.execute(f"COPY (SELECT {', '.join(texts)} FROM read_parquet('{src}')) TO "
                    f"'{out / 'csv' / (table + '.csv')}' (HEADER, NEW_LINE '\\r\\n')").fetchall()
    con.close()
    layout = scenarios()
    for fmt, name in WRITER.items():
        layout.write(writers()[name], out / fmt / "scenarios")
    stamp.write_text(json.dumps({**want, "templates": len(TEMPLATES), "scenarios": len(layout.placed)}))
    return _n_rows(rows)


# -- the yardstick: DuckDB scanning the same files ---------------------------

SCAN_FILE = """
SELECT Timestamp, DeviceName, FileName, FolderPath, InitiatingProcessFileName, InitiatingProcessAccountName,
       InitiatingProcessCommandLine
FROM {src}
WHERE ActionType IN ('FileCreated', 'FileModified')
  AND (FolderPath ILIKE '%\\Microsoft\\Exchange Server\\%' OR FolderPath ILIKE '%\\Exchange Server\\%'
       OR FolderPath ILIKE '%\\v15\\Bin\\%' OR FolderPath ILIKE '%\\TransportRoles\\%'
       OR FolderPath ILIKE '%\\FrontEnd\\TransportAgent\\%')
  AND lower(FileName) LIKE '%.dll'
  AND lower(InitiatingProcessFileName) NOT IN ('exsetup.exe', 'updateexchangesetup.exe', 'exchangesetup.exe',
                                               'msiexec.exe', 'setup.exe')
"""
SCAN_PROC = """
SELECT Timestamp, DeviceName, AccountName, FileName, ProcessCommandLine, InitiatingProcessFileName,
       InitiatingProcessCommandLine
FROM {src}
WHERE (lower(InitiatingProcessFileName) IN ('edgetransport.exe', 'msexchangetransport.exe')
       AND lower(FileName) IN ('cmd.exe', 'powershell.exe', 'wscript.exe', 'cscript.exe', 'certutil.exe',
                               'bitsadmin.exe', 'mshta.exe', 'rundll32.exe', 'net.exe'))
   OR (lower(FileName) IN ('powershell.exe', 'pwsh.exe')
       AND regexp_matches(ProcessCommandLine,
           '(?i)(^|[^a-z0-9])(install-transportagent|enable-transportagent|new-transportagentconnector|'
           'set-transportagent)([^a-z0-9]|$)'))
"""


def scan(fmt: str, folder: Path) -> int:
    """The plain scan: the rule's columns and filters over its two tables, a count over the rest."""
    con = duckdb.connect()
    hits = 0
    for path in sorted(folder.rglob("*." + fmt)):  # the noise tables, then each scenario's
        table = path.stem
        src = (f"read_parquet('{path}')" if fmt == "parquet"
               else f"read_csv('{path}', header=true, all_varchar=true)")
        if fmt == "csv":
            src = f"(SELECT * REPLACE (CAST(Timestamp AS TIMESTAMPTZ) AS Timestamp) FROM {src})"
        if table == "DeviceFileEvents":
            hits += len(con.execute(SCAN_FILE.format(src=src)).fetchall())
        elif table == "DeviceProcessEvents":
            hits += len(con.execute(SCAN_PROC.format(src=src)).fetchall())
        else:
            con.execute(f"SELECT count(*) FROM {src}").fetchall()
    con.close()
    return hits


# -- measuring child processes ------------------------------------------------

@dataclass
class Measure:
    wall: float
    rss_mb: float
    tree_mb: float
    rc: int


def measure(cmd: list[str], stdout: Path | None = None) -> Measure:
    """Run a child: wall time, its own peak RSS (wait4's rusage is per child) and the largest
    sum of RSS over it and its descendants, sampled every 50 ms (reader workers are children
    of a forkserver, which rusage does not see)."""
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    err = (stdout.with_suffix(".err") if stdout else Path(os.devnull)).open("wb")
    tree = 0
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if sys.platform == "linux":
                tree = max(tree, tree_memory(proc.pid)[0])
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
        err.close()
    if proc.returncode not in (0, 1) and stdout:
        sys.stderr.write(stdout.with_suffix(".err").read_text(errors="replace"))
    rss = usage.ru_maxrss / 1024
    return Measure(wall, rss, max(tree / 1024, rss), proc.returncode)


def _exhunt() -> list[str]:
    exe = Path(sys.executable).with_name("exhunt")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "exhunt"]


@dataclass
class Outcome:
    """What one detect run found, judged against every scenario's expectations."""

    verdicts: list[Verdict]
    alerts: int
    on_noise: int  # alerts on a noise host: false positives of the shared noise model
    wrong: list[str]  # provenance that names no file of the alert's own scenario

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]


def judge_alerts(alerts_file: Path, fmt: str, out: Path, rules: list[str]) -> Outcome:
    """Each scenario's verdicts (simulate --check's judge) on the alerts of its own host; every alert
    on a noise host fails; an alert's source_file must lie in its own scenario's folder. With
    `rules`, only those rules' expectations are judged (as `detect --rules` runs only them)."""
    from exhunt.rule import load_rules
    from exhunt.simulate.check import by_host, judge
    from exhunt.simulate.formats import writers
    from exhunt.simulate.layout import Layout

    chosen = load_rules(rules or None)
    by_id = {r.id: r for r in chosen}
    layout = scenarios()
    if rules:  # a scenario's expectations of rules not run cannot be judged
        slugs = {r.slug for r in chosen}
        layout = Layout([replace(p, scenario=replace(p.scenario, expect=[e for e in p.scenario.expect
                                                                          if e.rule in slugs], tuning=None))
                         for p in layout.placed])
    pairs = []
    for line in alerts_file.read_text().splitlines():
        a = json.loads(line)
        pairs.append((a, by_id[a["rule_id"]]))
    writer = writers()[WRITER[fmt]]
    mine, stray = by_host(layout, pairs, writer.name)
    verdicts: list[Verdict] = []
    wrong: list[str] = []
    folders = {p.host: f"{i:02d}-{p.scenario.id}" for i, p in enumerate(layout.placed, 1)}
    for p in layout.placed:
        verdicts += judge(p.scenario, writer, p.sim, mine[p.host], chosen)
        for alert, rule in mine[p.host]:
            src = alert.get("source_file") or ""
            if src and Path(src).parent.name != folders[p.host]:
                wrong.append(f"{rule.slug} on {p.host}: {src} {alert.get('source_record')}")
    return Outcome(verdicts + stray, len(pairs), len(stray), wrong)


def bench(rows: int, formats: list[str], repeat: int, out: Path, rules: list[str]) -> bool:
    t0 = time.perf_counter()
    # In a child: Linux carries a parent's peak RSS into its children's ru_maxrss, so the
    # parent must stay small for the children's figures to be their own.
    subprocess.run([sys.executable, __file__, "--generate-only", "--rows", str(rows), "--out", str(out)], check=True)
    counts = _n_rows(rows)
    total = sum(counts.values())
    made = json.loads((out / "stamp.json").read_text())
    print(f"data: {total:,} noise rows over {DAYS} days ({', '.join(f'{t} {n:,}' for t, n in counts.items())}) "
          f"from {made['templates']} noise templates, and {made['scenarios']} shipped scenarios on hosts of "
          f"their own; "
          f"generated or reused in {time.perf_counter() - t0:.1f} s")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, duckdb {duckdb.__version__}")
    print(f"detect: exhunt detect FOLDER {' '.join('--rules ' + r for r in rules) or '(every shipped rule)'}")
    measured: list[tuple[str, float, Measure, Measure]] = []
    for fmt in formats:
        folder = out / fmt
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        scans: list[Measure] = []
        runs: list[Measure] = []
        for _ in range(repeat):
            scans.append(measure([sys.executable, __file__, "--scan", fmt, str(folder)]))
            chosen = [arg for r in rules for arg in ("--rules", r)]
            runs.append(measure([*_exhunt(), "detect", str(folder), *chosen, "-f", "jsonl", "--flat", "-q"],
                                stdout=out / f"alerts-{fmt}.jsonl"))
        measured.append((fmt, size, sorted(scans, key=lambda m: m.wall)[len(scans) // 2],
                         sorted(runs, key=lambda m: m.wall)[len(runs) // 2]))
    # judged after every measurement: the judge loads exhunt, which would swell the children's peak RSS
    header = f"{'format':8} {'size MB':>8} {'scan s':>7} {'scan MB':>8} {'detect s':>9} {'rows/s':>10} " \
             f"{'peak MB':>8} {'tree MB':>8} {'ratio':>6} alerts"
    print(header)
    ok = True
    for fmt, size, s, r in measured:
        res = judge_alerts(out / f"alerts-{fmt}.jsonl", fmt, out, rules)
        judged = [v for v in res.verdicts if v.applies]
        found = ("exact" if not res.failed else f"{len(res.failed)} FAILED") + \
                f" ({len(judged) - len(res.failed)}/{len(judged)} expectations pass, {res.on_noise} on noise hosts)"
        found += ", provenance exact" if not res.wrong else f", {len(res.wrong)} provenance WRONG"
        ok &= not res.failed and not res.wrong and r.rc in (0, 1)
        print(f"{fmt:8} {size:8.0f} {s.wall:7.2f} {s.rss_mb:8.0f} {r.wall:9.2f} {total / r.wall:10,.0f} "
              f"{r.rss_mb:8.0f} {r.tree_mb:8.0f} {r.wall / s.wall:6.2f} {found}; {res.alerts} alert(s) in all")
        for v in res.failed[:10]:
            print(f"  {v.scenario}: {v.text}")
        for w in res.wrong[:10]:
            print(f"  {w}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows to generate over all tables (default 1M)")
    ap.add_argument("--rules", action="append", default=[],
                    help="rule for detect (repeatable; default: every shipped rule, as `exhunt detect` runs)")
    ap.add_argument("--formats", default="csv,parquet", help="comma-separated: csv, parquet")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is printed")
    ap.add_argument("--out", type=Path, default=OUT, help="where data and alerts go (default bench/out)")
    ap.add_argument("--generate-only", action="store_true", help="write the data and stop")
    ap.add_argument("--scan", nargs=2, metavar=("FORMAT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scan:
        hits = scan(args.scan[0], Path(args.scan[1]))
        print(hits)
        return 0
    if args.generate_only:
        generate(args.out, args.rows)
        return 0
    ok = bench(args.rows, [f.strip() for f in args.formats.split(",") if f.strip()], args.repeat, args.out,
               args.rules)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
