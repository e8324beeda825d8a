"""Write the demo data set (demo/): the story in scripts/demo/exch01.yaml, rendered by the simulator.

    python scripts/make_demo.py [OUT_DIR]   # default: the repository's demo/ folder

The story (one Exchange server, exch01.contoso.local, backdoored LightNeuron-style between five
days of ordinary Exchange work) is scenario data: read its description there. This program only
decides which collector's file holds what, the way a real incident's evidence arrives in pieces:

  DeviceFileEvents-export.csv            Defender portal CSV export (mde-csv), DeviceFileEvents only
  DeviceProcessEvents-streaming.jsonl    Streaming API records (mde-stream-storage), DeviceProcessEvents only
  DeviceImageLoadEvents-api.json         Advanced Hunting API {Schema, Results} (mde-api)
  DeviceFileCertificateInfo-api.json     Advanced Hunting API {Schema, Results} (mde-api)
  exch01-powershell-cmdletlog.evtx.jsonl evtx_dump JSON lines: PowerShell 4104, MSExchange Management 1
  exch01-sysmon.zip                      a zip holding evtx_dump JSON lines of Sysmon 11
  exch01-winlogbeat.ndjson               Winlogbeat ECS: Application 7001/1050, System 7036

Deterministic: the same scenario and seed give the same bytes, so demo/ is this program's output.
"""

from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from exhunt.simulate.events import Simulation, generate
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import load_file

STORY = Path(__file__).resolve().parent / "demo" / "exch01.yaml"
HOST = "exch01.contoso.local"
START = datetime(2026, 11, 20, tzinfo=UTC)
SEED = 20261120
SYSMON = "Microsoft-Windows-Sysmon/Operational"


class Output(NamedTuple):
    """One demo file: the simulator format that writes it and the part of the run it holds."""

    name: str
    format: str
    tables: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    event_ids: tuple[int, ...] | None = None
    #: the file goes into a zip of this name (the zip holds it under `name`)
    zipped: str = ""


OUTPUTS = (
    Output("DeviceFileEvents-export.csv", "mde-csv", tables=("DeviceFileEvents",)),
    Output("DeviceProcessEvents-streaming.jsonl", "mde-stream-storage", tables=("DeviceProcessEvents",)),
    Output("DeviceImageLoadEvents-api.json", "mde-api", tables=("DeviceImageLoadEvents",)),
    Output("DeviceFileCertificateInfo-api.json", "mde-api", tables=("DeviceFileCertificateInfo",)),
    Output("exch01-powershell-cmdletlog.evtx.jsonl", "evtx-json",
           channels=("Microsoft-Windows-PowerShell/Operational", "MSExchange Management")),
    Output("exch01-sysmon.evtx.jsonl", "evtx-json", channels=(SYSMON,), event_ids=(11,), zipped="exch01-sysmon.zip"),
    Output("exch01-winlogbeat.ndjson", "winlogbeat-ecs", channels=("Application", "System")),
)


def render(sim: Simulation, output: Output) -> bytes:
    """The bytes of one output: its writer run on its part of the simulation (one file)."""
    part = sim.only(output.tables, output.channels, output.event_ids)
    with tempfile.TemporaryDirectory(prefix="exhunt-demo-") as tmp:
        written = writers()[output.format].write(part, Path(tmp))
        if len(written) != 1:
            raise SystemExit(f"{output.name}: {output.format} wrote {len(written)} files, not one")
        return written[0].read_bytes()


def zipped(name: str, data: bytes) -> bytes:
    info = zipfile.ZipInfo(name, date_time=(2026, 11, 25, 8, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, data)
    return buf.getvalue()


def write_all(out: Path) -> list[Path]:
    sim = generate([load_file(STORY)], host=HOST, start=START, seed=SEED)
    out.mkdir(parents=True, exist_ok=True)
    for output in OUTPUTS:
        data = render(sim, output)
        if output.zipped:
            (out / output.zipped).write_bytes(zipped(output.name, data))
        else:
            (out / output.name).write_bytes(data)
    return sorted(out.iterdir())


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "demo"
    for path in write_all(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
