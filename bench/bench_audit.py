"""Benchmark `exhunt audit` on a normal Exchange server's collection (KAPE layout).

Lays out one Mailbox server: Exchange 2019 on C: with its Hub list (the built-in agents, three
vendors' agents, one planted look-alike), the Front End list, the template and an .old copy,
message-tracking logs, a Pickup folder, and `--bin-files` PE files in Bin (a triage collection
has few; a mounted image thousands). The agent DLLs are real .NET assemblies built and signed
by tests/agent_build.py when mono-mcs and osslsigncode are installed, else unsigned stubs.

Then times `exhunt.audit.run.audit` (the library call: collection, lists, every DLL's facts,
look-around) over several rounds, and `exhunt audit` as a user runs it (a child process,
Python's start-up included).

    python bench/bench_audit.py                 # a triage collection: target well under a second
    python bench/bench_audit.py --bin-files 2000  # a mounted image's Bin folder
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

V15 = r"C:\Program Files\Microsoft\Exchange Server\V15"


def _local(drive: Path, winpath: str) -> Path:
    return drive.joinpath(*winpath[3:].split("\\"))


def layout(folder: Path, bin_files: int, real: bool = True) -> tuple[Path, object | None]:
    """The collection (and the built DLLs, None when the tools are missing or `real` is off)."""
    from audit_layout import HUB_DEFAULT, agents_config, builtin_agent

    built = None
    try:
        import agent_build

        if real and not agent_build.missing_tools():
            built = agent_build.build(folder / "dlls")
    except ImportError:
        pass
    stub = b"MZ" + b"\0" * 4094
    signed = built.signed_standin_ms.read_bytes() if built else stub  # type: ignore[attr-defined]
    vendor = built.signed_valid.read_bytes() if built else stub  # type: ignore[attr-defined]
    routing = built.routing.read_bytes() if built else stub  # type: ignore[attr-defined]
    top = folder / "EXCH01"
    c = top / "C"
    agents = [builtin_agent(n) for n in [*HUB_DEFAULT, "Journaling Agent", "Interceptor Routing Agent",
                                         "Interceptor Smtp Receive Agent"]]
    factory = "Contoso.Mail.Archive.ArchiveRoutingAgentFactory"
    agents += [
        {"name": "Contoso Archive", "factory": factory, "path": r"C:\Program Files\Contoso\Archive\a.dll"},
        {"name": "Fabrikam Disclaimer", "factory": factory, "path": r"D:\Fabrikam\Disclaimer\d.dll"},
        {"name": "Woodgrove DLP", "factory": factory, "path": V15 + r"\TransportRoles\agents\Woodgrove\w.dll"},
        {"name": "Content Filter Agent", "factory": "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory",
         "path": V15 + r"\Bin\Microsoft.Exchange.Security.Interop.dll"},
    ]
    for a in agents:
        path = _local(c, a["path"]) if a["path"].startswith("C:") else _local(top / "D", a["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        data = signed if a["name"] in HUB_DEFAULT or "Interceptor" in a["name"] or "Journal" in a["name"] else \
            vendor if a["name"] != "Content Filter Agent" else routing
        path.write_bytes(data)
    shared = _local(c, V15 + r"\TransportRoles\Shared")
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "agents.config").write_text(agents_config(agents))
    (shared / "agents.config.old").write_text(agents_config(agents[:5]))
    (shared / "fetagents.config").write_text(agents_config([]))
    tdir = _local(c, V15 + r"\TransportRoles\Agents")
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "agents.config.template").write_text(agents_config(agents[:2]))
    bin_dir = _local(c, V15 + r"\Bin")
    (bin_dir / "ExSetup.exe").write_bytes(signed)
    for i in range(bin_files):
        (bin_dir / f"Microsoft.Exchange.Component{i:05}.dll").write_bytes(signed if i % 50 else stub)
    logs = _local(c, V15 + r"\TransportRoles\Logs\MessageTracking")
    logs.mkdir(parents=True, exist_ok=True)
    for day in range(30):
        (logs / f"MSGTRK202611{day + 1:02}01-1.LOG").write_text(
            "#Software: Microsoft Exchange Server\n#Fields: date-time,server-hostname,event-id\n"
            + "2026-11-01T00:00:00.000Z,EXCH01.contoso.local,RECEIVE\n" * 2000)
    _local(c, V15 + r"\TransportRoles\Pickup").mkdir(parents=True, exist_ok=True)
    return top, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-files", type=int, default=40, help="PE files in Exchange's Bin folder (default 40)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from exhunt.audit import authenticode
    from exhunt.audit.run import AuditOptions, audit

    folder = Path(tempfile.mkdtemp(prefix="exhunt-bench-audit-"))
    try:
        top, built = layout(folder, args.bin_files)
        if built is not None:  # the stand-in root counts as Microsoft's, as a real server's would
            authenticode.TRUST = authenticode.Trust(
                extra_roots=(built.test_ca_pem, built.standin_ms_root_pem),  # type: ignore[attr-defined]
                microsoft_roots=authenticode.MICROSOFT_ROOTS | {built.standin_ms_root_sha1})  # type: ignore
        else:
            print("note: mono-mcs/osslsigncode missing: unsigned stub DLLs (no signature verification measured)")
        times = []
        result = None
        for _ in range(args.rounds):
            started = time.perf_counter()
            result = audit(top, AuditOptions())
            times.append(time.perf_counter() - started)
        assert result is not None
        print(f"collection: {top} ({args.bin_files} PE files in Bin)")
        print(f"audit(): {len(result.findings)} findings, {result.agents} agents, {result.judged} DLLs judged, "
              f"{result.around.files} files walked, {result.around.signatures} signatures verified")
        print(f"audit(): median {statistics.median(times):.3f}s, min {min(times):.3f}s, max {max(times):.3f}s "
              f"over {args.rounds} rounds")
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "exhunt", "audit", str(top), "-q", "-f", "jsonl"], env=env,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        print(f"exhunt audit (child process, start-up included, no test trust): {wall:.3f}s, exit {proc.returncode}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
