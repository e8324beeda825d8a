"""Defender Advanced Hunting results saved as CSV (portal export, or any tool's CSV).

The header names the columns; the table comes from --table, the file name
(`DeviceFileEvents*.csv`) or the header. Parsing is Arrow's streaming CSV reader,
so a large export never sits whole in memory. A malformed line (wrong number of
fields) is skipped and named by its line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from exhunt.schema import SOURCE_RECORD
from exhunt.sources.base import Batch, FileReport, SourceFile, resolve_table


def _header(head: bytes) -> list[str]:
    text = head.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    try:
        return next(csv.reader([first]))
    except (StopIteration, csv.Error):
        return []


class MdeCsv:
    name = "mde-csv"
    description = "Advanced Hunting results as CSV (header of column names)"

    def sniff(self, src: SourceFile, head: bytes) -> int:
        stripped = head.lstrip(b"\xef\xbb\xbf \r\n\t")
        if not stripped or stripped[:1] in (b"{", b"["):
            return 0
        cols = [c.strip().lower() for c in _header(head)]
        if len(cols) >= 2 and ("timestamp" in cols or "timegenerated" in cols):
            return 80
        return 10 if src.name.lower().endswith(".csv") else 0

    def read(self, src: SourceFile, report: FileReport, table: str | None) -> Iterator[Batch]:
        header = [c.strip() for c in _header(src.head())]
        schema = resolve_table(table, None, src.name, header)
        if schema is None:
            report.error = (
                "not Defender telemetry: no table named by --table or the file name, and the "
                f"header ({', '.join(header[:6])}{'...' if len(header) > 6 else ''}) matches no table"
            )
            return
        bad_lines: list[int] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            line = row.number if row.number is not None else -1
            bad_lines.append(line)
            report.read += 1
            report.skip(f"line {line}", "malformed CSV line",
                        f"expected {row.expected_columns} fields, found {row.actual_columns}")
            return "skip"

        with src.open() as fh:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(block_size=8 << 20, encoding="utf8"),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            next_line = 2  # line 1 is the header
            for rb in reader:
                lines: list[str] = []
                skipped = sorted(n for n in bad_lines if n >= next_line)
                bad_lines.clear()
                while len(lines) < rb.num_rows:
                    if skipped and skipped[0] == next_line:
                        skipped.pop(0)
                    else:
                        lines.append(f"line {next_line}")
                    next_line += 1
                report.read += rb.num_rows
                yield Batch(schema.name, rb.append_column(SOURCE_RECORD, pa.array(lines, pa.string())))


READER = MdeCsv()
