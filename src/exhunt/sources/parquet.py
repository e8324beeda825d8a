"""Parquet files: exports, data-lake copies, and `exhunt ingest` output.

The table comes from --table, the file name, the parent folder's name
(`ingest` writes `OUT/DeviceFileEvents/part-*.parquet`), then the columns.
A file on disk is scanned by DuckDB directly; other Parquet (inside archives) is read
in row-group batches so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath

import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.schema import SOURCE_RECORD, TableSchema, find_table
from exhunt.sources.base import BATCH_ROWS, Batch, FileReport, Relation, SourceFile, describe, printable, resolve_table
from exhunt.sqltext import literal


class ParquetFiles:
    name = "parquet"
    description = "Apache Parquet (any writer; exhunt ingest output)"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        return 100 if head[:4] == b"PAR1" else 0

    def relation(self, src: SourceFile, report: FileReport, table: str | None) -> Relation | None:
        """The table and the DuckDB query reading the file, for a file on disk, so DuckDB scans it itself
        (in parallel, no Arrow round trip); None sends the engine to `read` (archive members,
        damaged files)."""
        path = src.path
        if path is None or not path.is_file():
            return None
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError):
            return None
        cols = pf.schema_arrow.names
        schema = self._table(src, table, cols)
        if schema is None or any(printable(c) != c for c in cols):
            return None  # a name DuckDB would mangle (a NUL): the reader's batches rename it
        rows = pf.metadata.num_rows
        report.read += rows

        def recover(rep: FileReport) -> Iterator[Batch]:
            rep.read -= rows  # counted again, row group by row group
            return self.read(src, rep, table)

        lit = literal(str(path))
        if SOURCE_RECORD in cols:
            return Relation(schema.name, f"SELECT * FROM read_parquet({lit})", recover=recover)
        return Relation(schema.name, (
            f"SELECT * EXCLUDE (file_row_number), 'row ' || CAST(file_row_number + 1 AS VARCHAR) "
            f"AS \"{SOURCE_RECORD}\" FROM read_parquet({lit}, file_row_number = true)"
        ), recover=recover)

    @staticmethod
    def _table(src: SourceFile, table: str | None, cols: list[str]) -> TableSchema | None:
        parent = PurePath(src.display).parent.name
        schema = (find_table(table) if table else None) or resolve_table(None, None, src.name, cols)
        if schema is None or (table is None and find_table(parent) is not None):
            schema = find_table(parent) or schema
        return schema

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        with src.open() as fh:
            try:
                pf = pq.ParquetFile(fh)
            except (pa.ArrowInvalid, OSError) as exc:
                report.error = f"damaged Parquet file: {exc}"
                return
            cols = pf.schema_arrow.names
            schema = self._table(src, table, cols)
            if schema is None:
                report.error = "not telemetry: the file's name and columns match no table"
                return
            has_record = SOURCE_RECORD in cols
            row = 0
            for group in range(pf.num_row_groups):
                rows = pf.metadata.row_group(group).num_rows
                done = 0
                try:
                    for rb in pf.iter_batches(batch_size=BATCH_ROWS * 5, row_groups=[group]):
                        report.read += rb.num_rows
                        if not has_record:
                            where = pa.array([f"row {row + done + i + 1}" for i in range(rb.num_rows)], pa.string())
                            rb = rb.append_column(SOURCE_RECORD, where)
                        done += rb.num_rows
                        yield Batch(schema.name, rb)
                except (pa.ArrowException, OSError, ValueError) as exc:
                    # A damaged row group: its unread rows are counted, the next group is read.
                    lost = max(rows - done, 1)
                    report.read += lost
                    report.skip(f"row {row + done + 1}", "damaged Parquet row group",
                                f"row group {group + 1}: {describe(exc)}", count=lost)
                row += max(rows, done)


READER = ParquetFiles()
