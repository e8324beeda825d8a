"""A local Kusto REST endpoint for tests: `duckdb-kql serve` over a DuckDB file, on a free
loopback port, started and stopped by the test that needs it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
