"""A local Kusto REST endpoint for tests: `duckdb-kql serve` over a DuckDB file, on a free
loopback port, started and stopped by the test that needs it; and what the remote-engine
tests share to compare a remote engine's results with the embedded one's."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import REPO
from exhunt import hunt as hunting
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.schema import tables as schema_tables

DEMO = REPO / "demo"

#: Seconds a server may take to answer its first request.
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def kusto_server(db_file: Path, allow_write: bool = True) -> Iterator[str]:
    """Serve `db_file` (database `db_file.stem`) at http://127.0.0.1:PORT, yielded; stopped on exit."""
    port = free_port()
    args = [sys.executable, "-m", "duckdb_kql", "serve", str(db_file), "--port", str(port)]
    if allow_write:
        args.append("--allow-write")
    log = db_file.with_suffix(".log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"duckdb-kql serve did not start: {db_file.with_suffix('.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def local_demo() -> Iterator[DuckDBBackend]:
    """demo/ in the embedded engine, every column of every table stored."""
    backend, _ = hunting.open_local([DEMO], list(schema_tables()), hunting.HuntOptions(jobs=1))
    with backend:
        yield backend


def remote_rows(table: Any) -> list[dict[str, Any]]:
    """Rows with a null string as "": Kusto has no null string (the local engine leaves an input's
    extra column null where a file lacks it; on a cluster it is empty). A dynamic null is the JSON
    text `null` locally (the array functions need JSON) and null on a cluster: both become ""."""
    kinds = {f.name: f.type for f in table.schema}
    return [{k: "" if (v is None or v == "null") and kinds[k] == "string" else v for k, v in row.items()}
            for row in table.to_pylist()]


def sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in one order whatever order an engine returned them in."""
    return sorted(rows, key=lambda r: repr(sorted(r.items())))
