"""Defender tables as Microsoft Sentinel holds them (the Defender XDR connector), written by a Log
Analytics data export rule: flat rows as JSON lines with `TenantId`, `TimeGenerated`, `Type` and
`SourceSystem` beside the table's columns, one `am-<Table>-PT1H.json` blob per table."""

from __future__ import annotations

import json
from pathlib import Path

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import rows, tenant_id


def write(sim: Simulation, out: Path) -> list[Path]:
    tenant = tenant_id(sim)
    paths = []
    for table, table_rows in rows(sim).items():
        lines = [
            json.dumps(
                {"TenantId": tenant, "TimeGenerated": r["Timestamp"], **r, "SourceSystem": "", "Type": table}
            )
            + "\n"
            for r in table_rows
        ]
        path = out / f"am-{table}-PT1H.json"
        path.write_text("".join(lines), encoding="utf-8", newline="")
        paths.append(path)
    return paths


WRITER = Writer(
    "sentinel-export",
    "defender",
    "Defender tables from Sentinel / Log Analytics data export: flat JSON lines with TimeGenerated and Type",
    write,
)
