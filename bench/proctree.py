"""Memory of a whole process tree, sampled from /proc: the benches' measure of "all exhunt processes".

Reader workers are children of a forkserver, which getrusage does not see, so the benches
sample every 50 ms and keep the largest sum.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def tree_memory(root: int) -> tuple[int, dict[int, int]]:
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


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by `root` and each of its descendants, by pid, from
    /proc: on a shared machine, what a run costs whatever else is running (wall time is not)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, f in stats.items() if int(f[1]) in tree} - tree
        tree |= more
        grew = bool(more)
    # Fields after the name: state, ppid, ... utime is the 14th field of stat, stime the 15th.
    return {pid: (int(stats[pid][11]) + int(stats[pid][12])) / ticks for pid in tree if pid in stats}


def run_sampled(script: str, mode: str, path: Path, sample: Callable[[int], None]) -> tuple[dict[str, Any], str, float]:
    """Run `script --child MODE PATH`, calling `sample(pid)` every 50 ms while it runs (worker
    processes are invisible to getrusage). Returns its last stdout line as JSON, its last
    stderr line and the wall time; a failed child ends the bench."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--child", mode, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        sample(proc.pid)
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{stderr}")
    extra = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return json.loads(stdout.strip().splitlines()[-1]), extra, wall


def detect_child(path: Path) -> int:
    """`exhunt detect PATH -f jsonl -o FILE -q`, as a user runs it, in a bench's child process;
    the alert count goes to stderr. Returns -1: the parent counts the records once, outside any
    timed run."""
    from exhunt import cli

    with tempfile.TemporaryDirectory(prefix="exhunt-bench-out-") as tmp:
        out = Path(tmp) / "alerts.jsonl"
        sys.argv = ["exhunt", "detect", str(path), "-f", "jsonl", "--flat", "-o", str(out), "-q"]
        try:
            cli.main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        alerts = sum(1 for _ in out.open(encoding="utf-8"))
    print(json.dumps({"alerts": alerts}), file=sys.stderr)
    return -1
