"""A local stand-in for the Log Analytics query API (POST /v1/workspaces/{id}/query), for tests.

It answers with the response shapes the service documents, written here by hand: a success is
`{"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows": [[...]]}]}`, an
error `{"error": {"code", "message", "innererror": {...}}}` with its HTTP status, a truncated
result a success body carrying an `error` too. Queries run with duckdb-kql over a DuckDB file
(the tables exhunt put on a local Kusto endpoint), so answers are real rows; `faults` are
answered first, one per request, to play throttling, permissions and truncation.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb_kql
from duckdb_kql.types import kusto_type


@dataclass
class Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error_body(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if inner is not None:
        body["error"]["innererror"] = {"code": "SemanticError", "message": inner}
    return body


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, timedelta):
        total = int(value.total_seconds())
        return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"
    return value


class FakeWorkspace(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, db: Path | None, workspace: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.workspace = workspace
        self.con = duckdb_kql.connect(str(db) if db else ":memory:")
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.queries: list[str] = []
        self.timespans: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, query: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            try:
                rel = duckdb_kql.kql(self.con, query)
                names, kinds, rows = list(rel.columns), [kusto_type(t) for t in rel.types], rel.fetchall()
            except Exception as exc:  # the service answers 400 to a query it cannot run
                return 400, error_body("BadArgumentError", "The request had some invalid properties", str(exc))
        columns = [{"name": n, "type": k} for n, k in zip(names, kinds, strict=True)]
        table = {"name": "PrimaryResult", "columns": columns, "rows": [[_wire(v) for v in row] for row in rows]}
        return 200, {"tables": [table]}


class _Handler(BaseHTTPRequestHandler):
    server: FakeWorkspace

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        m = re.fullmatch(r"/v1/workspaces/([^/]+)/query", self.path.split("?")[0])
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send(401, error_body("AuthorizationRequiredError", "Valid authentication was not provided"))
            return
        if m is None or m.group(1) != self.server.workspace:
            self._send(404, error_body("WorkspaceNotFoundError", f"Workspace {m.group(1) if m else '?'} not found"))
            return
        self.server.queries.append(body.get("query", ""))
        self.server.timespans.append(body.get("timespan"))
        if self.server.faults:
            fault = self.server.faults.pop(0)
            self._send(fault.status, fault.body, fault.headers)
            return
        self._send(*self.server.answer(body.get("query", "")))


@contextmanager
def fake_workspace(db: Path | None, workspace: str = "00000000-0000-0000-0000-00000000beef") -> Iterator[FakeWorkspace]:
    server = FakeWorkspace(db, workspace)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.con.close()
