"""`exhunt ingest INPUTS --cluster URL --database DB`: the normalized tables onto a Kusto cluster.

Each table is made (or widened) with `.create-merge table` and the schema's column types, then
filled with bounded `.set-or-append T <| datatable(...)[...]` commands: at most BATCH_ROWS rows
and BATCH_CHARS characters of command text each, so no command nears the service's limits and
a failure names the rows it lost. This is the inline ingestion Azure Data Explorer documents for
small loads and the one the local `duckdb-kql serve --allow-write` endpoint speaks (which has no
`.create-merge`: there the first, empty `.set-or-append` creates the table with the same types).

Every value reaches the command as a KQL literal (exhunt.backends.kqltext): a string from an
attacker's file is one quoted literal, whatever quotes, backslashes, newlines, pipes or control
characters it holds. Two characters no KQL literal can hold (U+2028 and U+2029, line breaks to
Kusto's lexer) make that column of that batch travel as base64 text, decoded on the cluster by
`| extend C = base64_decode_tostring(C)` (the local endpoint, whose lexer keeps them in a literal
but whose base64_decode_tostring does not decode UTF-8, gets them as they are); a `dynamic`
column travels as JSON text, turned back with `todynamic`. The provenance columns
(`_source_file`, `_record`) go too, so alerts raised on the cluster still name the file and
record they came from.

For large loads on a real cluster, queue the Parquet that `exhunt ingest --out DIR` writes
instead (`queue_parquet`, azure-kusto-ingest): the cluster pulls the files in the background.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from exhunt.backends import kqltext
from exhunt.backends.kusto import KustoBackend
from exhunt.errors import RuleError, UsageError

#: Rows per `.set-or-append`, and characters of command text (Kusto refuses very long commands
#: and a failed command loses all its rows: keep each well below a megabyte).
BATCH_ROWS = 2000
BATCH_CHARS = 1 << 20

#: Arrow type -> KQL type, for columns the schema does not type (an input's extra columns).
_FROM_ARROW = (
    (pa.types.is_boolean, "bool"), (pa.types.is_int32, "int"), (pa.types.is_integer, "long"),
    (pa.types.is_floating, "real"), (pa.types.is_timestamp, "datetime"), (pa.types.is_duration, "timespan"),
)


def kql_type(arrow: pa.DataType) -> str:
    for test, kind in _FROM_ARROW:
        if test(arrow):
            return kind
    return "string"


@dataclass
class Upload:
    """One table to put on the cluster: its columns (name, KQL type) and its rows."""

    table: str
    columns: list[tuple[str, str]]
    batches: Iterable[pa.RecordBatch]


@dataclass
class Report:
    """Rows sent and rows the cluster says it stored, per table."""

    sent: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)


def _declare(columns: list[tuple[str, str]]) -> str:
    """`name:type, ...` with dynamic columns declared as strings (their JSON text)."""
    return ", ".join(f"{kqltext.ident(name)}:{'string' if kind == 'dynamic' else kind}" for name, kind in columns)


def create(backend: KustoBackend, table: str, columns: list[tuple[str, str]]) -> None:
    """Make `table` with `columns`, or add the ones it lacks (`.create-merge table`). On an
    endpoint without that command (the local one), an empty `.set-or-append` makes it."""
    if backend.create_merge:
        schema = ", ".join(f"{kqltext.ident(name)}:{kind}" for name, kind in columns)
        try:
            backend.management(f".create-merge table {kqltext.ident(table)} ({schema})")
            return
        except RuleError as exc:
            if "unsupported" not in str(exc).lower():
                raise
            backend.create_merge = False
    if table not in backend.schema():
        backend.management(_append(table, columns, []))


def _cell(value: Any, kind: str, encoded: bool, separators: bool = False) -> str:
    if encoded:
        text = "" if value is None else str(value)
        return kqltext.string(base64.b64encode(text.encode("utf-8")).decode("ascii"))
    return kqltext.value_literal(value, kind, separators)


def _append(table: str, columns: list[tuple[str, str]], rows: list[list[str]],
            encoded: frozenset[str] = frozenset()) -> str:
    """The `.set-or-append` command for rows whose cells are already KQL literals."""
    cells = ", ".join(cell for row in rows for cell in row)
    command = f".set-or-append {kqltext.ident(table)} <| datatable({_declare(columns)})[{cells}]"
    for name, kind in columns:
        value = kqltext.ident(name)
        if name in encoded:
            value = f"base64_decode_tostring({value})"
        if kind == "dynamic":
            value = f"todynamic({value})"
        if value != kqltext.ident(name):
            command += f" | extend {kqltext.ident(name)} = {value}"
    return command


def _rows(batch: pa.RecordBatch, columns: list[tuple[str, str]],
          separators: bool = False) -> Iterator[tuple[list[Any], set[str]]]:
    """Each row's values in column order, and which string columns of it no literal can hold."""
    names = [name for name, _ in columns]
    present = set(batch.schema.names)
    data = [batch.column(name).to_pylist() if name in present else [None] * batch.num_rows for name in names]
    for i in range(batch.num_rows):
        values = [column[i] for column in data]
        bad: set[str] = set()
        if not separators:
            bad = {name for name, value in zip(names, values, strict=True)
                   if isinstance(value, str) and any(ch in value for ch in kqltext.LINE_SEPARATORS)}
        yield values, bad


