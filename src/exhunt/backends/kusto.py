"""Azure Data Explorer, or any Kusto endpoint, as a backend (`--cluster URL --database DB`).

Queries go over the Kusto REST API with `azure-kusto-data`; now() is pinned with the
`query_now` client request property and, for endpoints that read only the query text, a
`set query_now = datetime(...);` statement in front of it (both say the same time).
Authentication (azure-identity) for `https`: the default credential chain (Azure CLI,
environment, managed identity...), a device code (`--auth device`), or an app registration
from AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET (`--auth app`). A plain `http`
endpoint gets no authentication and is accepted on a loopback address only (the local
`duckdb-kql serve`): a query, its rows and a token must never cross a network in clear.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from exhunt.backends import kqltext
from exhunt.backends.parallel import MAX_CONCURRENCY, Throttled, with_retries
from exhunt.backends.remote import Columns, RemoteBackend, to_arrow
from exhunt.errors import RuleError, UsageError

AUTH_MODES = ("default", "device", "app")
#: Kusto's error codes that mean "too busy now, try later".
THROTTLING_CODES = frozenset({"TooManyRequests", "Throttled", "ThrottledOnQueryQueue", "ServiceUnavailable"})
#: Characters shown of an engine's error message (one line, inert: see safetext).
MESSAGE_CHARS = 300


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The endpoint URL, or a UsageError: https anywhere, http only to a loopback address."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--cluster: {url!r} is not an http(s) URL (e.g. https://mycluster.westeurope.kusto.windows.net)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"--cluster: refusing plain http to {parts.hostname}, which is not this machine: "
                         "queries, rows and credentials would cross the network unencrypted; use https")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--cluster: give the cluster's address only ({parts.scheme}://{parts.netloc}); "
                         "the database goes in --database")
    return f"{parts.scheme}://{parts.netloc}"


def credential(auth: str = "default") -> Any:
    """An azure-identity credential for `auth` (see AUTH_MODES)."""
    import azure.identity as identity

    if auth == "default":
        return identity.DefaultAzureCredential()
    if auth == "device":
        return identity.DeviceCodeCredential()
    if auth == "app":
        needed = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
        missing = [name for name in needed if not os.environ.get(name)]
        if missing:
            raise UsageError(f"--auth app: set {', '.join(missing)} (the app registration's id, tenant and secret)")
        return identity.ClientSecretCredential(os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"],
                                               os.environ["AZURE_CLIENT_SECRET"])
    raise UsageError(f"--auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")


def connect(url: str, auth: str = "default") -> Any:
    """A KustoClient for the endpoint (see check_url, credential)."""
    from azure.kusto.data import KustoClient, KustoConnectionStringBuilder

    url = check_url(url)
    if url.startswith("http://"):
        kcsb = KustoConnectionStringBuilder.with_no_authentication(url)
    else:
        kcsb = KustoConnectionStringBuilder.with_azure_token_credential(url, credential(auth))
    return KustoClient(kcsb)


def _first_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line[:MESSAGE_CHARS] + ("..." if len(line) > MESSAGE_CHARS else "")


class KustoBackend(RemoteBackend):
    """The tables of one database on a Kusto endpoint."""

    def __init__(self, url: str, database: str, auth: str = "default", client: Any = None,
                 max_concurrency: int = MAX_CONCURRENCY) -> None:
        super().__init__(max_concurrency)
        self.url = check_url(url)
        if not database or not database.strip():
            raise UsageError("--database: name the database on the cluster")
        self.database = database
        self.name = f"kusto {self.url}/{database}"
        self._client = client if client is not None else connect(self.url, auth)
        #: Whether the endpoint has `.create-merge table` (see exhunt.backends.kusto_ingest.create).
        self.create_merge = True

    # -- sending ----------------------------------------------------------------------------

    def _properties(self, now: datetime | None) -> Any:
        from azure.kusto.data import ClientRequestProperties

        props = ClientRequestProperties()
        if now is not None:
            props.set_option("query_now", kqltext.naive_utc(now).isoformat() + "Z")
        return props

    def _send(self, kql: str, now: datetime | None) -> pa.Table:
        if now is not None:
            kql = f"set query_now = {kqltext.datetime_literal(now)};\n{kql}"
        response = self._call(lambda: self._client.execute_query(self.database, kql, self._properties(now)), kql)
        return self._table(response)

    def management(self, command: str) -> pa.Table:
        """Run a control command (`.show tables`, `.set-or-append ...`), retried when throttled."""
        return with_retries(lambda: self._table(self._call(
            lambda: self._client.execute_mgmt(self.database, command, None), command)))

    @staticmethod
    def _table(response: Any) -> pa.Table:
        primary = response.primary_results
        if not primary:
            return pa.table({})
        table = primary[0]
        columns: Columns = [(c.column_name, str(c.column_type)) for c in table.columns]
        return to_arrow(columns, table.raw_rows)

    def _call(self, send: Any, kql: str) -> Any:
        """`send()`, its failure turned into Throttled or a RuleError in plain words."""
        from azure.kusto.data.exceptions import KustoError, KustoServiceError, KustoThrottlingError

        try:
            return send()
        except KustoThrottlingError as exc:
            raise Throttled(f"{self.url} is throttling requests: {_first_line(str(exc))}") from None
        except KustoServiceError as exc:
            status = getattr(getattr(exc, "http_response", None), "status_code", None) or \
                getattr(getattr(exc, "http_response", None), "status", None)
            code = getattr(getattr(exc, "error", None), "code", None)
            if status == 429 or status == 503 or code in THROTTLING_CODES:
                raise Throttled(f"{self.url} is throttling requests: {_first_line(str(exc))}") from None
            raise RuleError(self.explain(kql, str(exc), status)) from None
        except KustoError as exc:
            raise RuleError(f"{self.name}: {_first_line(str(exc))}") from None
        except OSError as exc:
            raise RuleError(f"cannot reach {self.url}: {_first_line(str(exc))}") from None

    def explain(self, kql: str, message: str, status: int | None = None) -> str:
        """An engine's error in plain words: which table, column or permission."""
        text = _first_line(message)
        where = f"database {self.database!r} on {self.url}"
        if status in (401, 403) or re.search(r"(?i)\b(unauthori[sz]ed|forbidden|not authorized|access rights|"
                                             r"permission)\b", message):
            return (f"permission denied: the signed-in identity may not read {where} "
                    f"(it needs the Viewer role on the database): {text}")
        if status == 404 or re.search(r"(?i)database .* (not found|does not exist|is not attached)", message):
            return f"database {self.database!r} does not exist on {self.url}: {text}"
        m = re.search(r"(?i)(?:resolve table(?: or column)?(?: expression)? named|table with name) '?\"?([\w.]+)",
                      message)
        if m and m.group(1) not in self.schema():
            return (f"table {m.group(1)!r} does not exist in {where} "
                    f"(tables there: {', '.join(sorted(self.schema())) or 'none'})")
        m = re.search(r"(?i)(?:resolve (?:scalar expression|column(?: or scalar expression)?) named|"
                      r"column(?: with name)?) '?\"?([\w.]+)", message)
        if m:
            col = m.group(1)
            lacking = [t for t in self.named_tables(kql) if col not in self.tables()[t]]
            if lacking:
                return f"column {col!r} does not exist in table {', '.join(lacking)} ({where})"
            return f"column {col!r} is not available where the query uses it ({where}): {text}"
        return f"the query failed on {where}: {text}"

    # -- tables -----------------------------------------------------------------------------

    def _list_tables(self) -> dict[str, Columns]:
        names = [str(n) for n in self.management(".show tables").column("TableName").to_pylist()]
        out: dict[str, Columns] = {}
        for name in names:
            schema = self.run(f"{kqltext.ident(name)} | getschema")
            out[name] = [(str(c), str(t)) for c, t in zip(schema.column("ColumnName").to_pylist(),
                                                          schema.column("ColumnType").to_pylist(), strict=True)]
        return out

    def forget_schema(self) -> None:
        """Read the tables again on next use (after an ingest changed them)."""
        self._schema = None

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()
