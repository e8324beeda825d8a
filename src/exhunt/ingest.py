"""`exhunt ingest`: parse a collection once, hunt it many times.

The normalized tables are written as Parquet, one folder per table
(`OUT/<Table>/part-*.parquet`), with the provenance columns (`_source_file`,
`_record`) kept so alerts raised later still name the original file and record.
`exhunt detect OUT` / `exhunt query ... OUT` read the folder back (the Parquet
reader takes the table from the folder name).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from exhunt.engine import Session
from exhunt.errors import UsageError

#: Rows per Parquet file part; DuckDB starts a new part beyond this size.
PART_BYTES = "256MB"


def write_tables(session: Session, out: Path, append: bool = False) -> dict[str, int]:
    """Write every non-empty table; returns rows written per table."""
    counts = {name: session.row_count(name) for name in session.tables}
    counts = {k: v for k, v in counts.items() if v}
    if not append:
        taken = sorted(t for t in counts if any((out / t).glob("*.parquet")))
        if taken:
            raise UsageError(f"--out {out} already holds ingested tables ({', '.join(taken)}); "
                             "choose an empty folder or pass --append")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {out}: {exc.strerror}") from None
    run = uuid.uuid4().hex[:12]
    for name in counts:
        folder = out / name
        folder.mkdir(exist_ok=True)
        session.write_parquet(name, folder, f"part-{run}", PART_BYTES)
    return counts
