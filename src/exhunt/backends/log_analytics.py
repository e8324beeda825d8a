"""A Log Analytics (Microsoft Sentinel) workspace as a backend (`--workspace ID`), through
`azure-monitor-query`'s LogsQueryClient.

Within the service's documented limits:

- **now()**: the query API has no `query_now`, so the clock is pinned in the text: every
  `now()` and `ago()` call, found in the parse tree (never in a string or a comment), becomes
  arithmetic on a `datetime(...)` literal (exhunt.backends.kqltext.pin_clock). A rule whose
  clock calls nest is refused, not approximated.
- **timespan**: the API's `timespan` parameter filters `TimeGenerated` on a half-open range,
  which is not a rule's window (start < Timestamp <= end); exhunt passes none and puts the
  window in the query (`let T = T | where ...`), exactly as on a cluster.
- **result size**: a query's result is capped (500,000 rows, 64 MB); a capped answer comes back
  as a partial result, which is reported as the rule's failure, never taken as complete.
- **rate**: a user may run 5 queries at once and 200 per 30 seconds; exhunt runs at most 4 at
  once, paces itself below 200 per 30 s, and retries an HTTP 429 after the `Retry-After` the
  service gives (exponential backoff otherwise). The server timeout is 10 minutes, its maximum.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from exhunt.backends import kqltext
from exhunt.backends.kusto import MESSAGE_CHARS, credential, is_loopback
from exhunt.backends.parallel import Throttled
from exhunt.backends.remote import Columns, RemoteBackend, to_arrow
from exhunt.errors import RuleError, UsageError
from exhunt.schema import tables as schema_tables

DEFAULT_ENDPOINT = "https://api.loganalytics.io"
#: Queries at once per user (the service allows 5, and queues the rest for at most 3 minutes).
MAX_CONCURRENCY = 4
#: Queries per user per 30 seconds (the service allows 200).
RATE = 190
RATE_WINDOW = 30.0
#: Seconds a query may run on the service (the API's maximum).
SERVER_TIMEOUT = 600
#: Rows and bytes a query's result may hold before the service truncates it.
MAX_ROWS = 500_000
MAX_BYTES = 64 << 20


class _Pace:
    """At most `rate` calls in any `window` seconds (a sliding window, shared by threads)."""

    def __init__(self, rate: int = RATE, window: float = RATE_WINDOW) -> None:
        self.rate, self.window = rate, window
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.rate:
                    self._sent.append(now)
                    return
                pause = self.window - (now - self._sent[0])
            time.sleep(max(pause, 0.01))


class _LoopbackToken:
    """A credential for a loopback test endpoint, which checks none (never sent anywhere else)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("loopback", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("loopback", int(time.time()) + 3600)


def check_endpoint(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"Log Analytics endpoint {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"refusing plain http to {parts.hostname}: use https")
    return f"{parts.scheme}://{parts.netloc}"


class LogAnalyticsBackend(RemoteBackend):
    """The tables of one Log Analytics workspace."""

    def __init__(self, workspace: str, auth: str = "default", endpoint: str | None = None,
                 client: Any = None, max_concurrency: int = MAX_CONCURRENCY) -> None:
        super().__init__(max_concurrency)
        if not workspace or not workspace.strip():
            raise UsageError("--workspace: give the workspace ID (a GUID, from the workspace's overview page)")
        self.workspace = workspace.strip()
        # Another cloud's API (api.loganalytics.azure.cn, ...) through EXHUNT_LOG_ANALYTICS_ENDPOINT.
        self.endpoint = check_endpoint(endpoint or os.environ.get("EXHUNT_LOG_ANALYTICS_ENDPOINT") or DEFAULT_ENDPOINT)
        self._local = self.endpoint.startswith("http://")
        self.name = f"log-analytics {self.workspace}"
        if client is None:
            from azure.monitor.query import LogsQueryClient

            token = _LoopbackToken() if self._local else credential(auth)
            # Retries are exhunt's own (parallel.with_retries): one policy, paced and bounded.
            client = LogsQueryClient(token, endpoint=self.endpoint, retry_total=0)
        self._client = client
        self._pace = _Pace()

    def _send(self, kql: str, now: datetime | None) -> pa.Table:
        from azure.core.exceptions import HttpResponseError, ServiceRequestError
        from azure.monitor.query import LogsQueryStatus

        if now is not None:
            kql = kqltext.pin_clock(kql, now)
        extra = {"enforce_https": False} if self._local else {}
        self._pace.wait()
        try:
            result = self._client.query_workspace(self.workspace, kql, timespan=None,
                                                  server_timeout=SERVER_TIMEOUT, **extra)
        except HttpResponseError as exc:
            status = exc.status_code
            if status in (429, 502, 503, 504):
                hint = _retry_after(exc)
                raise Throttled(f"the workspace is throttling queries (HTTP {status})", hint) from None
            raise RuleError(self.explain(kql, exc)) from None
        except ServiceRequestError as exc:
            raise RuleError(f"cannot reach {self.endpoint}: {_one_line(str(exc))}") from None
        if result.status != LogsQueryStatus.SUCCESS:
            error = getattr(result, "partial_error", None)
            raise RuleError(f"{self.name} returned only part of the result (a result is capped at "
                            f"{MAX_ROWS:,} rows and {MAX_BYTES >> 20} MB; narrow the query or its window): "
                            f"{_one_line(getattr(error, 'message', '') or str(error))}")
        if not result.tables:
            return pa.table({})
        table = result.tables[0]
        columns: Columns = list(zip(table.columns, table.columns_types, strict=True))
        return to_arrow(columns, (list(row) for row in table.rows))

    def close(self) -> None:
        self._client.close()

    def explain(self, kql: str, exc: Any) -> str:
        """The service's error in plain words: which table, column or permission."""
        status = getattr(exc, "status_code", None)
        error = getattr(exc, "error", None)
        code = str(getattr(error, "code", "") or "")
        message = _one_line(" ".join(str(x) for x in (getattr(error, "message", None) or exc.message,
                                                      _inner(error)) if x))
        where = f"workspace {self.workspace}"
        if status in (401, 403) or "InsufficientAccess" in code or "Authorization" in code:
            return (f"permission denied: the signed-in identity may not query {where} "
                    f"(it needs the Log Analytics Reader role): {message}")
        if status == 404 or "WorkspaceNotFound" in code:
            return f"{where} does not exist or is not visible to the signed-in identity: {message}"
        import re

        m = re.search(r"(?i)resolve table(?: or column)?(?: expression)? named '([\w.]+)'", message)
        if m:
            return f"table {m.group(1)!r} does not exist in {where}: {message}"
        m = re.search(r"(?i)resolve (?:scalar expression|column(?: or scalar expression)?) named '([\w.]+)'", message)
        if m:
            col = m.group(1)
            lacking = [t for t in self.named_tables(kql) if col not in self.tables().get(t, [])]
            if lacking:
                return f"column {col!r} does not exist in table {', '.join(lacking)} ({where})"
            return f"column {col!r} is not available where the query uses it ({where}): {message}"
        return f"the query failed on {where}: {message}"

    def _list_tables(self) -> dict[str, Columns]:
        """The schema's tables that exist in the workspace (one fuzzy union of getschema)."""
        known = list(schema_tables())
        legs = ", ".join(f"({kqltext.ident(t)} | getschema | extend _table = {kqltext.string(t)})" for t in known)
        found = self.run(f"union isfuzzy=true {legs} | project _table, ColumnName, ColumnType, ColumnOrdinal")
        out: dict[str, Columns] = {}
        rows = sorted(found.to_pylist(), key=lambda r: (r["_table"], int(r["ColumnOrdinal"])))
        for row in rows:
            out.setdefault(str(row["_table"]), []).append((str(row["ColumnName"]), str(row["ColumnType"])))
        return {t: out[t] for t in known if t in out}


def _inner(error: Any) -> str:
    """The innermost message of a Log Analytics error (where the table or column is named)."""
    details = getattr(error, "details", None) or []
    inner = getattr(error, "innererror", None) or getattr(error, "inner_error", None)
    parts = [str(getattr(d, "message", "") or "") for d in details]
    while isinstance(inner, dict):
        parts.append(str(inner.get("message", "")))
        inner = inner.get("innererror")
    return " ".join(p for p in parts if p)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line[:MESSAGE_CHARS] + ("..." if len(line) > MESSAGE_CHARS else "")
