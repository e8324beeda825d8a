"""Defender portal CSV export: one `<Table>.csv` per table (Advanced Hunting's "Export")."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import columns, rows


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write(sim: Simulation, out: Path) -> list[Path]:
    paths = []
    for table, table_rows in rows(sim).items():
        cols = columns(table_rows)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in table_rows:
            w.writerow([_value(r.get(c)) for c in cols])
        path = out / f"{table}.csv"
        path.write_text(buf.getvalue(), encoding="utf-8", newline="")
        paths.append(path)
    return paths


WRITER = Writer("mde-csv", "defender", "Defender portal CSV export, one file per table", write)
