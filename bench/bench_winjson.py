"""Benchmark the JSON forms of Windows events (Winlogbeat ECS, OTRF) end to end.

Writes N generated events as JSON lines (tests/winlog_gen.py's renderings, padded the way
Winlogbeat pads its documents: `message`, `agent`, `ecs`, ...) and times, each in its own
child process:

- raw-orjson: `orjson.loads` of every line, nothing else (the single-core parse ceiling);
- exhunt:     `exhunt detect FILE -f jsonl -o OUT -q`, as a user runs it (every shipped rule,
              default replay).

    python bench/bench_winjson.py                         # 100,000 ECS records
    python bench/bench_winjson.py --records 20000 --forms ecs otrf --runs 1

Peak RSS and CPU time are sampled from /proc every 50 ms over the whole process tree (CPU time
says what a run costs on a shared machine, where wall time depends on what else runs; the last
50 ms of a process are not seen).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from proctree import detect_child, run_sampled, tree_cpu, tree_memory  # noqa: E402

import winlog_gen as g  # noqa: E402

FORMS = ("ecs", "otrf")
MODES = ("raw-orjson", "exhunt")


#: What the generator's attack events become in the benign ones.
BENIGN = {
    "Image": r"C:\Windows\System32\svchost.exe", "ParentImage": r"C:\Windows\System32\services.exe",
    "CommandLine": r"C:\Windows\System32\svchost.exe -k netsvcs -p -s Schedule",
    "ParentCommandLine": r"C:\Windows\System32\services.exe", "OriginalFileName": "svchost.exe",
    "TargetFilename": r"C:\Users\alice\AppData\Local\Temp\f{i}.tmp",
    "ImageLoaded": r"C:\Windows\System32\kernel32.dll",
    "TargetObject": r"HKLM\SOFTWARE\Vendor\App\k{i}",
    "NewProcessName": r"C:\Windows\System32\conhost.exe", "ParentProcessName": r"C:\Windows\explorer.exe",
    "Payload": "CommandInvocation(Get-Date): \"Get-Date\"\r\n",
    "ContextInfo": "        Command Name = Get-Date\r\n",
}


def _event(i: int, rng: random.Random) -> g.Ev:
    """One of the generator's events with its own record number, time, host and process."""
    base = rng.choice([g.SYSMON1, g.SYSMON7, g.SYSMON11, g.SYSMON13, g.SEC4688, g.SEC4688, g.PS4103])
    data = dict(base.data) if isinstance(base.data, dict) else {}
    pid = rng.randrange(4, 60000)
    for key in ("ProcessId", "NewProcessId"):
        if key in data:
            data[key] = pid if isinstance(data[key], int) else hex(pid)
    if i % 5000:  # benign but for one event in 5,000, so alerts stay few as in a real log
        for key, value in BENIGN.items():
            if key in data:
                data[key] = value.format(i=i)
    if "CommandLine" in data:
        data["CommandLine"] = f"{data['CommandLine']} /id:{i}"
    stamp = f"2026-03-{1 + i % 28:02d}T{(i // 28) % 24:02d}:{(i // 672) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
    return g.Ev(base.source, base.event_id, 100_000 + i, stamp, data, computer=f"HOST{i % 50:02d}.contoso.local",
                level=base.level, task=base.task)


def _ecs(ev: g.Ev) -> dict[str, Any]:
    doc = g.ecs(ev)
    doc["message"] = "\n".join(f"{k}: {v}" for k, v in (ev.data.items() if isinstance(ev.data, dict) else []))
    doc["agent"] = {"name": ev.computer, "type": "winlogbeat", "version": "8.12.0",
                    "id": "5f0c2a8e-0000-4000-8000-2b6e0d4f1a01",
                    "ephemeral_id": "0c4c9d1e-1111-4222-8333-444455556666"}
    doc["ecs"] = {"version": "8.0.0"}
    doc["winlog"].update({"opcode": "Info", "keywords": ["Audit Success"], "api": "wineventlog",
                          "process": {"pid": 700, "thread": {"id": 1234}}})
    doc["event"].update({"created": ev.time, "module": "security", "outcome": "success"})
    return doc


def write(path: Path, form: str, n: int) -> None:
    rng = random.Random(8)
    render = _ecs if form == "ecs" else g.otrf
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(render(_event(i, rng))) + "\n")


def child(mode: str, path: Path) -> int:
    if mode == "raw-orjson":
        import orjson

        n = 0
        with path.open("rb") as fh:
            for line in fh:
                orjson.loads(line)
                n += 1
        return n
    return detect_child(path)


def run_child(mode: str, path: Path) -> dict[str, Any]:
    tree_kb = 0
    cpu: dict[int, float] = {}

    def sample(pid: int) -> None:
        nonlocal tree_kb
        if sys.platform == "linux":
            tree_kb = max(tree_kb, tree_memory(pid)[0])
            cpu.update(tree_cpu(pid))

    out, extra, wall = run_sampled(__file__, mode, path, sample)
    return {"records": out["records"], "wall": wall, "tree_mb": tree_kb / 1024, "cpu": sum(cpu.values()),
            "extra": extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--forms", nargs="+", choices=FORMS, default=["ecs"])
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs per row")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n = child(args.child[0], Path(args.child[1]))
        print(json.dumps({"records": n, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        return
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}")
    print("| form | MB | path | records | wall s (median) | records/s | CPU s, all processes | peak RSS MB, all "
          "processes | |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for form in args.forms:
        with tempfile.TemporaryDirectory(prefix="exhunt-bench-") as tmp:
            path = Path(tmp) / f"events-{form}.json"
            write(path, form, args.records)
            size = path.stat().st_size
            for mode in MODES:
                runs = sorted((run_child(mode, path) for _ in range(args.runs)), key=lambda r: r["wall"])
                r = runs[len(runs) // 2]
                records = args.records
                print(f"| {form} | {size / 1e6:.0f} | {mode} | {records:,} | {r['wall']:.2f} | "
                      f"{records / r['wall']:,.0f} | {r['cpu']:.2f} | {r['tree_mb']:.0f} | {r['extra']} |", flush=True)


if __name__ == "__main__":
    main()