def commands(upload: Upload, separators: bool = False) -> Iterator[tuple[str, int]]:
    """(`.set-or-append` command, rows in it) for the upload's rows, in bounded batches
    (`separators`: the endpoint takes U+2028 and U+2029 inside a literal)."""
    pending: list[list[Any]] = []
    encoded: set[str] = set()
    size = 0

    def flush() -> tuple[str, int]:
        frozen = frozenset(encoded)
        rows = [[_cell(v, kind, name in frozen, separators)
                 for v, (name, kind) in zip(values, upload.columns, strict=True)] for values in pending]
        return _append(upload.table, upload.columns, rows, frozen), len(rows)

    for batch in upload.batches:
        for values, bad in _rows(batch, upload.columns, separators):
            width = sum(2 * len(str(v)) + 12 for v in values)  # a literal's length, at most about
            if pending and (len(pending) >= BATCH_ROWS or size + width > BATCH_CHARS):
                yield flush()
                pending, size = [], 0
                encoded.clear()
            pending.append(values)
            encoded |= bad
            size += width
    if pending:
        yield flush()


def upload(backend: KustoBackend, uploads: Iterable[Upload], report: Report | None = None) -> Report:
    """Put every table on the cluster; returns rows sent and stored per table.

    A command the cluster refuses stops the upload with a RuleError naming the table and how
    many of its rows were stored before it.
    """
    report = report or Report()
    for item in uploads:
        create(backend, item.table, item.columns)
        report.sent.setdefault(item.table, 0)
        report.stored.setdefault(item.table, 0)
        for command, n in commands(item, separators=not backend.create_merge):
            try:
                result = backend.management(command)
            except RuleError as exc:
                raise RuleError(f"ingest into {item.table} on {backend.name} stopped after "
                                f"{report.stored[item.table]} row(s): {exc}") from None
            report.sent[item.table] += n
            if "RowCount" in result.column_names:
                report.stored[item.table] += sum(int(c or 0) for c in result.column("RowCount").to_pylist())
        if report.stored[item.table] != report.sent[item.table]:
            raise RuleError(f"ingest into {item.table} on {backend.name}: sent {report.sent[item.table]} row(s), "
                            f"the cluster stored {report.stored[item.table]}")
    backend.forget_schema()
    return report


def queue_parquet(url: str, database: str, folder: Path, columns: dict[str, list[tuple[str, str]]],
                  auth: str = "default", backend: KustoBackend | None = None) -> dict[str, int]:
    """Queue the Parquet files of `exhunt ingest --out` (FOLDER/<Table>/part-*.parquet) for
    ingestion by the cluster (azure-kusto-ingest); returns files queued per table.

    The tables are made first (`create`). Queued ingestion needs the cluster's ingestion
    endpoint (`https://ingest-<cluster>`) and a storage round trip, so it is for real
    clusters only; the files are read by column name, so their order does not matter.
    """
    from azure.kusto.data import DataFormat, KustoConnectionStringBuilder
    from azure.kusto.ingest import IngestionProperties, QueuedIngestClient

    from exhunt.backends.kusto import check_url, credential

    url = check_url(url)
    if not url.startswith("https://"):
        raise UsageError("--queued needs an Azure Data Explorer cluster over https (its ingestion endpoint)")
    backend = backend or KustoBackend(url, database, auth)
    host = url.removeprefix("https://")
    ingest_url = url if host.startswith("ingest-") else f"https://ingest-{host}"
    client = QueuedIngestClient(KustoConnectionStringBuilder.with_azure_token_credential(ingest_url, credential(auth)))
    queued: dict[str, int] = {}
    for table, cols in columns.items():
        files = sorted((folder / table).glob("*.parquet"))
        if not files:
            continue
        create(backend, table, cols)
        props = IngestionProperties(database=database, table=table, data_format=DataFormat.PARQUET)
        for path in files:
            client.ingest_from_file(str(path), ingestion_properties=props)
        queued[table] = len(files)
    return queued
