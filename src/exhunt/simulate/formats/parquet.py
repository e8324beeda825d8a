"""Defender rows as Parquet (a data-lake copy or a converted export): one `<Table>.parquet` per table,
typed as the table's schema says (datetime as UTC timestamps, long as int64, bool as boolean)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.schema import table as table_schema
from exhunt.simulate.events import Simulation
from exhunt.simulate.formats import Writer
from exhunt.simulate.formats._defender import columns, rows

_ARROW: dict[str, pa.DataType] = {
    "datetime": pa.timestamp("us", tz="UTC"),
    "long": pa.int64(),
    "int": pa.int32(),
    "bool": pa.bool_(),
    "real": pa.float64(),
    "double": pa.float64(),
}


def _value(kql_type: str, v: Any) -> Any:
    if v is None or (v == "" and kql_type in _ARROW):
        return None
    if kql_type == "datetime":
        # Defender's 7th fractional digit is always 0 here: microseconds hold the value exactly
        return datetime.fromisoformat(v.replace("Z", "+00:00")[:26] + "+00:00")
    return v


def write(sim: Simulation, out: Path) -> list[Path]:
    paths = []
    for table, table_rows in rows(sim).items():
        types = {c.name: c.kql_type for c in table_schema(table).columns}
        fields, arrays = [], []
        for c in columns(table_rows):
            kql = types.get(c, "string")
            typ = _ARROW.get(kql, pa.string())
            fields.append(pa.field(c, typ))
            arrays.append(pa.array([_value(kql, r.get(c)) for r in table_rows], typ))
        path = out / f"{table}.parquet"
        pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
        paths.append(path)
    return paths


WRITER = Writer("parquet", "defender", "Defender rows as Parquet, one <Table>.parquet per table (typed)", write)
